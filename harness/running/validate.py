"""Checks of a run's inputs before anything is written: config keys (mmengine builds loops,
optimizer, schedulers, hooks and datasets late, after the work dir has a new log folder and
config dump), ``--cfg-options`` keys, the model, and the datasets on disk."""
import difflib
import inspect
import os.path as osp
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Sequence, Tuple

from mmengine.config import Config

from ..errors import ToolError, first_line
from ..models import build_task_model, to_dict
from ..tasks import TASKS

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


def _typo(path: str, owner: str, key: str, known: Sequence[str]) -> 'ToolError':
    close = difflib.get_close_matches(key, sorted(known), n=1)
    hint = f' (did you mean {close[0]!r}?)' if close else ''
    return ToolError(f'config key {path}.{key}: {owner} has no argument {key!r}{hint}')


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
        raise ToolError(f'config key {path} has no type (a typo in its name?)')
    if isinstance(typ, str):
        scope = node.get('_scope_', scope)
        with getattr(registries, registry).switch_scope_and_registry(scope) as reg:
            cls = reg.get(typ)
        if cls is None:
            raise ToolError(f'config key {path}: unknown type {typ!r} (not in the {scope} '
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
    scope = TASKS[task].scope
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
            raise ToolError(f'--cfg-options {key}: the config has no key {top!r}{hint}')


def check_model_builds(cfg: Config, task: str) -> None:
    """Build the model once before the runner exists, so a typo in a config key is reported
    without touching the work dir."""
    try:
        build_task_model(to_dict(cfg.model), task)
    except Exception as exc:
        msg = first_line(exc).split('. ')[0]
        raise ToolError(f'the model of this config cannot be built: {type(exc).__name__}: '
                        f'{msg}')


def check_data(cfg: Config, task: str, splits=('train', 'val')) -> None:
    from ..toy.checks import DatasetError, check_dataset
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
            raise ToolError(f'{split} data root not found: {root!r} (set the dataset\'s '
                            f'data_root, or use --toy for the built-in toy data)')
        try:
            check_dataset(task, root, splits=[_split_name(task, ds, split)])
        except DatasetError as exc:
            raise ToolError(str(exc))


def _split_name(task: str, ds: dict, split: str) -> str:
    if task == 'imagenet':
        return ds.get('split') or split
    if task == 'coco':
        return Path(ds.get('ann_file', '')).stem.replace('instances_', '') or split
    prefix = ds.get('data_prefix', {}).get('img_path', '')
    return Path(prefix).name or split
