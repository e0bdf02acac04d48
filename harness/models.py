"""Building task models (classifier, detector, segmentor) outside a Runner.

Configs name SyncBN for the dense tasks; it cannot run on a CPU and is not needed to count,
check or convert, so models are built as configured and then reverted to BatchNorm with
``mmengine.model.revert_sync_batchnorm`` (same parameters and FLOPs).
"""
import copy
import importlib
from typing import Any, Dict

import torch.nn as nn

from .tasks import TASKS


def to_dict(cfg: Any) -> Dict[str, Any]:
    """A plain (deep-copied) dict of a config node."""
    return cfg.to_dict() if hasattr(cfg, 'to_dict') else copy.deepcopy(dict(cfg))


def register_toolbox(scope: str) -> None:
    """Register the modules of an OpenMMLab toolbox (``'mmdet'``, ...) in its registries."""
    importlib.import_module(f'{scope}.utils').register_all_modules(init_default_scope=False)


def build_in_scope(cfg: Dict[str, Any], scope: str, registry: str = 'MODELS') -> nn.Module:
    """Build ``cfg`` from ``registry`` of toolbox ``scope`` (as that toolbox's configs are
    built), with SyncBN reverted to BatchNorm."""
    import mmengine.registry as registries
    from mmengine.config import ConfigDict
    from mmengine.model import revert_sync_batchnorm
    register_toolbox(scope)
    # a ConfigDict, as the Runner passes: mmdet's detectors read e.g. ``train_cfg.rpn``
    with getattr(registries, registry).switch_scope_and_registry(scope) as scoped:
        module = scoped.build(ConfigDict(copy.deepcopy(cfg)))
    return revert_sync_batchnorm(module)


def build_task_model(model_cfg: Dict[str, Any],
                     task: str,
                     keep_init_cfg: bool = False) -> nn.Module:
    """Build a config's ``model`` dict in the toolbox of ``task``, in eval mode. The backbone's
    ``init_cfg`` is dropped (no pretrained weights are looked for) unless ``keep_init_cfg``;
    ``init_weights()`` is left to the caller."""
    cfg = to_dict(model_cfg)
    if isinstance(cfg.get('backbone'), dict) and not keep_init_cfg:
        cfg['backbone'].pop('init_cfg', None)
    return build_in_scope(cfg, TASKS[task].scope).eval()


def syncbn_to_bn(cfg: Any) -> Any:
    """A config with every ``SyncBN`` norm replaced by ``BN`` (for the Runner on a CPU)."""
    if isinstance(cfg, dict):
        out = {k: syncbn_to_bn(v) for k, v in cfg.items()}
        if out.get('type') == 'SyncBN':
            out['type'] = 'BN'
        return out
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(syncbn_to_bn(v) for v in cfg)
    return cfg
