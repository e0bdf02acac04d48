"""What tools/train.py and tools/test.py share: reading a config of ``configs/``, adapting it to
toy data and to the machine (CPU fallbacks), checking inputs before anything is written, and
attaching the result record."""
import copy
import os
import os.path as osp
from pathlib import Path
from typing import Optional, Tuple

import torch
from mmengine.config import Config, DictAction  # noqa: F401  (DictAction re-exported)
from mmengine.logging import print_log

from .complexity import TASK_SCOPE, syncbn_to_bn
from .configgen import TEMPLATES
from .records import config_hash, git_commit

SCOPE_TASK = {scope: task for task, scope in TASK_SCOPE.items()}


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit code 2."""


def identify(config_path: str) -> Tuple[str, Optional[str]]:
    """(model name, template key) of a config named ``configs/<task>/<model>_<suffix>.py``."""
    path = Path(config_path)
    for template in sorted(TEMPLATES.values(), key=lambda t: -len(t.suffix)):
        if path.parent.name == template.task and path.stem.endswith('_' + template.suffix):
            return path.stem[:-len(template.suffix) - 1], template.key
    return path.stem, None


def load_config(config_path: str, cfg_options: Optional[dict] = None) -> Config:
    if not osp.isfile(config_path):
        raise UsageError(f'config file not found: {config_path}')
    try:
        cfg = Config.fromfile(config_path)
    except Exception as exc:
        raise UsageError(f'cannot read config {config_path}: {type(exc).__name__}: {exc}')
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def task_of(cfg: Config) -> str:
    scope = cfg.get('default_scope')
    if scope not in SCOPE_TASK:
        raise UsageError(f'config has default_scope {scope!r}; expected one of '
                         f'{sorted(SCOPE_TASK)} (inherit from a template in configs/_base_)')
    return SCOPE_TASK[scope]


def adapt_to_machine(cfg: Config, distributed: bool) -> None:
    """SyncBN needs CUDA: fall back to BN on a CPU-only machine (with a log line)."""
    if not torch.cuda.is_available():
        before = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else dict(cfg.model)
        after = syncbn_to_bn(copy.deepcopy(before))
        if after != before:
            cfg.model = after
            print_log('SyncBN cannot run without CUDA: using BN (per-process statistics)'
                      + (' in each of the processes' if distributed else ''), logger='current')
        cfg.env_cfg = cfg.get('env_cfg', {})
        if distributed:
            cfg.env_cfg.dist_cfg = dict(backend='gloo')
            cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None,
                                         broadcast_buffers=False)


def check_model_builds(cfg: Config, task: str) -> None:
    """Build the model once before the runner exists, so a typo in a config key is reported
    without touching the work dir."""
    from .complexity import build_task_model
    model_cfg = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else dict(cfg.model)
    try:
        build_task_model(model_cfg, task)
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f'the model of this config cannot be built: {type(exc).__name__}: '
                         f'{msg}')


def check_data(cfg: Config, task: str, splits=('train', 'val')) -> None:
    from .toy.checks import DatasetError, check_dataset
    loaders = {'train': 'train_dataloader', 'val': 'val_dataloader', 'test': 'test_dataloader'}
    for split in splits:
        loader = cfg.get(loaders[split])
        if not loader:
            continue
        ds = loader.dataset
        while 'dataset' in ds:
            ds = ds.dataset
        root = ds.get('data_root', '')
        if not root or not osp.isdir(root):
            raise UsageError(f'{split} data root not found: {root!r} (set the dataset\'s '
                             f'data_root, or use --toy for the built-in toy data)')
        try:
            check_dataset(task, root, splits=[_split_name(task, ds, split)])
        except DatasetError as exc:
            raise UsageError(str(exc))


def _split_name(task: str, ds: dict, split: str) -> str:
    if task == 'imagenet':
        return ds.get('split') or split
    if task == 'coco':
        return Path(ds.get('ann_file', '')).stem.replace('instances_', '') or split
    prefix = ds.get('data_prefix', {}).get('img_path', '')
    return Path(prefix).name or split


def full_scale_complexity(cfg: Config, task: str, cache_dir: str = 'work_dirs/.cache') -> dict:
    """Params (M) and GFLOPs of the config's model in the task's full-scale setting, cached by
    the hash of the model config (counting a detector at 1280x800 takes a while on a CPU)."""
    import json

    from .complexity import task_complexity
    from .records import atomic_write_text
    model_cfg = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else dict(cfg.model)
    key = config_hash(repr(sorted(model_cfg.items(), key=lambda kv: kv[0])) + task)
    cache = Path(cache_dir) / 'complexity' / f'{key}.json'
    if cache.is_file():
        try:
            return json.loads(cache.read_text())
        except ValueError:
            pass
    try:
        result = task_complexity(model_cfg, task)
    except Exception as exc:  # a record without FLOPs is still a record
        print_log(f'could not count params/FLOPs: {exc}', logger='current')
        return dict(params_m=None, gflops=None)
    out = dict(params_m=round(result.params_m, 3), gflops=round(result.gflops, 3))
    atomic_write_text(cache, json.dumps(out))
    return out


def record_base(cfg: Config, config_path: str, model: str, template: Optional[str],
                task: str, toy: bool) -> dict:
    """The static part of the result record; ``cfg`` is the full-scale config (before any toy
    adaptation), so params/FLOPs are those of the table's setting."""
    return dict(model=model, task=task, template=template, config=config_path,
                config_hash=config_hash(cfg.pretty_text), toy=toy,
                git_commit=git_commit(osp.dirname(osp.abspath(config_path))),
                **full_scale_complexity(cfg, task))


def default_work_dir(config_path: str, toy: bool) -> str:
    return osp.join('work_dirs', ('toy/' if toy else '') + Path(config_path).parent.name,
                    Path(config_path).stem)


def world_info() -> Tuple[int, int]:
    return int(os.environ.get('WORLD_SIZE', 1)), int(os.environ.get('RANK', 0))
