from typing import Optional

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule

from ..ops import idynamic_dwconv_fused
from ..registry import MODELS
from .base import DepthwiseMixer


@MODELS.register_module()
class IDynamicDWConv(DepthwiseMixer):
    """Inhomogeneous dynamic depth-wise convolution (the paper's I-Dynamic).

    One KxK kernel per sample, output position and channel group, predicted at full resolution:
    ``1x1 conv (C -> C/r) -> BN -> ReLU -> 1x1 conv (C/r -> K*K*G)``; each of the G groups of
    C/G contiguous channels shares its kernel, like the channels of one attention head share
    their attention weights. Zero padding, no bias.

    ``kernel_groups`` is G. The official code uses G = 32 at every stage (``group_channels`` set
    to the head count); the paper's FLOPs correspond to G = number of heads. ``impl`` selects the
    implementation of :func:`~backbones.ops.idynamic_dwconv_fused` ('auto': fused on CPU, Triton
    on CUDA).
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int = 7,
                 stride: int = 1,
                 padding: Optional[int] = None,
                 dilation: int = 1,
                 groups: Optional[int] = None,
                 bias: bool = False,
                 kernel_groups: int = 32,
                 reduction: int = 4,
                 norm_cfg: Optional[dict] = None,
                 impl: str = 'auto') -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups)
        if bias:
            raise ValueError('IDynamicDWConv has no bias (as in the paper)')
        if in_channels % kernel_groups:
            raise ValueError(f'kernel_groups={kernel_groups} must divide the {in_channels} '
                             'channels')
        channels, k = in_channels, kernel_size
        self.kernel_groups = kernel_groups
        self.impl = impl
        self.reduce = ConvModule(
            channels,
            channels // reduction,
            1,
            bias=True,
            norm_cfg=norm_cfg or dict(type='BN'),
            act_cfg=dict(type='ReLU'))
        self.kernel_gen = nn.Conv2d(channels // reduction, k * k * kernel_groups, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The generator's last 1x1 conv is fused into the op (``impl`` 'auto' / 'fused'): the
        # (B, K*K*G, H, W) kernel tensor, 16x the activations at stage 1, is made and used tile
        # by tile and never stored. The other impls make it with ``kernel_gen`` as before.
        return idynamic_dwconv_fused(
            x,
            self.reduce(x),
            self.kernel_gen.weight,
            self.kernel_gen.bias,
            kernel_groups=self.kernel_groups,
            impl=self.impl)

    def extra_repr(self) -> str:
        return super().extra_repr() + f', kernel_groups={self.kernel_groups}'
