"""The body of tools/train.py and tools/test.py: from parsed arguments to a ready Runner."""
import argparse
import copy
import os.path as osp
from pathlib import Path
from typing import Optional, Tuple

from mmengine.config import Config
from mmengine.logging import print_log

from ..checkpoints import compare_keys, load_weights, newest_loadable_checkpoint
from ..errors import ToolError
from ..models import build_task_model, to_dict
from ..records import record_base
from ..tasks import TASKS, config_path, identify
from .config import (adapt_to_machine, default_work_dir, load_config, task_of, use_amp,
                     use_atomic_checkpoints)
from .distributed import DIST_TIMEOUT, init_cpu_distributed
from .validate import check_config_keys, check_data, check_model_builds


def toy_pretrained_for(model: str) -> Optional[str]:
    """The checkpoint of this model's toy ImageNet run, if one exists (dense toy runs start from
    it, as full-scale dense runs start from the ImageNet checkpoint)."""
    work_dir = default_work_dir(str(config_path(model, TASKS['imagenet'].table_setting.key)), True)
    last = Path(work_dir) / 'last_checkpoint'
    if last.is_file():
        ckpt = last.read_text().strip()
        if osp.isfile(ckpt):
            return ckpt
    return None


def check_checkpoint_fits(path: str, cfg: Config, task: str, state: Optional[dict] = None) -> None:
    """The checkpoint must have exactly the model's keys and shapes (another architecture's
    checkpoint would otherwise load silently non-strict). ``state``: its loaded weights."""
    state = load_weights(path) if state is None else state
    diff = compare_keys(build_task_model(to_dict(cfg.model), task).state_dict(), state)
    if diff:
        raise ToolError(f'checkpoint {path} does not fit the model of this config (another '
                        f'architecture?): {diff.describe()}')


def check_pretrained(cfg: Config) -> None:
    """Local checkpoints the run will load (``load_from``, ``init_cfg=dict(type='Pretrained')``)
    must exist and load as plain weights, before anything is written."""

    def walk(node):
        if isinstance(node, dict):
            if node.get('type') == 'Pretrained' and isinstance(node.get('checkpoint'), str):
                yield node['checkpoint']
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                yield from walk(value)

    paths = list(walk(to_dict(cfg.model)))
    if cfg.get('load_from') and not cfg.get('resume'):
        paths.append(cfg.load_from)
    for path in paths:
        if '://' not in path:  # URLs are downloaded (and checked) by mmengine
            load_weights(path)


def find_resume_checkpoint(work_dir: str, cfg: Config, task: str) -> Optional[str]:
    """The newest checkpoint of ``work_dir`` that loads; one of another architecture is an
    error (training from the start would overwrite it)."""
    path = newest_loadable_checkpoint(
        work_dir, lambda msg, level: print_log(msg, logger='current', level=level))
    if path is not None:
        check_checkpoint_fits(path, cfg, task)
        print_log(f'auto-resume: resuming from {path}', logger='current')
    return path


#: the seed of toy runs without ``--seed``: the toy table is the same on every machine
TOY_SEED = 0


def prepare_config(args: argparse.Namespace,
                   mode: str) -> Tuple[Config, Config, str, str, Optional[str]]:
    """Read the config of ``args`` and check every input of the run (config keys, data roots,
    checkpoints) without writing anything: the launchers run this once (``--dry-run``) before
    starting N processes.

    Args:
        args (Namespace): parsed :func:`harness.running.run_parser` arguments.
        mode (str): ``'train'`` or ``'test'``.

    Returns:
        tuple: (the run's config, the full-scale config before any toy adaptation, task, model,
        setting key or None).
    """
    import backbones  # noqa: F401  (registers modules)
    from ..toy.adapt import toy_config
    cfg = load_config(args.config, args.cfg_options)
    task = task_of(cfg)
    model, template = identify(args.config)
    full_scale = copy.deepcopy(cfg)
    toy_data = getattr(args, 'toy_data', None)
    if args.toy:
        pretrained = getattr(args, 'toy_pretrained', None)
        if not pretrained and task != 'imagenet':
            pretrained = toy_pretrained_for(model)
        if toy_data and not osp.isdir(toy_data):
            raise ToolError(f'--toy-data folder not found: {toy_data}')
        toy_config(cfg, task, data_root=toy_data, pretrained=pretrained)
        if args.cfg_options:  # the user's options win over the toy schedule and sizes
            cfg.merge_from_dict(args.cfg_options)
    elif toy_data:
        raise ToolError('--toy-data needs --toy')
    cfg.work_dir = args.work_dir or default_work_dir(args.config, args.toy)
    distributed = args.launcher != 'none'
    adapt_to_machine(cfg, distributed)
    if mode == 'train' and args.amp:
        use_amp(cfg)
    check_model_builds(cfg, task)
    check_config_keys(cfg, task, mode)

    if mode == 'train':
        check_data(cfg, task, splits=('train', 'val'))
        if args.resume and args.resume != 'auto':
            check_checkpoint_fits(args.resume, cfg, task)
            cfg.resume, cfg.load_from = True, args.resume
        elif args.resume == 'auto' or args.auto_resume:
            cfg.resume = True
            cfg.load_from = find_resume_checkpoint(cfg.work_dir, cfg, task)
            if cfg.load_from is None:
                print_log(f'auto-resume: no checkpoint in {cfg.work_dir}, starting', 'current')
                cfg.resume = False
        check_pretrained(cfg)
        if args.auto_scale_lr:
            cfg.auto_scale_lr.enable = True
        hooks = [dict(type='EpochSeedHook')]
        if distributed:
            hooks.append(dict(type='RankMeanLogHook'))
        cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + hooks
        use_atomic_checkpoints(cfg)
    else:
        check_data(cfg, task, splits=('test', ))
        check_checkpoint_fits(args.checkpoint, cfg, task)
        cfg.load_from = args.checkpoint
        if getattr(args, 'tta', False):
            if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
                raise ToolError('this config has no tta_model / tta_pipeline for --tta')
            cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
            cfg.tta_model.module = cfg.model
            cfg.model = cfg.tta_model
    randomness = dict(cfg.get('randomness') or {})
    # without a seed the runner draws one (and shares it between ranks); toy runs are seeded
    randomness.setdefault('seed', None)
    if randomness['seed'] is None and args.toy:
        randomness['seed'] = TOY_SEED
    if args.seed is not None:
        randomness['seed'] = args.seed
    if getattr(args, 'deterministic', False):
        randomness['deterministic'] = True
    cfg.randomness = randomness
    cfg.launcher = args.launcher
    return cfg, full_scale, task, model, template


def build_runner(args: argparse.Namespace, mode: str) -> 'Runner':  # noqa: F821
    """Check every input (:func:`prepare_config`), then build mmengine's Runner (which creates
    the work dir, its log folder and config dump), with the result-record hook attached."""
    from mmengine.runner import Runner
    cfg, full_scale, task, model, template = prepare_config(args, mode)
    init_cpu_distributed(args.launcher,
                         cfg.get('env_cfg', {}).get('dist_cfg', {}).get('timeout', DIST_TIMEOUT))

    record = record_base(full_scale, args.config, model, template, task, toy=bool(args.toy))
    if mode == 'test':
        record.update(checkpoint=args.checkpoint, tta=bool(getattr(args, 'tta', False)))
    tta = mode == 'test' and bool(getattr(args, 'tta', False))
    record_hook = dict(
        type='ResultRecordHook',
        record=record,
        metric_names=TASKS[task].metric_names(tta=tta),
        filename='result.json' if mode == 'train' else 'test_result.json')
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [record_hook]
    return Runner.from_cfg(cfg)
