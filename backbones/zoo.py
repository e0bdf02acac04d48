"""The models of the benchmark by short name, each with one metadata record.

A zoo entry is a backbone config plus what tools need to know about the model:
``build_backbone('idynamic_t')`` builds it through the registry exactly as a config would, and
:func:`get_model_info` says its family, display name, the paper's values, drop-path rates and
metafile tags. :func:`register_model` adds entries (e.g. a submitted backbone) so that every
tool treats them like the paper's.
"""
import copy
import importlib
import pkgutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

import torch.nn as nn

from .properties import BackboneProperties
from .registry import MODELS

#: drop-path rates of the official recipes, per size and setting: a task's rate ('imagenet',
#: 'coco', 'ade20k'), overridden for one setting by its key (Swin's 22k recipe uses 0.2 for B)
DROP_PATH = {
    't': dict(imagenet=0.2, coco=0.2, ade20k=0.3),
    'b': dict(imagenet=0.5, coco=0.3, ade20k=0.3, imagenet_in22k=0.2, imagenet_in22k_ft=0.2),
}


@dataclass(frozen=True)
class ModelInfo:
    """Everything the tools know about a zoo model.

    Args:
        name (str): zoo name, e.g. ``'idynamic_t'``.
        backbone (dict): registry config of its classification backbone.
        family (str): e.g. ``'idynamic'``; models of one family share a metafile.
        family_title (str): e.g. ``'I-Dynamic'``.
        display_name (str): e.g. ``'I-Dynamic-T'``.
        drop_path (dict): drop-path rate per task, or per setting key (overrides the task's).
        paper (dict): the paper's values per setting key: ``{'imagenet': {'params_m': 26,
            'gflops': 3.95, 'top1': 81.8, ...}, ...}``; empty for models not in the paper.
        metafile_tags (tuple): ``Architecture`` entries of its OpenMMLab metafile.
        in_paper (bool): one of the paper's eight models.
        extra_settings (tuple): settings written for it besides the default ones (e.g. the
            ImageNet-22k ones of the paper's second table).
        config_root (str): the folder of its generated configs, relative to the repository:
            ``'configs'`` for the paper's models, the submission's own folder for others.
    """
    name: str
    backbone: dict
    family: str
    family_title: str
    display_name: str
    drop_path: Mapping[str, float]
    paper: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    metafile_tags: Sequence[str] = ()
    in_paper: bool = False
    extra_settings: Sequence[str] = ()
    config_root: str = 'configs'

    def drop_path_rate(self, task: str, setting: str = '') -> float:
        return self.drop_path.get(setting, self.drop_path[task])


_ZOO: Dict[str, ModelInfo] = {}


def register_model(name: str,
                   backbone_cfg: dict,
                   display_name: str = '',
                   drop_path: Optional[Mapping[str, float]] = None,
                   family: str = '',
                   family_title: str = '',
                   paper: Optional[Mapping[str, Mapping[str, float]]] = None,
                   metafile_tags: Sequence[str] = (),
                   extra_settings: Sequence[str] = (),
                   config_root: str = 'configs') -> ModelInfo:
    """Make ``name`` known to the tools (see :class:`ModelInfo` for the arguments).

    ``family`` defaults to the name without its size suffix, ``drop_path`` to the T-size
    recipe, ``display_name`` to the name.
    """
    if 'type' not in backbone_cfg:
        raise ValueError(f'backbone config for {name!r} needs a "type"')
    family = family or name.rsplit('_', 1)[0]
    info = ModelInfo(
        name=name,
        backbone=copy.deepcopy(backbone_cfg),
        family=family,
        family_title=family_title or family,
        display_name=display_name or name,
        drop_path=dict(drop_path or DROP_PATH['t']),
        paper={
            k: dict(v)
            for k, v in (paper or {}).items()
        },
        metafile_tags=tuple(metafile_tags),
        in_paper=bool(paper),
        extra_settings=tuple(extra_settings),
        config_root=config_root)
    _ZOO[name] = info
    return info


def _paper_row(params_m, gflops, top1, real, coco_params, coco_flops, ap_box, ap_mask, ade_params,
               ade_flops, miou) -> Dict[str, Dict[str, float]]:
    """One row of the paper's main table (Han et al., ICLR 2022), keyed by setting: params (M)
    and FLOPs (G, 1 MAC = 1 FLOP) at ImageNet 224, Cascade Mask R-CNN 3x at 1280x800 and UperNet
    160k at 2048x512."""
    return {
        'imagenet': dict(params_m=params_m, gflops=gflops, top1=top1, real_top1=real),
        'coco_cascade':
        dict(params_m=coco_params, gflops=coco_flops, ap_box=ap_box, ap_mask=ap_mask),
        'ade20k': dict(params_m=ade_params, gflops=ade_flops, miou=miou),
    }


_IN22K = ('imagenet_in22k', 'imagenet_in22k_ft', 'ade20k_in22k')
#: family, registered type, title, metafile tags
_FAMILIES = [
    ('swin', 'SwinNet', 'Swin', ('Local Attention', 'Shifted Windows')),
    ('dwconv', 'DWConvNet', 'DW Conv.', ('Depth-wise Convolution', )),
    ('ddwconv', 'DynamicDWConvNet', 'D-DW Conv.', ('Dynamic Depth-wise Convolution', )),
    ('idynamic', 'IDynamicNet', 'I-Dynamic', ('Inhomogeneous Dynamic Depth-wise Convolution', )),
]
#: the paper's tables, in its row order; second table: ImageNet-22k pre-training
_PAPER = {
    'swin_t': _paper_row(28, 4.5, 81.3, 86.6, 86, 747, 50.5, 43.7, 60, 947, 44.5),
    'dwconv_t': _paper_row(24, 3.8, 81.3, 86.8, 82, 730, 49.9, 43.4, 56, 928, 45.5),
    'ddwconv_t': _paper_row(51, 3.8, 81.9, 87.3, 108, 730, 50.5, 43.7, 83, 928, 45.7),
    'idynamic_t': _paper_row(26, 3.95, 81.8, 87.1, 84, 741, 50.8, 44.0, 58, 939, 46.2),
    'swin_b': _paper_row(88, 15.4, 83.3, 87.9, 145, 986, 51.9, 45.0, 121, 1192, 48.1),
    'dwconv_b': _paper_row(74, 12.9, 83.2, 87.9, 132, 924, 51.1, 44.2, 108, 1129, 48.3),
    'ddwconv_b': _paper_row(162, 13.0, 83.2, 87.9, 219, 924, 51.2, 44.4, 195, 1129, 48.0),
    'idynamic_b': _paper_row(80, 13.6, 83.4, 88.0, 137, 948, 51.8, 44.8, 114, 1153, 47.8),
}
_PAPER_IN22K = {
    'swin_b': dict(top1=85.2, miou=49.4),
    'dwconv_b': dict(top1=84.8, miou=50.1),
    'ddwconv_b': dict(top1=85.0, miou=49.6),
}

for _size, _arch in [('t', 'tiny'), ('b', 'base')]:
    for _family, _type, _title, _tags in _FAMILIES:
        _name = f'{_family}_{_size}'
        _paper = dict(_PAPER[_name])
        if _name in _PAPER_IN22K:
            _paper['imagenet_in22k_ft'] = dict(top1=_PAPER_IN22K[_name]['top1'])
            _paper['ade20k_in22k'] = dict(miou=_PAPER_IN22K[_name]['miou'])
        register_model(
            _name,
            dict(type=_type, arch=_arch, drop_path_rate=DROP_PATH[_size]['imagenet']),
            display_name=f'{_title}-{_size.upper()}',
            drop_path=DROP_PATH[_size],
            family=_family,
            family_title=_title,
            paper=_paper,
            metafile_tags=_tags,
            extra_settings=_IN22K if _size == 'b' else ())

#: the paper's eight, in table order
PAPER_MODELS: List[str] = list(_PAPER)
MODEL_NAMES = PAPER_MODELS


def get_model_info(name: str) -> ModelInfo:
    """The metadata record of ``name``; a submitted backbone of ``contrib/`` is found by name."""
    if name not in _ZOO:
        load_contrib()
    if name not in _ZOO:
        raise KeyError(f'unknown model {name!r}; known: {", ".join(_ZOO)}')
    return _ZOO[name]


def known_models() -> List[str]:
    """The paper's models in table order, then the other registered ones."""
    return PAPER_MODELS + [m for m in _ZOO if m not in PAPER_MODELS]


def get_backbone_cfg(name: str) -> dict:
    return copy.deepcopy(get_model_info(name).backbone)


def display_name(name: str) -> str:
    try:
        return get_model_info(name).display_name
    except KeyError:
        return name


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
