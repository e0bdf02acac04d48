"""The body of tools/train.py and tools/test.py: from parsed arguments to a ready Runner."""
import copy
import logging
import os
import os.path as osp
import pickle
import re
import sys
import traceback
from pathlib import Path
from typing import Callable, Optional

import torch
from mmengine.logging import print_log

from .launch import (DIST_TIMEOUT, UsageError, adapt_to_machine, check_config_keys, check_data,
                     check_model_builds, checkpoint_candidates, default_work_dir, identify,
                     load_config, record_base, task_of, use_atomic_checkpoints)


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
    """Load a checkpoint without running pickled code (weights_only + mmengine's allow-list);
    a missing, truncated, corrupt or code-carrying file is a :class:`UsageError`."""
    if not osp.isfile(path):
        raise UsageError(f'checkpoint not found: {path}')
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r'unsupported GLOBAL (\S+)', str(exc))
        if found:
            raise UsageError(f'checkpoint {path} is refused: loading it would import '
                             f'{found.group(1)} (only weights are loaded from files)')
        detail = re.search(r'WeightsUnpickler error:\s*(.+)', str(exc))
        raise UsageError(f'checkpoint {path} is refused: it is corrupt or not a plain weights '
                         f'file ({detail.group(1).strip() if detail else "unpickling failed"})')
    except Exception as exc:  # torch raises RuntimeError, EOFError, IndexError, ... on bad bytes
        first = str(exc).splitlines()[0].split('. ')[0][:160] if str(exc) else type(exc).__name__
        raise UsageError(f'checkpoint {path} is corrupt or truncated: {first}')
    if not isinstance(ckpt, dict):
        raise UsageError(f'checkpoint {path} holds a {type(ckpt).__name__}, not a dict')
    return ckpt.get('state_dict', ckpt)


def check_checkpoint_fits(path: str, cfg, task: str, state: Optional[dict] = None) -> None:
    """The checkpoint must have exactly the model's keys and shapes (another architecture's
    checkpoint would otherwise load silently non-strict). ``state``: its loaded weights."""
    from .complexity import build_task_model
    state = load_weights(path) if state is None else state
    model = build_task_model(cfg.model.to_dict(), task)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        k for k in own if k in state and hasattr(state[k], 'shape')
        and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        problems = dict(missing=missing, unexpected=unexpected, **{'with another shape': shapes})
        for what, keys in problems.items():
            if keys:
                parts.append(f'{len(keys)} keys {what} (e.g. {keys[0]})')
        raise UsageError(f'checkpoint {path} does not fit the model of this config (another '
                         f'architecture?): {"; ".join(parts)}')


def check_pretrained(cfg) -> None:
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

    paths = list(walk(cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else cfg.model))
    if cfg.get('load_from') and not cfg.get('resume'):
        paths.append(cfg.load_from)
    for path in paths:
        if '://' not in path:  # URLs are downloaded (and checked) by mmengine
            load_weights(path)


def find_resume_checkpoint(work_dir: str, cfg, task: str) -> Optional[str]:
    """The newest checkpoint of ``work_dir`` that loads (a missing, truncated or corrupt one is
    skipped with a log line); None where the work dir has none. Checkpoints none of which loads,
    or one of another architecture, are an error: training from the start would overwrite
    them."""
    candidates = checkpoint_candidates(work_dir)
    problems = []
    for path in candidates:
        try:
            state = load_weights(path)
        except UsageError as exc:
            print_log(f'auto-resume: skipping {exc}', logger='current', level=logging.WARNING)
            problems.append(str(exc))
            continue
        check_checkpoint_fits(path, cfg, task, state)
        print_log(f'auto-resume: resuming from {path}', logger='current')
        return path
    if problems:
        raise UsageError(f'none of the {len(problems)} checkpoints of {work_dir} loads (newest: '
                         f'{problems[0]}); move them away to train from the start')
    return None


def init_cpu_distributed(launcher: str, timeout: float = DIST_TIMEOUT) -> bool:
    """mmengine's init_dist assumes CUDA (it calls ``torch.cuda.set_device``); on a CPU-only
    machine start the gloo process group ourselves, before the runner is built, from torchrun's
    environment (``pytorch``) or Slurm's (``slurm``). Returns whether the run is distributed."""
    if launcher == 'none':
        return False
    import datetime

    import torch.distributed as dist
    if torch.cuda.is_available() or dist.is_initialized():
        return True
    if launcher == 'slurm':
        _slurm_env()
    elif launcher != 'pytorch':
        raise UsageError(f'launcher {launcher!r} needs CUDA; on the CPU use tools/dist_train.sh '
                         '(torchrun, gloo) or tools/slurm_train.sh')
    missing = [
        k for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT') if k not in os.environ
    ]
    if missing:
        raise UsageError(f'--launcher {launcher} but {", ".join(missing)} not set: start it '
                         'with tools/dist_train.sh (torchrun) or tools/slurm_train.sh')
    dist.init_process_group('gloo', timeout=datetime.timedelta(seconds=timeout))
    return True


def finish_distributed() -> None:
    """End the process group cleanly once the run is over: left to interpreter shutdown, gloo's
    threads can abort a rank ('terminate called without an active exception', SIGABRT), and
    torchrun then reports a finished job as failed."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _slurm_env() -> None:
    """The torchrun variables from Slurm's, as mmengine's ``_init_dist_slurm`` sets them."""
    import subprocess
    env = os.environ
    try:
        env['RANK'], env['WORLD_SIZE'] = env['SLURM_PROCID'], env['SLURM_NTASKS']
        env['LOCAL_RANK'] = env.get('SLURM_LOCALID', '0')
        if 'MASTER_ADDR' not in env:
            env['MASTER_ADDR'] = subprocess.getoutput(
                f'scontrol show hostname {env["SLURM_NODELIST"]} | head -n1').strip()
    except KeyError as exc:
        raise UsageError(f'--launcher slurm outside a Slurm job step ({exc.args[0]} not set)')
    env.setdefault('MASTER_PORT', '29500')


def build_runner(args, mode: str):
    """``mode`` is 'train' or 'test'. Every input is checked before the runner (which creates
    the work dir, its log folder and config dump) is built."""
    from mmengine.runner import Runner

    import backbones  # noqa: F401  (registers modules)
    from .toy.adapt import toy_config
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
            raise UsageError(f'--toy-data folder not found: {toy_data}')
        toy_config(cfg, task, data_root=toy_data, pretrained=pretrained)
        if args.cfg_options:  # the user's options win over the toy schedule and sizes
            cfg.merge_from_dict(args.cfg_options)
    elif toy_data:
        raise UsageError('--toy-data needs --toy')
    cfg.work_dir = args.work_dir or default_work_dir(args.config, args.toy)
    distributed = args.launcher != 'none'
    adapt_to_machine(cfg, distributed)
    if mode == 'train' and args.amp:
        from .amp import use_amp
        try:
            use_amp(cfg)
        except ValueError as exc:
            raise UsageError(str(exc))
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
                raise UsageError('this config has no tta_model / tta_pipeline for --tta')
            cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
            cfg.tta_model.module = cfg.model
            cfg.model = cfg.tta_model
    randomness = dict(cfg.get('randomness') or {})
    randomness.setdefault('seed', None)  # the runner draws one (and shares it between ranks)
    if args.seed is not None:
        randomness['seed'] = args.seed
    if getattr(args, 'deterministic', False):
        randomness['deterministic'] = True
    cfg.randomness = randomness
    cfg.launcher = args.launcher
    init_cpu_distributed(args.launcher,
                         cfg.get('env_cfg', {}).get('dist_cfg', {}).get('timeout', DIST_TIMEOUT))

    record = record_base(full_scale, args.config, model, template, task, toy=bool(args.toy))
    if mode == 'test':
        record.update(checkpoint=args.checkpoint, tta=bool(getattr(args, 'tta', False)))
    filename = 'result.json' if mode == 'train' else 'test_result.json'
    record_hook = dict(type='ResultRecordHook', record=record, filename=filename)
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [record_hook]
    return Runner.from_cfg(cfg)
