"""D-DW-Conv's mixer: one kernel per sample and channel."""
from typing import Optional

import torch
import torch.nn as nn

from ..ops import dynamic_dwconv
from ..registry import MODELS
from .base import DepthwiseMixer


@MODELS.register_module()
class DynamicDWConv(DepthwiseMixer):
    """Homogeneous dynamic depth-wise convolution (the paper's D-DW-Conv).

    One KxK kernel per sample and channel, predicted from the globally pooled input:
    ``GAP -> 1x1 conv (C -> C/r, no bias) -> BN -> ReLU -> 1x1 conv (C/r -> C*K*K)``, used as-is
    (no softmax), plus one learned static bias per channel. Kernels are laid out (C, K, K).

    Args:
        in_channels, out_channels, kernel_size: as :class:`DepthwiseMixer` (a depth-wise,
            size-preserving KxK conv; K defaults to 7).
        bias (bool): a learned static bias per channel. Defaults to True.
        reduction (int): r, the kernel generator's channel reduction. Defaults to 4.
        norm_cfg (dict, optional): norm of the generator; None: BN. Defaults to None (the
            backbone passes its own ``norm_cfg``).
        impl (str): implementation of the op, see :func:`backbones.ops.dynamic_dwconv`
            (``'auto'``: batch folded into groups). Defaults to ``'auto'``.
        **conv_args: ``stride``, ``padding``, ``dilation``, ``groups`` of
            :class:`DepthwiseMixer`, as ``ConvModule`` passes them.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int = 7,
                 bias: bool = True,
                 reduction: int = 4,
                 norm_cfg: Optional[dict] = None,
                 impl: str = 'auto',
                 **conv_args) -> None:
        super().__init__(in_channels, out_channels, kernel_size, **conv_args)
        self.impl = impl
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.build_kernel_generator(
            in_channels * kernel_size**2, reduction, norm_cfg, reduce_bias=False)
        self.bias = nn.Parameter(torch.zeros(in_channels)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        k = self.kernel_size[0]
        weight = self.kernel_gen(self.reduce(self.pool(x))).view(b, c, k, k)
        return dynamic_dwconv(x, weight, self.bias, impl=self.impl)
