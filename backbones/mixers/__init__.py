"""The 7x7 spatial mixers that tell the DW-family backbones apart.

Each mixer has the constructor of a depth-wise ``nn.Conv2d`` (so mmcv's ``ConvModule`` can build
it from ``conv_cfg``) and maps (B, C, H, W) to (B, C, H, W). The static one is plain
``nn.Conv2d(groups=C)``, registered by mmcv as ``'Conv2d'``.
"""
from .dynamic_dwconv import DynamicDWConv
from .idynamic_dwconv import IDynamicDWConv

__all__ = ['DynamicDWConv', 'IDynamicDWConv']
