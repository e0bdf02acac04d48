"""What tools/train.py and tools/test.py share: reading a config of ``configs/``, adapting it to
toy data and to the machine (CPU fallbacks), checking inputs before anything is written,
attaching the result record, and what makes a run survive faults (atomic checkpoints, resumable
randomness, finding the newest good checkpoint)."""
import copy
import difflib
import inspect
import os
import os.path as osp
import re
import zlib
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.config import Config, DictAction  # noqa: F401  (DictAction re-exported)
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS
from mmengine.utils import mkdir_or_exist

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
    """Read a config and merge ``--cfg-options`` into it (a typo in their keys is an error)."""
    if not osp.isfile(config_path):
        hint = ''
        model, template = identify(config_path)
        if template:
            known = sorted(m for m, t in (
                identify(str(p))
                for p in Path(config_path).parent.glob(f'*_{TEMPLATES[template].suffix}.py'))
                           if t == template)
            if known:
                hint = f' (no model {model!r} here; models: {", ".join(known)})'
        raise UsageError(f'config file not found: {config_path}{hint}')
    try:
        cfg = Config.fromfile(config_path)
    except Exception as exc:
        raise UsageError(f'cannot read config {config_path}: {type(exc).__name__}: {exc}')
    if cfg_options:
        check_cfg_options(cfg, cfg_options)
        cfg.merge_from_dict(cfg_options)
    return cfg


def task_of(cfg: Config) -> str:
    scope = cfg.get('default_scope')
    if scope not in SCOPE_TASK:
        raise UsageError(f'config has default_scope {scope!r}; expected one of '
                         f'{sorted(SCOPE_TASK)} (inherit from a template in configs/_base_)')
    return SCOPE_TASK[scope]


#: seconds a collective may wait for a peer before the process group gives up (a rank that
#: hangs instead of dying; torchrun ends the others when one dies)
DIST_TIMEOUT = 1800


def adapt_to_machine(cfg: Config, distributed: bool) -> None:
    """SyncBN needs CUDA: fall back to BN on a CPU-only machine (with a log line); distributed
    CPU runs use gloo and DDP without device ids."""
    if torch.cuda.is_available():
        return
    before = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else dict(cfg.model)
    after = syncbn_to_bn(copy.deepcopy(before))
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


def check_model_builds(cfg: Config, task: str) -> None:
    """Build the model once before the runner exists, so a typo in a config key is reported
    without touching the work dir."""
    from .complexity import build_task_model
    model_cfg = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else dict(cfg.model)
    try:
        build_task_model(model_cfg, task)
    except Exception as exc:
        msg = str(exc).splitlines()[0].split('. ')[0] if str(exc) else type(exc).__name__
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


def record_base(cfg: Config, config_path: str, model: str, template: Optional[str], task: str,
                toy: bool) -> dict:
    """The static part of the result record; ``cfg`` is the full-scale config (before any toy
    adaptation), so params/FLOPs are those of the table's setting."""
    # only the main process writes the record: the others skip counting (minutes for a detector)
    complexity = full_scale_complexity(cfg, task) if world_info()[1] == 0 else dict(
        params_m=None, gflops=None)
    return dict(
        model=model,
        task=task,
        template=template,
        config=config_path,
        config_hash=config_hash(cfg.pretty_text),
        toy=toy,
        git_commit=git_commit(osp.dirname(osp.abspath(config_path))),
        **complexity)


def default_work_dir(config_path: str, toy: bool) -> str:
    return osp.join('work_dirs', ('toy/' if toy else '') + Path(config_path).parent.name,
                    Path(config_path).stem)


def world_info() -> Tuple[int, int]:
    return int(os.environ.get('WORLD_SIZE', 1)), int(os.environ.get('RANK', 0))


# ---------------------------------------------------------------------------------------------
# Config keys: a typo is reported before the runner exists (mmengine builds loops, optimizer,
# schedulers, hooks and datasets late, after the work dir has a new log folder and config dump)

#: top-level keys the runner (or these tools) read although a config need not set them
RUNNER_KEYS = frozenset({
    'auto_scale_lr', 'compile', 'custom_hooks', 'data_preprocessor', 'default_hooks',
    'default_scope', 'env_cfg', 'experiment_name', 'find_unused_parameters', 'launcher',
    'load_from', 'log_level', 'log_processor', 'model', 'model_wrapper_cfg', 'optim_wrapper',
    'param_scheduler', 'randomness', 'resume', 'sync_bn', 'test_cfg', 'test_dataloader',
    'test_evaluator', 'train_cfg', 'train_dataloader', 'val_cfg', 'val_dataloader', 'val_evaluator',
    'visualizer', 'work_dir', 'activation_checkpointing', 'efficient_conv_bn_eval', 'tta_model',
    'tta_pipeline'
})
#: keys mmengine takes out of a typed dict before building it, per registry
_POPPED = {
    'OPTIM_WRAPPERS': {'optimizer', 'paramwise_cfg', 'constructor'},
    'PARAM_SCHEDULERS': {'convert_to_iter_based'},
}
#: untyped dicts the runner reads key by key: the keys it knows
_PLAIN_KEYS = {
    'randomness': {'seed', 'deterministic', 'diff_rank_seed'},
    'auto_scale_lr': {'enable', 'base_batch_size'},
    'env_cfg': {'cudnn_benchmark', 'mp_cfg', 'dist_cfg', 'resource_limit'},
}
_LOADER_KEYS = {
    'dataset', 'sampler', 'batch_sampler', 'collate_fn', 'worker_init_fn', 'num_batch_per_epoch',
    'disable_subprocess_warning'
}


def _accepted_args(cls: Any) -> Optional[set]:
    """Keyword arguments ``cls`` accepts, following ``**kwargs`` handed up the MRO to a base
    class's ``__init__``; None where it cannot be told (then any key is accepted)."""
    chain = inspect.getmro(cls) if inspect.isclass(cls) else [cls]
    names: set = set()
    for klass in chain:
        func = klass.__dict__.get('__init__') if inspect.isclass(cls) else klass
        if func is None:
            continue
        if func is object.__init__:
            return None  # **kwargs go elsewhere
        try:
            params = inspect.signature(func).parameters.values()
        except (TypeError, ValueError):
            return None
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            return names
    return None


def _typo(path: str, owner: str, key: str, known: Sequence[str]) -> 'UsageError':
    close = difflib.get_close_matches(key, sorted(known), n=1)
    hint = f' (did you mean {close[0]!r}?)' if close else ''
    return UsageError(f'config key {path}.{key}: {owner} has no argument {key!r}{hint}')


def _check_keys(path: str, owner: str, keys: Sequence[str], known: set) -> None:
    for key in keys:
        if key not in known and key not in ('type', '_scope_'):
            raise _typo(path, owner, key, known)


def _typed(path: str, node: Any, registry: str, scope: str, default: Optional[str] = None) -> None:
    """Check one typed dict: its type is registered and takes each of its keys."""
    import mmengine.registry as registries
    if not isinstance(node, dict):
        return
    typ = node.get('type', default)
    if typ is None:
        raise UsageError(f'config key {path} has no type (a typo in its name?)')
    if isinstance(typ, str):
        scope = node.get('_scope_', scope)
        with getattr(registries, registry).switch_scope_and_registry(scope) as reg:
            cls = reg.get(typ)
        if cls is None:
            raise UsageError(f'config key {path}: unknown type {typ!r} (not in the {scope} '
                             f'registry {registry.lower()})')
    else:
        cls = typ
    known = _accepted_args(cls)
    if known is not None:
        _check_keys(path, getattr(cls, '__name__', str(typ)),
                    [k for k in node if k not in _POPPED.get(registry, ())], known)


def _pipeline(path: str, steps: Any, scope: str) -> None:
    if isinstance(steps, dict):
        _typed(path, steps, 'TRANSFORMS', scope)
        steps = steps.get('transforms')
        path += '.transforms'
    for i, step in enumerate(steps if isinstance(steps, (list, tuple)) else []):
        _pipeline(f'{path}[{i}]', step, scope)


def _dataset(path: str, ds: Any, scope: str) -> None:
    if not isinstance(ds, dict):
        return
    _typed(path, ds, 'DATASETS', scope)
    _pipeline(f'{path}.pipeline', ds.get('pipeline', []), scope)
    for i, inner in enumerate(ds.get('datasets', [])):
        _dataset(f'{path}.datasets[{i}]', inner, scope)
    _dataset(f'{path}.dataset', ds.get('dataset'), scope)


def _each(path: str, node: Any) -> Iterator[Tuple[str, Any]]:
    if isinstance(node, (list, tuple)):
        for i, item in enumerate(node):
            yield f'{path}[{i}]', item
    elif node is not None:
        yield path, node


def check_config_keys(cfg: Config, task: str, mode: str = 'train') -> None:
    """Each typed dict the runner builds late (loops, dataloaders, datasets, pipelines,
    optimizer, schedulers, hooks, evaluators, visualizer) must name a registered type that takes
    each of its keys: a typo is one error line before anything is written. ``mode``: 'train'
    checks everything, 'test' what testing builds."""
    from torch.utils.data import DataLoader
    scope = TASK_SCOPE[task]
    splits = ('train', 'val', 'test') if mode == 'train' else ('test', )
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if isinstance(loader, dict):
            _check_keys(f'{split}_dataloader', 'the dataloader', list(loader),
                        _accepted_args(DataLoader) | _LOADER_KEYS)
            _dataset(f'{split}_dataloader.dataset', loader.get('dataset'), scope)
            for key in ('sampler', 'batch_sampler'):
                _typed(f'{split}_dataloader.{key}', loader.get(key), 'DATA_SAMPLERS', scope)
        loop = cfg.get(f'{split}_cfg')
        if isinstance(loop, dict):
            default = dict(
                val='ValLoop', test='TestLoop').get(split) or ('EpochBasedTrainLoop' if loop.get(
                    'by_epoch', True) else 'IterBasedTrainLoop')
            node = {k: v for k, v in loop.items() if k != 'by_epoch' or 'type' in loop}
            _typed(f'{split}_cfg', node, 'LOOPS', scope, default)
        if split != 'train':
            evaluator = cfg.get(f'{split}_evaluator')
            if isinstance(evaluator, dict) and evaluator.get('type') == 'Evaluator':
                evaluator = evaluator.get('metrics')
            for path, metric in _each(f'{split}_evaluator', evaluator):
                _typed(path, metric, 'METRICS', scope)
    if mode == 'train':
        wrapper = cfg.get('optim_wrapper')
        if isinstance(wrapper, dict):
            _typed('optim_wrapper', wrapper, 'OPTIM_WRAPPERS', scope, 'OptimWrapper')
            _typed('optim_wrapper.optimizer', wrapper.get('optimizer'), 'OPTIMIZERS', scope)
        for path, sched in _each('param_scheduler', cfg.get('param_scheduler')):
            _typed(path, sched, 'PARAM_SCHEDULERS', scope)
    for name, hook in (cfg.get('default_hooks') or {}).items():
        _typed(f'default_hooks.{name}', hook, 'HOOKS', scope)
    for path, hook in _each('custom_hooks', cfg.get('custom_hooks')):
        _typed(path, hook, 'HOOKS', scope)
    vis = cfg.get('visualizer')
    if isinstance(vis, dict):
        _typed('visualizer', vis, 'VISUALIZERS', scope)
        for path, backend in _each('visualizer.vis_backends', vis.get('vis_backends')):
            _typed(path, backend, 'VISBACKENDS', scope)
    _typed('log_processor', cfg.get('log_processor'), 'LOG_PROCESSORS', scope, 'LogProcessor')
    for name, known in _PLAIN_KEYS.items():
        if isinstance(cfg.get(name), dict):
            _check_keys(name, 'the runner', list(cfg[name]), known)


def check_cfg_options(cfg: Config, options: Optional[Dict[str, Any]]) -> None:
    """A ``--cfg-options`` key whose first part is neither in the config nor read by the runner
    is a typo (mmengine would silently add it)."""
    for key in options or {}:
        top = key.split('.')[0]
        if top not in cfg and top not in RUNNER_KEYS:
            close = difflib.get_close_matches(top, sorted(set(cfg.keys()) | RUNNER_KEYS), n=1)
            hint = f' (did you mean {close[0]!r}?)' if close else ''
            raise UsageError(f'--cfg-options {key}: the config has no key {top!r}{hint}')


# ---------------------------------------------------------------------------------------------
# Faults: atomic checkpoint files, randomness that a resumed run replays, the newest good
# checkpoint of a work dir


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend, but ``put`` writes a temporary file in the same folder,
    fsyncs it and renames it over the target: a process killed while saving a checkpoint leaves
    the previous files intact and never a truncated ``epoch_N.pth`` under its final name."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        filepath = str(filepath)
        mkdir_or_exist(osp.dirname(filepath) or '.')
        tmp = osp.join(osp.dirname(filepath), f'.{osp.basename(filepath)}.{os.getpid()}.tmp')
        try:
            with open(tmp, 'wb') as f:
                f.write(obj)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, filepath)
        except BaseException:
            if osp.exists(tmp):
                os.remove(tmp)
            raise


register_backend('atomic_local', AtomicLocalBackend, force=True)


def use_atomic_checkpoints(cfg: Config) -> None:
    """Make the CheckpointHook write through :class:`AtomicLocalBackend` (local paths only)."""
    hook = (cfg.get('default_hooks') or {}).get('checkpoint')
    if not isinstance(hook, dict) or hook.get('backend_args') or hook.get('file_client_args'):
        return
    if '://' in str(hook.get('out_dir') or ''):
        return
    hook.backend_args = dict(backend='atomic_local')


@HOOKS.register_module()
class EpochSeedHook(Hook):
    """Reseed python, numpy and torch at the start of each training epoch from (seed, epoch).

    mmengine restores the model, optimizer, schedulers and message hub on resume, but not the
    random generators; a resumed run would draw other augmentations, drop-path masks and
    mixup/cutmix pairs than the uninterrupted run. Reseeding from the epoch makes a run resumed
    from an epoch checkpoint replay exactly the epochs the uninterrupted run trains (with
    non-persistent loader workers, which are seeded from the main process at each epoch)."""
    priority = 'VERY_HIGH'

    def before_train_epoch(self, runner) -> None:
        from mmengine.runner.utils import set_random_seed
        randomness = runner.cfg.get('randomness') or {}
        seed = (int(runner.seed) + 1_000_003 * runner.epoch) % 2**31
        set_random_seed(seed, diff_rank_seed=randomness.get('diff_rank_seed', False))


@HOOKS.register_module()
class RankMeanLogHook(Hook):
    """Log the mean over the processes of each training output (losses, accuracies) instead of
    rank 0's own: the logged loss of an N-process run is then that of its whole batch, as in a
    1-process run with the same total batch. Two small all-reduces per iteration; where the
    processes' output names differ, rank 0's values are logged as they are."""
    priority = 'HIGHEST'  # before RuntimeInfoHook records the outputs in the message hub

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: Any = None,
                         outputs: Optional[dict] = None) -> None:
        from mmengine.dist import all_reduce, all_reduce_dict, get_world_size
        if not outputs or get_world_size() < 2:
            return
        values = {
            k:
            v.detach().float().reshape(-1)[:1].clone()
            if torch.is_tensor(v) else torch.tensor([float(v)])
            for k, v in outputs.items() if torch.is_tensor(v) or isinstance(v, (int, float))
        }
        names = float(zlib.crc32('|'.join(sorted(values)).encode()))
        check = torch.tensor([names, -names], dtype=torch.float64)
        all_reduce(check, op='max')
        if check[0] != -check[1]:
            return
        all_reduce_dict(values, op='mean')
        for key, value in values.items():
            outputs[key] = value.reshape(())


_CKPT_NAME = re.compile(r'^(epoch|iter)_(\d+)\.pth$')


def checkpoint_candidates(work_dir: str) -> List[str]:
    """The checkpoints of a work dir, newest first: the one ``last_checkpoint`` names, then the
    ``epoch_N.pth`` / ``iter_N.pth`` files by decreasing N."""
    out: List[str] = []
    last = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(last):
        with open(last) as f:
            named = f.read().strip()
        if named:
            out.append(named if osp.isabs(named) else osp.join(work_dir, named))
    if osp.isdir(work_dir):
        found = [(int(m.group(2)), osp.join(work_dir, name)) for name in os.listdir(work_dir)
                 for m in [_CKPT_NAME.match(name)] if m]
        out += [p for _, p in sorted(found, reverse=True) if p not in out]
    return out
