"""The body of tools/train.py and tools/test.py: from parsed arguments to a ready Runner."""
import copy
import os
import os.path as osp
import pickle
import sys
import traceback
from pathlib import Path
from typing import Callable, Optional

import torch

from .launch import (UsageError, adapt_to_machine, check_data, check_model_builds,
                     default_work_dir, identify, load_config, record_base, task_of)


def run_main(main: Callable[[], int], prog: str) -> int:
    """Run a tool's main: bad input is one ``error:`` line and exit code 2; a crash keeps its
    traceback (set DEMYSTIFY_DEBUG=1 to get tracebacks for input errors too)."""
    try:
        return main()
    except UsageError as exc:
        if os.environ.get('DEMYSTIFY_DEBUG'):
            traceback.print_exc()
        print(f'{prog}: error: {exc}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f'{prog}: interrupted', file=sys.stderr)
        return 130


def toy_pretrained_for(model: str) -> Optional[str]:
    """The checkpoint of this model's toy ImageNet run, if one exists (dense toy runs start from
    it, as full-scale dense runs start from the ImageNet checkpoint)."""
    last = Path('work_dirs/toy/imagenet') / f'{model}_in1k' / 'last_checkpoint'
    if last.is_file():
        ckpt = last.read_text().strip()
        if osp.isfile(ckpt):
            return ckpt
    return None


def load_weights(path: str) -> dict:
    """Load a checkpoint without running pickled code (weights_only + mmengine's allow-list)."""
    if not osp.isfile(path):
        raise UsageError(f'checkpoint not found: {path}')
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ''
        raise UsageError(f'checkpoint {path} is refused: it is not a plain weights file '
                         f'({first[:160]})')
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise UsageError(f'checkpoint {path} is corrupt or truncated: '
                         f'{str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__}')
    if not isinstance(ckpt, dict):
        raise UsageError(f'checkpoint {path} holds a {type(ckpt).__name__}, not a dict')
    return ckpt.get('state_dict', ckpt)


def check_checkpoint_fits(path: str, cfg, task: str) -> None:
    """The checkpoint must have exactly the model's keys and shapes (another architecture's
    checkpoint would otherwise load silently non-strict)."""
    from .complexity import build_task_model
    state = load_weights(path)
    model = build_task_model(cfg.model.to_dict(), task)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and hasattr(state[k], 'shape')
              and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        for what, keys in (('missing', missing), ('unexpected', unexpected),
                           ('with another shape', shapes)):
            if keys:
                parts.append(f'{len(keys)} keys {what} (e.g. {keys[0]})')
        raise UsageError(f'checkpoint {path} does not fit the model of this config (another '
                         f'architecture?): {"; ".join(parts)}')


def _init_cpu_distributed(launcher: str) -> bool:
    """mmengine's init_dist assumes CUDA; on a CPU-only machine start gloo ourselves."""
    if launcher == 'none':
        return False
    import torch.distributed as dist
    if not torch.cuda.is_available() and not dist.is_initialized():
        if launcher != 'pytorch':
            raise UsageError(f'launcher {launcher!r} needs CUDA; on the CPU use tools/'
                             'dist_train.sh (torchrun, gloo)')
        dist.init_process_group('gloo')
    return True


def build_runner(args, mode: str):
    """``mode`` is 'train' or 'test'."""
    import backbones  # noqa: F401  (registers modules)
    from mmengine.runner import Runner

    from .toy.adapt import toy_config
    cfg = load_config(args.config, args.cfg_options)
    task = task_of(cfg)
    model, template = identify(args.config)
    full_scale = copy.deepcopy(cfg)
    if args.toy:
        pretrained = getattr(args, 'toy_pretrained', None) or (
            toy_pretrained_for(model) if task != 'imagenet' else None)
        toy_config(cfg, task, pretrained=pretrained)
    cfg.work_dir = args.work_dir or default_work_dir(args.config, args.toy)
    distributed = args.launcher != 'none'
    adapt_to_machine(cfg, distributed)
    check_model_builds(cfg, task)

    if mode == 'train':
        check_data(cfg, task, splits=('train', 'val'))
        if args.resume and args.resume != 'auto':
            load_weights(args.resume)
            cfg.resume, cfg.load_from = True, args.resume
        elif args.resume == 'auto' or args.auto_resume:
            cfg.resume, cfg.load_from = True, None
        if args.auto_scale_lr:
            cfg.auto_scale_lr.enable = True
        if args.amp:
            from .amp import use_amp
            use_amp(cfg)
    else:
        check_data(cfg, task, splits=('test', ))
        check_checkpoint_fits(args.checkpoint, cfg, task)
        cfg.load_from = args.checkpoint
        if getattr(args, 'tta', False):
            if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
                raise UsageError('this config has no tta_model / tta_pipeline for --tta')
            cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
            cfg.tta_model.module = cfg.model
            cfg.model = cfg.tta_model
    if args.seed is not None:
        cfg.randomness = dict(seed=args.seed)
    cfg.launcher = args.launcher
    _init_cpu_distributed(args.launcher)

    record = record_base(full_scale, args.config, model, template, task, toy=bool(args.toy))
    if mode == 'test':
        record.update(checkpoint=args.checkpoint, tta=bool(getattr(args, 'tta', False)))
    filename = 'result.json' if mode == 'train' else 'test_result.json'
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
        dict(type='ResultRecordHook', record=record, filename=filename)]
    return Runner.from_cfg(cfg)
