"""The common base of the dynamic mixers."""
from typing import Optional

import torch.nn as nn
from mmcv.cnn import ConvModule
from torch.nn.modules.utils import _pair


class DepthwiseMixer(nn.Module):
    """Holds the attributes of a stride-1 depth-wise convolution that mmcv's ``ConvModule`` reads.

    Dynamic mixers make their kernels from the input, so they own no ``weight``; they only
    describe the convolution they stand in for. The arguments are ``nn.Conv2d``'s, so that
    ``ConvModule(..., conv_cfg=dict(type=...))`` builds a mixer like a conv; only the
    depth-wise, size-preserving case is accepted.

    Args:
        in_channels (int): channels C.
        out_channels (int): must equal C.
        kernel_size (int): odd K.
        stride (int): must be 1. Defaults to 1.
        padding (int, optional): must be K // 2 (or None). Defaults to None.
        dilation (int): must be 1. Defaults to 1.
        groups (int, optional): must be C (or None). Defaults to None.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int,
                 stride: int = 1,
                 padding: Optional[int] = None,
                 dilation: int = 1,
                 groups: Optional[int] = None) -> None:
        super().__init__()
        groups = in_channels if groups is None else groups
        if not (in_channels == out_channels == groups):
            raise ValueError(f'{type(self).__name__} is depth-wise: in_channels, out_channels and '
                             f'groups must be equal, got {in_channels}, {out_channels}, {groups}')
        if kernel_size % 2 != 1 or stride != 1 or dilation != 1:
            raise ValueError(f'{type(self).__name__} supports odd kernels with stride 1 and '
                             f'dilation 1, got k={kernel_size}, s={stride}, d={dilation}')
        if padding is not None and padding != kernel_size // 2:
            raise ValueError(f'{type(self).__name__} keeps the size: padding must be '
                             f'{kernel_size // 2}, got {padding}')
        self.in_channels = self.out_channels = self.groups = in_channels
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(1)
        self.padding = _pair(kernel_size // 2)
        self.dilation = _pair(1)
        self.transposed = False
        self.output_padding = _pair(0)

    def build_kernel_generator(self, kernels: int, reduction: int, norm_cfg: Optional[dict],
                               reduce_bias: bool) -> None:
        """The kernel generator of the dynamic mixers: ``reduce`` (1x1 conv C -> C/r, norm,
        ReLU) and ``kernel_gen`` (1x1 conv C/r -> ``kernels``)."""
        channels = self.in_channels
        self.reduce = ConvModule(
            channels,
            channels // reduction,
            1,
            bias=reduce_bias,
            norm_cfg=norm_cfg or dict(type='BN'),
            act_cfg=dict(type='ReLU'))
        self.kernel_gen = nn.Conv2d(channels // reduction, kernels, 1)

    def extra_repr(self) -> str:
        return f'{self.in_channels}, kernel_size={self.kernel_size}'
