"""Task cases (``--tasks``): inference images/s of the whole task models, per backbone, in each
task's table setting (:attr:`harness.tasks.Task.table_setting`): the ImageNet classifier, the
COCO detector (Cascade Mask R-CNN), the ADE20K segmentor (UperNet, whole-image mode).

A model is built from its generated config (:func:`harness.configgen.model_config`) with its
weights initialised (``init_weights``; no checkpoint is read). One synthetic image goes through
the config's own test pipeline (the loading transform replaced by the image, annotation loading
dropped), as the toolboxes' inferencers do; its size is the one the pipeline resizes to (the
``scale`` of its ``Resize``: 1333x800 for COCO, 2048x512 for ADE20K), else the task's
``input_hw`` (224 for ImageNet). The packed batch repeats it ``batch`` times. The timed step is
what the toolboxes' own benchmark tools time:

* classifier and detector: ``model.test_step(data)`` (data preprocessor included), as mmdet's
  ``tools/analysis_tools/benchmark.py`` does;
* segmentor: the data preprocessed once (as in ``test_step``), then ``model(inputs,
  data_samples, mode='predict')``, as mmseg's ``tools/analysis_tools/benchmark.py`` does.

The model config is the table setting's, ``cfg_options`` merged (as the toolboxes' tools'
``--cfg-options``). With random weights a detector's RPN still proposes ``max_per_img`` (1000)
boxes, which the cascade's bbox heads classify (on a CPU these heads cost more than the
backbone), but no box scores above ``score_thr``, so the mask heads idle: a trained detector on
a busy image spends more time there.
"""
import copy
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..tasks import TASKS
from .measure import RunConfig, errors_of
from .models import record_of

#: transform keys whose sizes ``scale`` multiplies
_SIZE_KEYS = ('scale', 'crop_size')


def _scaled(value: Any, factor: float) -> Any:
    if isinstance(value, (list, tuple)):
        return type(value)(max(1, int(round(v * factor))) for v in value)
    return max(1, int(round(value * factor))) if isinstance(value, int) else value


def inference_pipeline(cfg: Any, factor: float = 1.0) -> List[Dict[str, Any]]:
    """The config's test pipeline for an in-memory image: without its loading and annotation
    transforms, sizes multiplied by ``factor``."""
    pipeline = []
    for t in cfg.test_dataloader.dataset.pipeline:
        t = copy.deepcopy(dict(t))
        kind = str(t['type']).split('.')[-1]
        if kind.startswith('LoadImageFrom') or kind.startswith('LoadAnnotations'):
            continue
        pipeline.append({k: _scaled(v, factor) if k in _SIZE_KEYS else v for k, v in t.items()})
    return pipeline


def image_hw(task: str, pipeline: Sequence[Dict[str, Any]], factor: float = 1.0) -> Tuple[int, int]:
    """(H, W) of the benchmark image: the (W, H) ``scale`` of the pipeline's ``Resize``, else the
    task's ``input_hw`` times ``factor``."""
    for t in pipeline:
        scale = t.get('scale')
        if str(t['type']).split('.')[-1] == 'Resize' and isinstance(scale, (list, tuple)):
            return int(scale[1]), int(scale[0])
    return tuple(_scaled(list(TASKS[task].input_hw), factor))


def packed_batch(task: str, cfg: Any, batch: int, factor: float = 1.0) -> Dict[str, Any]:
    """``dict(inputs=[...], data_samples=[...])`` of ``batch`` copies of one random image sent
    through the test pipeline, as a test dataloader yields it."""
    import numpy as np
    from mmengine.dataset import Compose
    from mmengine.registry import init_default_scope
    init_default_scope(TASKS[task].scope)
    pipeline = inference_pipeline(cfg, factor)
    h, w = image_hw(task, pipeline, factor)
    img = np.random.RandomState(0).randint(0, 256, (h, w, 3), dtype=np.uint8)
    packed = Compose(pipeline)(
        dict(img=img, img_shape=(h, w), ori_shape=(h, w), img_path=None, img_id=0))
    return dict(
        inputs=[packed['inputs'].clone() for _ in range(batch)],
        data_samples=[copy.deepcopy(packed['data_samples']) for _ in range(batch)])


def build_model(model: str,
                task: str,
                cfg_options: Optional[Dict[str, Any]] = None) -> Tuple[Any, Any]:
    """(config, model) of ``model``'s table setting of ``task``, ``cfg_options`` merged:
    built as the Runner builds it (the config's ``data_preprocessor`` as the model's default),
    weights initialised, segmentors in whole-image mode."""
    from mmengine.config import Config

    from ..configgen import model_config
    from ..models import build_task_model, register_toolbox
    cfg = Config.fromfile(str(model_config(model, TASKS[task].table_setting.key)))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    register_toolbox(TASKS[task].scope)
    model_cfg = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    if TASKS[task].flop_protocol == 'segmentor':
        model_cfg['test_cfg'] = dict(mode='whole')
    net = build_task_model(model_cfg, task)
    net.init_weights()
    return cfg, net.eval()


def task_step(spec: Dict[str, Any]) -> Callable[[], None]:
    """The step of a task case.

    Args:
        spec (dict): the run settings, ``model`` (zoo name), ``task`` (a key of
            :data:`harness.tasks.TASKS`), ``batch``, ``scale`` (image size factor) and
            ``cfg_options`` (dict, optional).

    Returns:
        Callable: the step; its ``info`` holds the image's ``input_hw``.
    """
    import torch
    device, dtype = spec['device'], getattr(torch, spec['dtype'])
    cfg, net = build_model(spec['model'], spec['task'], spec.get('cfg_options'))
    net = net.to(device)
    data = packed_batch(spec['task'], cfg, spec['batch'], spec.get('scale', 1.0))
    autocast = torch.autocast(device, dtype=dtype, enabled=dtype != torch.float32)
    if TASKS[spec['task']].flop_protocol == 'segmentor':
        pre = net.data_preprocessor(data, False)

        def step():
            with torch.no_grad(), autocast:
                net(pre['inputs'], pre['data_samples'], mode='predict')
    else:

        def step():
            with torch.no_grad(), autocast:
                net.test_step(data)

    step.info = dict(input_hw=list(data['inputs'][0].shape[-2:]))
    return step


def bench_tasks(run: RunConfig,
                names: Sequence[str],
                tasks: Sequence[str],
                batch: int,
                scale: float = 1.0,
                cfg_options: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The ``--tasks`` report: every (model, task) measured in one run (interleaved).

    Args:
        run (RunConfig): how the cases run (peak memory is not measured: one more step).
        names (Sequence[str]): zoo names.
        tasks (Sequence[str]): keys of :data:`harness.tasks.TASKS`.
        batch (int): images per step.
        scale (float): image size factor (1: the table setting's sizes). Defaults to 1.
        cfg_options (dict, optional): config overrides (``{'model.test_cfg.rpn.nms_pre':
            100}``). Defaults to None.

    Returns:
        dict: ``records`` (benchmark records with ``task``), ``errors`` and the settings.
    """
    specs = {
        f'{name} {task}':
        run.spec(
            kind='task',
            model=name,
            task=task,
            batch=batch,
            scale=scale,
            cfg_options=cfg_options or {},
            memory=False)
        for task in tasks
        for name in names
    }
    results = run.measure(specs)
    records = [
        record_of(specs[key], r, mode='inference', task=specs[key]['task'], input_hw=r['input_hw'])
        for key, r in results.items() if 'error' not in r
    ]
    report = dict(records=records, errors=errors_of(results))
    report.update(batch_size=batch, scale=scale, cfg_options=cfg_options or {}, **run.describe())
    return report


def task_settings(tasks: Optional[Sequence[str]] = None) -> Dict[str, str]:
    """Task -> the key of its table setting (every task if None)."""
    return {t: TASKS[t].table_setting.key for t in (tasks or list(TASKS))}
