"""Backbones for "On the Connection between Local Attention and Dynamic Depth-wise Convolution".

Importing the package applies the compatibility fixes of :mod:`backbones.compat` and registers
the backbones, mixers, metrics, hooks and optimizer wrappers in mmengine's root registries, from
where mmpretrain, mmdet and mmseg configs find them
(``custom_imports=dict(imports=['backbones'])``). Only what a config needs lives here; the
harness that generates configs, runs and collects them is the ``harness`` package.
"""
from . import compat  # noqa: F401  (first: fixes must be in place before anything loads)
from . import engine, evaluation  # noqa: F401  (registrations)
from .dwnet import DWConvNet, DWNet, DynamicDWConvNet, IDynamicNet
from .mixers import DynamicDWConv, IDynamicDWConv
from .properties import BackboneProperties
from .swin import SwinNet
from .zoo import (MODEL_NAMES, ModelInfo, build_backbone, get_backbone_cfg, get_model_info,
                  get_properties, register_model)

__all__ = [
    'BackboneProperties', 'DWNet', 'DWConvNet', 'DynamicDWConvNet', 'IDynamicNet', 'SwinNet',
    'DynamicDWConv', 'IDynamicDWConv', 'MODEL_NAMES', 'ModelInfo', 'build_backbone',
    'get_backbone_cfg', 'get_model_info', 'get_properties', 'register_model'
]
