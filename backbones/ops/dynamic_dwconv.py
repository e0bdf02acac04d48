"""Homogeneous dynamic depth-wise convolution (D-DW-Conv): one KxK kernel per sample and channel.

All implementations are compositions of ATen ops, differentiated by autograd:

* ``folded``: the official computation, the batch folded into the groups of one depth-wise conv
  (``conv2d(x.view(1, B*C, H, W), weight.view(B*C, 1, K, K), groups=B*C)``);
* ``folded_cl``: the same in channels_last memory format;
* ``loop``: one depth-wise conv per sample;
* ``unfold``: the unfold reference (materialises C*K*K*H*W).

``auto`` takes ``$DEMYSTIFY_DDWCONV_IMPL`` if set, else the fastest one measured for the device
(``tools/benchmark.py --ops``; docs/speed.md): ``folded`` on CPU and CUDA.
"""
from typing import Optional

import torch
import torch.nn.functional as F

from .dispatch import quiet_if_tracing, requested_impl

DDW_IMPLS = ('auto', 'folded', 'folded_cl', 'loop', 'unfold')
ENV_DDW_IMPL = 'DEMYSTIFY_DDWCONV_IMPL'
_AUTO = {'cpu': 'folded', 'cuda': 'folded'}


def check_dynamic_shapes(x: torch.Tensor, weight: torch.Tensor,
                         bias: Optional[torch.Tensor]) -> None:
    """Raise a one-line ValueError unless x is (B, C, H, W), weight (B, C, K, K), bias (C,)."""
    if x.dim() != 4:
        raise ValueError(f'dynamic_dwconv: x must be (B, C, H, W), got shape {tuple(x.shape)}')
    if weight.dim() != 4:
        raise ValueError('dynamic_dwconv: weight must be (B, C, K, K), got shape '
                         f'{tuple(weight.shape)}')
    b, c = int(x.shape[0]), int(x.shape[1])
    if tuple(map(int, weight.shape[:2])) != (b, c):
        raise ValueError(f'dynamic_dwconv: weight is for {tuple(weight.shape[:2])} (B, C), '
                         f'x has {(b, c)}')
    k1, k2 = map(int, weight.shape[2:])
    if k1 != k2 or k1 % 2 != 1:
        raise ValueError(f'dynamic_dwconv: kernel must be square with odd size, got {k1}x{k2}')
    if bias is not None and tuple(map(int, bias.shape)) != (c, ):
        raise ValueError(f'dynamic_dwconv: bias must be ({c},), got {tuple(bias.shape)}')


def dynamic_dwconv_reference(x: torch.Tensor,
                             weight: torch.Tensor,
                             bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Unfold formulation (materialises C*K*K*H*W): the test oracle."""
    check_dynamic_shapes(x, weight, bias)
    b, c, h, w = x.shape
    k = weight.shape[-1]
    patches = F.unfold(x, k, padding=k // 2).view(b, c, k * k, h * w)
    y = (patches * weight.reshape(b, c, k * k, 1)).sum(2).view(b, c, h, w)
    return y if bias is None else y + bias.view(1, c, 1, 1)


def _folded(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
            channels_last: bool) -> torch.Tensor:
    b, c, h, w = x.shape
    k = weight.shape[-1]
    xf = x.reshape(1, b * c, h, w)
    wf = weight.reshape(b * c, 1, k, k)
    if channels_last:
        xf = xf.contiguous(memory_format=torch.channels_last)
        wf = wf.contiguous(memory_format=torch.channels_last)
    bf = None if bias is None else bias.repeat(b)
    y = F.conv2d(xf, wf, bf, padding=k // 2, groups=b * c)
    return y.reshape(b, c, h, w)


def _loop(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    c, k = x.shape[1], weight.shape[-1]
    outs = [
        F.conv2d(x[i:i + 1], weight[i].unsqueeze(1), bias, padding=k // 2, groups=c)
        for i in range(x.shape[0])
    ]
    return torch.cat(outs, 0)


def _resolve(impl: str, x: torch.Tensor) -> str:
    impl = requested_impl('dynamic_dwconv', impl, DDW_IMPLS, ENV_DDW_IMPL)
    if impl == 'auto':
        impl = _AUTO.get(x.device.type, 'folded')
    return impl


def dynamic_dwconv(x: torch.Tensor,
                   weight: torch.Tensor,
                   bias: Optional[torch.Tensor] = None,
                   impl: str = 'auto') -> torch.Tensor:
    """D-DW-Conv of ``x`` (B, C, H, W) with per-sample kernels ``weight`` (B, C, K, K).

    Stride 1, zero padding K // 2, optional static ``bias`` (C,). See the module docstring for
    ``impl``.
    """
    with quiet_if_tracing():
        check_dynamic_shapes(x, weight, bias)
        impl = _resolve(impl, x)
    if impl == 'unfold':
        return dynamic_dwconv_reference(x, weight, bias)
    if impl == 'loop':
        return _loop(x, weight, bias)
    return _folded(x, weight, bias, channels_last=impl == 'folded_cl')
