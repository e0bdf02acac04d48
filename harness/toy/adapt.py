"""Turn a full-scale config of ``configs/`` into its toy run on the built-in toy data.

The model of the config is kept (same backbone, necks, heads, losses); only what depends on the
data and the compute budget changes: data roots and classes, input sizes (all resize / crop
sizes of the pipelines scaled down by the same factor), the schedule (a few epochs or
iterations, warm-up scaled along), the number of sampled RoIs / proposals, batch sizes and
loader workers. Every change is listed in ``cfg.toy_changes`` and logged, so a toy run says
exactly how it differs from the real one.

The input scale and the schedule of each task are ``toy_scale`` and ``toy_schedule`` of
:data:`harness.tasks.TASKS` (epochs for ImageNet, 50 iterations each, and iterations for COCO
and ADE20K; the README's demo, 4 models x 3 tasks + 1, takes about 15 min with them on 2 cores);
what else changes is the task's adapter in :data:`ADAPTERS`.
"""
import inspect
import json
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from mmengine.config import Config, ConfigDict

from backbones.registry import MODELS
from ..tasks import TASKS
from . import ensure_toy_data

#: classification transforms left out of toy runs (with Mixup / CutMix)
TOY_DROPPED_TRANSFORMS = ('RandAugment', 'RandomErasing')
#: RoIs sampled per image for each R-CNN stage in toy runs (the heads' convs dominate a CPU step)
TOY_ROIS = 16

_SIZE_KEYS = ('scale', 'scales', 'crop_size', 'img_scale', 'size')


def _scale_sizes(node: Any, factor: float) -> Any:
    """Scale every size-like value (ints, or tuples/lists of ints) under the size keys."""

    def scale(value):
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            return max(8, int(round(value * factor)))
        if isinstance(value, (list, tuple)):
            return type(value)(scale(v) for v in value)
        return value

    if isinstance(node, dict):
        return type(node)({
            k: scale(v) if k in _SIZE_KEYS else _scale_sizes(v, factor)
            for k, v in node.items()
        })
    if isinstance(node, (list, tuple)):
        return type(node)(_scale_sizes(v, factor) for v in node)
    return node


def _set_loader(cfg: Config, name: str, batch_size: int, **dataset: Any) -> None:
    loader = cfg.get(name)
    if loader is None:
        return
    loader.batch_size = batch_size
    loader.num_workers = 0
    loader.persistent_workers = False
    loader.pop('pin_memory', None)
    ds = loader.dataset
    while 'dataset' in ds and ds.get('type') in ('RepeatDataset', 'ClassBalancedDataset'):
        ds = ds.dataset
    ds.update(dataset)


def _for_each_head(heads: Any, **values: Any) -> None:
    for head in heads if isinstance(heads, (list, tuple)) else [heads]:
        head.update(values)


def _imagenet(cfg: Config, root: Path, epochs: int, changes: List[str]) -> None:
    classes = tuple((root / 'meta' / 'classes.txt').read_text().splitlines())
    n = len(classes)
    cfg.model.head.num_classes = n
    if cfg.get('data_preprocessor'):
        cfg.data_preprocessor.num_classes = n
    if cfg.model.get('data_preprocessor'):
        cfg.model.data_preprocessor.num_classes = n
    for name, split, batch in [('train_dataloader', 'train', 16), ('val_dataloader', 'val', 32),
                               ('test_dataloader', 'val', 32)]:
        # type: the toy data are ImageNet-1k style folders, also for the 22k configs
        _set_loader(
            cfg,
            name,
            batch,
            type='ImageNet',
            data_root=str(root),
            split=split,
            metainfo=dict(classes=classes))
    cfg.val_evaluator = [
        dict(type='Accuracy', topk=(1, min(5, n))),
        dict(type='ReaLAccuracy', real_file=str(root / 'real.json')),
    ]
    cfg.test_evaluator = cfg.val_evaluator
    # The regularising augmentations make a 200-iteration run learn nothing (measured: Swin-T at
    # chance after 4 epochs with them); the toy run proves the pipeline, not the recipe.
    dropped = [a['type'] for a in cfg.model.get('train_cfg', {}).pop('augments', None) or []]
    pipeline = cfg.train_dataloader.dataset.pipeline
    dropped += [t['type'] for t in pipeline if t['type'] in TOY_DROPPED_TRANSFORMS]
    cfg.train_dataloader.dataset.pipeline = [
        t for t in pipeline if t['type'] not in TOY_DROPPED_TRANSFORMS
    ]
    if dropped:
        changes.append('without ' + ', '.join(dropped))
    cfg.train_cfg = dict(by_epoch=True, max_epochs=epochs, val_interval=epochs)
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=1e-2, by_epoch=True, end=1, convert_to_iter_based=True),
        dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=1, end=epochs),
    ]
    cfg.optim_wrapper.optimizer.lr = 1e-3
    changes.append(f'{n} toy classes, batch 16, lr 1e-3 (no batch scaling), {epochs} epochs '
                   '(1 warm-up)')
    if _accepts(cfg.model.backbone, 'pad_small_map'):
        # at 64 px Swin's later maps are smaller than its window
        cfg.model.backbone.pad_small_map = True
        changes.append('pad_small_map=True (maps smaller than the window at toy size)')


def _coco(cfg: Config, root: Path, iters: int, changes: List[str]) -> None:
    ann = json.loads((root / 'annotations' / 'instances_val2017.json').read_text())
    classes = tuple(c['name'] for c in sorted(ann['categories'], key=lambda c: c['id']))
    model = cfg.model
    _for_each_head(model.roi_head.bbox_head, num_classes=len(classes))
    _for_each_head(model.roi_head.mask_head, num_classes=len(classes))
    for name, split, batch in [('train_dataloader', 'train2017', 2),
                               ('val_dataloader', 'val2017', 2), ('test_dataloader', 'val2017', 2)]:
        _set_loader(
            cfg,
            name,
            batch,
            data_root=str(root) + '/',
            ann_file=f'annotations/instances_{split}.json',
            data_prefix=dict(img=f'{split}/'),
            metainfo=dict(classes=classes))
    for name in ('val_evaluator', 'test_evaluator'):
        cfg[name] = dict(
            type='CocoMetric',
            ann_file=str(root / 'annotations' / 'instances_val2017.json'),
            metric=['bbox', 'segm'],
            format_only=False)
    train = model.train_cfg
    train.rpn.sampler.num = 64
    train.rpn_proposal.update(nms_pre=200, max_per_img=50)
    _for_each_head(
        train.rcnn,
        sampler=dict(
            type='RandomSampler',
            num=TOY_ROIS,
            pos_fraction=0.25,
            neg_pos_ub=-1,
            add_gt_as_proposals=True))
    model.test_cfg.rpn.update(nms_pre=200, max_per_img=50)
    _iteration_schedule(cfg, iters)
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=5)]
    changes.append(f'{len(classes)} toy classes, batch 2, {iters} iterations, {TOY_ROIS} sampled '
                   'RoIs per stage and 64 anchors per image, 50 proposals')


def _accepts(backbone_cfg: dict, argument: str) -> bool:
    cls = MODELS.get(backbone_cfg.get('type', ''))
    return cls is not None and argument in inspect.signature(cls.__init__).parameters


def _iteration_schedule(cfg: Config, iters: int) -> None:
    """Train ``iters`` iterations, validate and save once at the end."""
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=iters)
    cfg.default_hooks.checkpoint.update(by_epoch=False, interval=iters)
    cfg.default_hooks.logger.interval = 2
    cfg.log_processor = dict(type='LogProcessor', window_size=2, by_epoch=False)


def _ade20k(cfg: Config, root: Path, iters: int, changes: List[str]) -> None:
    for name, split, batch in [('train_dataloader', 'training', 2),
                               ('val_dataloader', 'validation', 1),
                               ('test_dataloader', 'validation', 1)]:
        _set_loader(
            cfg,
            name,
            batch,
            data_root=str(root),
            data_prefix=dict(img_path=f'images/{split}', seg_map_path=f'annotations/{split}'))
    _iteration_schedule(cfg, iters)
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=iters // 4),
        dict(type='PolyLR', eta_min=0., power=1., begin=iters // 4, end=iters, by_epoch=False),
    ]
    cfg.optim_wrapper.optimizer.lr = 6e-4
    changes.append(f'batch 2, {iters} iterations, lr 6e-4')


def _quiet_logging(cfg: Config, logged_before: tuple) -> List[str]:
    """Log often (a toy run is short), draw nothing, scale no learning rate; returns the
    lines of ``toy_changes`` for what changed. ``logged_before``: the logger interval and log
    processor of the full-scale config."""
    hooks, changes = cfg.default_hooks, []
    hooks.logger.interval = min(5, hooks.logger.get('interval', 5))
    if (hooks.logger.interval, cfg.get('log_processor')) != logged_before:
        changes.append(f'logged every {hooks.logger.interval} iterations')
    if 'visualization' in hooks and hooks.visualization.get('draw') is not False:
        hooks.visualization = ConfigDict(type=hooks.visualization.type, draw=False)
        changes.append('visualisation without drawing')
    scaling = dict(
        enable=False, base_batch_size=cfg.get('auto_scale_lr', {}).get('base_batch_size', 16))
    if cfg.get('auto_scale_lr') != scaling:
        cfg.auto_scale_lr = scaling
        changes.append('automatic lr scaling off')
    return changes


#: The adapter of each task: ``adapter(cfg, data_root, toy_schedule, changes)`` points the
#: config at the toy data, sets the schedule and appends what it changed to ``changes``.
ADAPTERS: Dict[str, Callable[[Config, Path, int, List[str]], None]] = {
    'imagenet': _imagenet,
    'coco': _coco,
    'ade20k': _ade20k,
}


def toy_config(cfg: Config,
               task: str,
               data_root: Optional[str] = None,
               seed: int = 0,
               pretrained: Optional[str] = None) -> Config:
    """Adapt a config of ``task`` to a toy run on the built-in toy data.

    Input sizes are scaled by the task's ``toy_scale``, the task's adapter
    (:data:`ADAPTERS`) changes data, classes and schedule, and the backbone of
    a task whose table setting starts from pretrained weights is initialised
    from ``pretrained`` (or randomly). Every change is listed in
    ``cfg.toy_changes``; ``cfg.toy`` is set to True.

    Args:
        cfg (Config): a full-scale config; changed in place.
        task (str): its task, a key of :data:`harness.tasks.TASKS` with an adapter.
        data_root (str, optional): the toy dataset folder. Defaults to None: made (if needed)
            by :func:`harness.toy.ensure_toy_data` under ``data/toy``.
        seed (int): the seed of the toy data made when ``data_root`` is None. Defaults to 0.
        pretrained (str, optional): a checkpoint of the toy ImageNet classifier to start
            the backbone from. Defaults to None.

    Returns:
        Config: ``cfg`` itself.
    """
    if task not in ADAPTERS:
        raise ValueError(f'no toy run for task {task!r}; valid: {", ".join(ADAPTERS)}')
    spec = TASKS[task]
    root = Path(data_root) if data_root else ensure_toy_data(task, seed=seed)
    changes: List[str] = []
    factor = spec.toy_scale
    for key in ('train_pipeline', 'test_pipeline', 'train_dataloader', 'val_dataloader',
                'test_dataloader', 'tta_pipeline'):
        if key in cfg:
            cfg[key] = _scale_sizes(cfg[key], factor)
    for holder in (cfg, cfg.model):
        if holder.get('data_preprocessor') and 'size' in holder.data_preprocessor:
            holder.data_preprocessor = _scale_sizes(holder.data_preprocessor, factor)
    changes.append(f'input sizes x{factor:.3g}')
    eval_batch = cfg.get('val_dataloader', {}).get('batch_size')
    logged_before = (cfg.default_hooks.logger.get('interval'), cfg.get('log_processor'))
    ADAPTERS[task](cfg, root, spec.toy_schedule, changes)
    changes += [
        f'toy data {root}: data roots, annotation files, evaluators',
        'data loaded in the main process (0 workers)'
    ]
    if cfg.get('val_dataloader', {}).get('batch_size') != eval_batch:
        changes.append(f'evaluation batch {cfg.val_dataloader.batch_size}')

    backbone = cfg.model.backbone
    # the dense tasks start from the classifier; a classifier only if its config says so
    if spec.table_setting.pretrained is not None or backbone.get('init_cfg'):
        if pretrained:
            backbone.init_cfg = dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')
            changes.append(f'backbone initialised from {pretrained}')
        else:
            backbone.pop('init_cfg', None)
            changes.append('backbone randomly initialised (no toy ImageNet checkpoint)')
    changes += _quiet_logging(cfg, logged_before)
    cfg.toy_changes = changes
    cfg.toy = True
    return cfg
