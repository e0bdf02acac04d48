"""The eight models of the paper's table, by short name.

A zoo entry is just a backbone config; ``build_backbone('idynamic_t')`` builds it through the
registry exactly as a config file would. ``register_model`` adds entries (e.g. a submitted
backbone) so that tools treat them like the paper's.
"""
import copy
import importlib
import pkgutil
import warnings
from pathlib import Path
from typing import Dict, List, Optional

import torch.nn as nn

from .properties import BackboneProperties
from .registry import MODELS

_ZOO: Dict[str, dict] = {}
PAPER_MODELS: List[str] = []

#: drop-path rates of the official recipes, per size and task (a config template key, e.g.
#: 'imagenet_in22k', overrides its task's rate; Swin's 22k recipe uses 0.2 for B)
DROP_PATH = {
    't': dict(imagenet=0.2, coco=0.2, ade20k=0.3),
    'b': dict(imagenet=0.5, coco=0.3, ade20k=0.3, imagenet_in22k=0.2, imagenet_in22k_ft=0.2),
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
    _ZOO[name] = dict(
        cfg=copy.deepcopy(backbone_cfg),
        display_name=display_name or name,
        drop_path=dict(drop_path or DROP_PATH['t']))


for _family, _type, _display in [('swin', 'SwinNet', 'Swin'), ('dwconv', 'DWConvNet', 'DW Conv.'),
                                 ('ddwconv', 'DynamicDWConvNet', 'D-DW Conv.'),
                                 ('idynamic', 'IDynamicNet', 'I-Dynamic')]:
    for _size, _arch in [('t', 'tiny'), ('b', 'base')]:
        _name = f'{_family}_{_size}'
        register_model(_name,
                       dict(type=_type, arch=_arch, drop_path_rate=DROP_PATH[_size]['imagenet']),
                       f'{_display}-{_size.upper()}', DROP_PATH[_size])
        PAPER_MODELS.append(_name)


def model_names() -> List[str]:
    return list(_ZOO)


# The paper's eight, in table order; ``model_names()`` also lists registered extras.
MODEL_NAMES = list(PAPER_MODELS)


def get_backbone_cfg(name: str) -> dict:
    if name not in _ZOO:
        load_contrib()  # a submitted backbone of contrib/, known by name
    if name not in _ZOO:
        raise KeyError(f'unknown model {name!r}; known: {", ".join(_ZOO)}')
    return copy.deepcopy(_ZOO[name]['cfg'])


def task_drop_path(name: str, task: str, template_key: str = '') -> float:
    get_backbone_cfg(name)  # raises for unknown names
    rates = _ZOO[name]['drop_path']
    return rates.get(template_key, rates[task])


def load_contrib() -> None:
    """Import the submitted backbones of the repository's ``contrib/`` folder once (each
    registers its zoo entries), for tools that know models by name only, e.g. the leaderboard;
    configs import theirs through ``custom_imports``."""
    global _CONTRIB_LOADED
    if _CONTRIB_LOADED:
        return
    _CONTRIB_LOADED = True
    folder = Path(__file__).resolve().parent.parent / 'contrib'
    for info in pkgutil.iter_modules([str(folder)]) if folder.is_dir() else []:
        try:
            importlib.import_module(f'contrib.{info.name}')
        except Exception as exc:  # one broken submission must not break every tool
            warnings.warn(f'contrib.{info.name} does not import: {exc}')


_CONTRIB_LOADED = False


def display_name(name: str) -> str:
    if name not in _ZOO:
        load_contrib()
    return _ZOO[name]['display_name'] if name in _ZOO else name


def build_backbone(name: str, **overrides) -> nn.Module:
    """Build the backbone of zoo entry ``name``; ``overrides`` replace config keys."""
    cfg = get_backbone_cfg(name)
    cfg.update(overrides)
    return MODELS.build(cfg)


def get_properties(name: str) -> BackboneProperties:
    if name not in _ZOO:
        load_contrib()
    cls = MODELS.get(get_backbone_cfg(name)['type'])
    if cls is None or not hasattr(cls, 'properties'):
        raise KeyError(f'{name!r} has no property record')
    return cls.properties
