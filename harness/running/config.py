"""Reading a config of ``configs/`` and adapting it to the machine and the run."""
import os.path as osp
from pathlib import Path
from typing import Optional

import torch
from mmengine.config import Config
from mmengine.logging import print_log

from ..errors import ToolError
from ..models import syncbn_to_bn, to_dict
from ..tasks import TASKS
from ..tasks import config_path as setting_config_path
from ..tasks import identify, task_of_scope
from .distributed import DIST_TIMEOUT
from .validate import check_cfg_options


def load_config(config_path: str, cfg_options: Optional[dict] = None) -> Config:
    """Read a config and merge ``--cfg-options`` into it (a typo in their keys is an error)."""
    if not osp.isfile(config_path):
        hint = ''
        model, template = identify(config_path)
        if template:
            pattern = setting_config_path('*', template).name
            known = sorted(m for m, t in map(identify,
                                             Path(config_path).parent.glob(pattern))
                           if t == template)
            if known:
                hint = f' (no model {model!r} here; models: {", ".join(known)})'
        raise ToolError(f'config file not found: {config_path}{hint}')
    try:
        cfg = Config.fromfile(config_path)
    except Exception as exc:
        raise ToolError(f'cannot read config {config_path}: {type(exc).__name__}: {exc}')
    if cfg_options:
        check_cfg_options(cfg, cfg_options)
        cfg.merge_from_dict(cfg_options)
    return cfg


def task_of(cfg: Config) -> str:
    """The task whose toolbox the config is for (its ``default_scope``)."""
    scope = cfg.get('default_scope')
    task = task_of_scope(scope)
    if task is None:
        raise ToolError(f'config has default_scope {scope!r}; expected one of '
                        f'{sorted(t.scope for t in TASKS.values())} (inherit from a template '
                        'in configs/_base_)')
    return task.name


def adapt_to_machine(cfg: Config, distributed: bool) -> None:
    """SyncBN needs CUDA: fall back to BN on a CPU-only machine (with a log line); distributed
    CPU runs use gloo and DDP without device ids."""
    if torch.cuda.is_available():
        return
    before = to_dict(cfg.model)
    after = syncbn_to_bn(before)
    if after != before or cfg.get('sync_bn'):
        cfg.model = after
        cfg.pop('sync_bn', None)
        print_log(
            'SyncBN cannot run without CUDA: using BN (per-process statistics)' +
            (' in each of the processes' if distributed else ''),
            logger='current')
    cfg.env_cfg = cfg.get('env_cfg', {})
    if distributed:
        timeout = cfg.env_cfg.get('dist_cfg', {}).get('timeout', DIST_TIMEOUT)
        cfg.env_cfg.dist_cfg = dict(backend='gloo', timeout=timeout)
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            device_ids=None,
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))


def default_work_dir(config_path: str, toy: bool) -> str:
    return osp.join('work_dirs', ('toy/' if toy else '') + Path(config_path).parent.name,
                    Path(config_path).stem)


def use_atomic_checkpoints(cfg: Config) -> None:
    """Make the CheckpointHook write through :class:`AtomicLocalBackend` (local paths only)."""
    hook = (cfg.get('default_hooks') or {}).get('checkpoint')
    if not isinstance(hook, dict) or hook.get('backend_args') or hook.get('file_client_args'):
        return
    if '://' in str(hook.get('out_dir') or ''):
        return
    hook.backend_args = dict(backend='atomic_local')


def use_amp(cfg: Config) -> None:
    """Switch a config's optimizer wrapper to mixed precision for this machine: mmengine's
    ``AmpOptimWrapper`` (fp16 + loss scaling) on CUDA, bfloat16 autocast on a CPU."""
    wrapper = cfg.optim_wrapper
    if wrapper.get('type', 'OptimWrapper') not in ('OptimWrapper', 'AmpOptimWrapper',
                                                   'CPUAutocastOptimWrapper'):
        raise ToolError(f'--amp: cannot combine with optim_wrapper type {wrapper.type}')
    if torch.cuda.is_available():
        wrapper.type = 'AmpOptimWrapper'
        wrapper.setdefault('loss_scale', 'dynamic')
    else:
        wrapper.type = 'CPUAutocastOptimWrapper'
        wrapper.dtype = 'bfloat16'
