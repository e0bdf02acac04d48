"""The eight models of the paper's table, by short name.

A zoo entry is just a backbone config; ``build_backbone('idynamic_t')`` builds it through the
registry exactly as a config file would. ``register_model`` adds entries (e.g. a submitted
backbone) so that tools treat them like the paper's.
"""
import copy
from typing import Dict, List, Optional

import torch.nn as nn

from .properties import BackboneProperties
from .registry import MODELS

_ZOO: Dict[str, dict] = {}
PAPER_MODELS: List[str] = []

#: drop-path rates of the official recipes, per size and task
DROP_PATH = {
    't': dict(imagenet=0.2, coco=0.2, ade20k=0.3),
    'b': dict(imagenet=0.5, coco=0.3, ade20k=0.3),
}


def register_model(name: str,
                   backbone_cfg: dict,
                   display_name: str = '',
                   drop_path: Optional[Dict[str, float]] = None) -> None:
    """Make ``name`` known to the tools.

    Args:
        backbone_cfg: a registry config (``type=...``) of the classification backbone.
        drop_path: drop-path rate per task ('imagenet', 'coco', 'ade20k'); defaults to the
            T-size recipe.
    """
    if 'type' not in backbone_cfg:
        raise ValueError(f'backbone config for {name!r} needs a "type"')
    _ZOO[name] = dict(cfg=copy.deepcopy(backbone_cfg), display_name=display_name or name,
                      drop_path=dict(drop_path or DROP_PATH['t']))


for _family, _type, _display in [('swin', 'SwinNet', 'Swin'), ('dwconv', 'DWConvNet', 'DW Conv.'),
                                 ('ddwconv', 'DynamicDWConvNet', 'D-DW Conv.'),
                                 ('idynamic', 'IDynamicNet', 'I-Dynamic')]:
    for _size, _arch in [('t', 'tiny'), ('b', 'base')]:
        _name = f'{_family}_{_size}'
        register_model(_name, dict(type=_type, arch=_arch,
                                   drop_path_rate=DROP_PATH[_size]['imagenet']),
                       f'{_display}-{_size.upper()}', DROP_PATH[_size])
        PAPER_MODELS.append(_name)


def model_names() -> List[str]:
    return list(_ZOO)


# The paper's eight, in table order; ``model_names()`` also lists registered extras.
MODEL_NAMES = list(PAPER_MODELS)


def get_backbone_cfg(name: str) -> dict:
    if name not in _ZOO:
        raise KeyError(f'unknown model {name!r}; known: {", ".join(_ZOO)}')
    return copy.deepcopy(_ZOO[name]['cfg'])


def task_drop_path(name: str, task: str) -> float:
    get_backbone_cfg(name)  # raises for unknown names
    return _ZOO[name]['drop_path'][task]


def display_name(name: str) -> str:
    return _ZOO[name]['display_name'] if name in _ZOO else name


def build_backbone(name: str, **overrides) -> nn.Module:
    """Build the backbone of zoo entry ``name``; ``overrides`` replace config keys."""
    cfg = get_backbone_cfg(name)
    cfg.update(overrides)
    return MODELS.build(cfg)


def get_properties(name: str) -> BackboneProperties:
    cls = MODELS.get(get_backbone_cfg(name)['type'])
    if cls is None or not hasattr(cls, 'properties'):
        raise KeyError(f'{name!r} has no property record')
    return cls.properties
