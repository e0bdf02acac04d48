"""I-Dynamic's mixer: one kernel per sample, position and channel group."""
from typing import Optional

import torch

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

    Args:
        in_channels, out_channels, kernel_size: as :class:`DepthwiseMixer` (a depth-wise,
            size-preserving KxK conv; K defaults to 7).
        bias (bool): must be False (the paper's I-Dynamic has none); accepted so that
            ``ConvModule`` can pass it. Defaults to False.
        kernel_groups (int): G. The official code uses G = 32 at every stage (its
            ``group_channels`` is set to the head count); the paper's FLOPs correspond to
            G = number of heads. Defaults to 32.
        reduction (int): r, the kernel generator's channel reduction. Defaults to 4.
        norm_cfg (dict, optional): norm of the generator; None: BN. Defaults to None (the
            backbone passes its own ``norm_cfg``).
        impl (str): implementation of :func:`~backbones.ops.idynamic_dwconv_fused`
            (``'auto'``: fused on CPU, Triton on CUDA). Defaults to ``'auto'``.
        **conv_args: ``stride``, ``padding``, ``dilation``, ``groups`` of
            :class:`DepthwiseMixer`, as ``ConvModule`` passes them.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int = 7,
                 bias: bool = False,
                 kernel_groups: int = 32,
                 reduction: int = 4,
                 norm_cfg: Optional[dict] = None,
                 impl: str = 'auto',
                 **conv_args) -> None:
        super().__init__(in_channels, out_channels, kernel_size, **conv_args)
        if bias:
            raise ValueError('IDynamicDWConv has no bias (as in the paper)')
        if in_channels % kernel_groups:
            raise ValueError(f'kernel_groups={kernel_groups} must divide the {in_channels} '
                             'channels')
        self.kernel_groups = kernel_groups
        self.impl = impl
        self.build_kernel_generator(
            kernel_size**2 * kernel_groups, reduction, norm_cfg, reduce_bias=True)

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
