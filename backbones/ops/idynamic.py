"""Inhomogeneous dynamic depth-wise convolution (I-Dynamic).

``y[b, c, h, w] = sum_{i, j} weight[b, c // (C // G), i, j, h, w] * x[b, c, h + i - p, w + j - p]``
with ``p = K // 2`` and zero padding: every output position of every sample has its own KxK
kernel, shared by the C / G contiguous channels of a group.

The unfold formulation materialises the C*K*K*H*W patch tensor (and keeps it for backward). The
formulation here never does: the forward pass accumulates K*K shifted copies of ``x`` scaled by
the matching kernel plane (broadcast over the channels of a group), ``grad_x`` applies the
transposed shifts to ``grad_y`` and ``grad_weight`` is, per offset, a reduction over the channels
of a group of ``grad_y * shifted x``. Only ``x`` and ``weight`` are saved for backward.

On CPU the K*K passes run over blocks of (sample, group) planes that fit in the L2/L3 caches, so
that every pass reads the block from cache instead of memory; half-precision blocks are upcast to
float32 there. With several threads, the blocks are spread over single-threaded workers
(:mod:`.tile_pool`). Faster still on CPU, compiled kernels (:mod:`.cpu_kernels`) do all K*K taps
of a tile of rows in one pass (forward, ``grad_x`` and ``grad_weight`` each), where the C++
compiler vectorises the inner loops. On CUDA, Triton kernels (:mod:`.triton_idynamic`) do each
pass in one launch.

When the kernels come from a 1x1 conv (the I-Dynamic mixer), :mod:`.idynamic_fused` does the same
without ever making the kernel tensor.
"""
import contextlib
import functools
import importlib.util
import os
from typing import Iterator, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from . import cpu_kernels
from .dispatch import quiet_if_tracing, requested_impl
from .tile_pool import run_tiles

IMPLS = ('auto', 'fused', 'cpp', 'torch', 'triton', 'unfold')
ENV_IMPL = 'DEMYSTIFY_IDYNAMIC_IMPL'

# Elements of one x/y block on CPU: 2^18 float32 = 1 MiB, i.e. x, y and the weight slice of a
# block stay in the 2 x 1 MiB L2 / shared L3 across the K*K passes (measured: tools/benchmark.py).
_CPU_BLOCK_ELEMS = 1 << 18
_HALF_TYPES = (torch.float16, torch.bfloat16)

_SHAPE_ONLY = [False]


@contextlib.contextmanager
def shape_only() -> Iterator[None]:
    """Within this context I-Dynamic returns a tensor of the output's shape without computing it.

    FLOP counting traces a whole model at full resolution, where the per-position kernels are
    the slowest part on a CPU; the counter's handle needs only shapes (see
    :mod:`backbones.complexity`).
    """
    before = _SHAPE_ONLY[0]
    _SHAPE_ONLY[0] = True
    try:
        yield
    finally:
        _SHAPE_ONLY[0] = before


def check_idynamic_shapes(x: torch.Tensor, weight: torch.Tensor) -> None:
    """Raise a one-line ValueError unless x is (B, C, H, W) and weight (B, G, K, K, H, W)."""
    if x.dim() != 4:
        raise ValueError(f'idynamic_dwconv: x must be (B, C, H, W), got shape {tuple(x.shape)}')
    if weight.dim() != 6:
        raise ValueError('idynamic_dwconv: weight must be (B, G, K, K, H, W), got shape '
                         f'{tuple(weight.shape)}')
    b, c, h, w = map(int, x.shape)
    wb, g, k1, k2, wh, ww = map(int, weight.shape)
    if wb != b:
        raise ValueError(f'idynamic_dwconv: batch mismatch, x has {b} samples, weight {wb}')
    if k1 != k2 or k1 % 2 != 1:
        raise ValueError(f'idynamic_dwconv: kernel must be square with odd size, got {k1}x{k2}')
    if g <= 0 or c % g:
        raise ValueError(f'idynamic_dwconv: {g} kernel groups do not divide {c} channels')
    if (wh, ww) != (h, w):
        raise ValueError(f'idynamic_dwconv: weight is for a {wh}x{ww} map, x is {h}x{w}')


def idynamic_dwconv_reference(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Plain unfold formulation (materialises C*K*K*H*W); the baseline and the test oracle."""
    check_idynamic_shapes(x, weight)
    b, c, h, w = x.shape
    g, k = weight.shape[1], weight.shape[2]
    patches = F.unfold(x, k, padding=k // 2).view(b, g, c // g, k * k, h, w)
    return (patches * weight.view(b, g, 1, k * k, h, w)).sum(3).view(b, c, h, w)


@functools.lru_cache(maxsize=64)
def _offsets(k: int, h: int, w: int) -> List[Tuple[int, tuple, tuple, tuple]]:
    """For every kernel offset except the centre: (index, out slices, in slices, weight slices).

    ``out`` is the region of output positions whose shifted input is inside the map, ``in`` the
    input region it reads; both index (N, channels, H, W) blocks, ``weight`` a (N, K*K, H, W)
    block and keeps the channel axis (size 1) so that it broadcasts over a group's channels.
    """
    p = k // 2
    every = slice(None)
    result = []
    for i in range(k):
        di = i - p
        h0, h1 = max(0, -di), min(h, h - di)
        for j in range(k):
            dj = j - p
            w0, w1 = max(0, -dj), min(w, w - dj)
            idx = i * k + j
            if (di, dj) == (0, 0) or h0 >= h1 or w0 >= w1:
                continue
            out = (every, every, slice(h0, h1), slice(w0, w1))
            inp = (every, every, slice(h0 + di, h1 + di), slice(w0 + dj, w1 + dj))
            wsl = (every, slice(idx, idx + 1), slice(h0, h1), slice(w0, w1))
            result.append((idx, out, inp, wsl))
    return result


def _blocks(n: int, plane_elems: int, device: torch.device) -> List[Tuple[int, int]]:
    if device.type != 'cpu':
        return [(0, n)]
    step = max(1, _CPU_BLOCK_ELEMS // max(1, plane_elems))
    return [(s, min(n, s + step)) for s in range(0, n, step)]


def _as_compute(t: torch.Tensor) -> torch.Tensor:
    return t.float() if t.dtype in _HALF_TYPES else t


def _planes(x: torch.Tensor,
            weight: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, List[tuple], int]:
    """``x`` as (B*G, C/G, H, W) planes, ``weight`` as (B*G, K*K, H, W), the offsets of the
    kernel taps (:func:`_offsets`) and the index of the centre tap."""
    b, c, h, w = map(int, x.shape)
    g, k = int(weight.shape[1]), int(weight.shape[2])
    xv = x.reshape(b * g, c // g, h, w)
    wv = weight.reshape(b * g, k * k, h, w)
    return xv, wv, _offsets(k, h, w), k * k // 2


def _buffer(out: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Where a block computes ``out``: ``out`` itself when it has the compute dtype, else a
    buffer of that dtype that :func:`_store` copies back."""
    return out if out.dtype == dtype else torch.empty(out.shape, dtype=dtype, device=out.device)


def _store(out: torch.Tensor, buffer: torch.Tensor) -> None:
    if buffer.data_ptr() != out.data_ptr():
        out.copy_(buffer)


def _torch_forward(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    xv, wv, offsets, centre = _planes(x, weight)
    y = torch.empty_like(xv)

    def block(se: Tuple[int, int]) -> None:
        s, e = se
        xb, wb = _as_compute(xv[s:e]), _as_compute(wv[s:e])
        yb = _buffer(y[s:e], xb.dtype)
        torch.mul(xb, wb[:, centre:centre + 1], out=yb)
        for _, out, inp, wsl in offsets:
            yb[out].addcmul_(wb[wsl], xb[inp])
        _store(y[s:e], yb)

    run_tiles(block, [_blocks(xv.shape[0], xv.shape[1:].numel(), x.device)], x.device)
    return y.view_as(x)


# Up to this many channels per group, grad_weight loops over them with addcmul_ (no temporary);
# above it, one product and a channel sum per offset are fewer kernel launches.
_GW_LOOP_MAX_CHANNELS = 4


def _torch_backward(grad_y: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, need_x: bool,
                    need_w: bool) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
    xv, wv, offsets, centre = _planes(x, weight)
    gyv = grad_y.reshape(xv.shape)
    gx = torch.empty_like(xv) if need_x else None
    gw = torch.empty_like(wv) if need_w else None

    def block(se: Tuple[int, int]) -> None:
        s, e = se
        gyb = _as_compute(gyv[s:e])
        xb = _as_compute(xv[s:e])
        if gx is not None:
            wb = _as_compute(wv[s:e])
            gxb = _buffer(gx[s:e], gyb.dtype)
            torch.mul(gyb, wb[:, centre:centre + 1], out=gxb)
            for _, out, inp, wsl in offsets:
                gxb[inp].addcmul_(wb[wsl], gyb[out])
            _store(gx[s:e], gxb)
        if gw is not None:
            gwb = _buffer(gw[s:e], gyb.dtype)
            _grad_weight_block(gwb, gyb, xb, offsets, centre)
            _store(gw[s:e], gwb)

    run_tiles(block, [_blocks(xv.shape[0], xv.shape[1:].numel(), x.device)], x.device)
    return (None if gx is None else gx.view_as(x), None if gw is None else gw.view_as(weight))


def _grad_weight_block(gwb: torch.Tensor, gyb: torch.Tensor, xb: torch.Tensor, offsets: list,
                       centre: int) -> None:
    """gw[:, o] = sum over a group's channels of grad_y * (x shifted by offset o), 0 outside."""
    cg, h, w = gyb.shape[1:]
    every = slice(None)
    todo = [(centre, (every, ) * 4, (every, ) * 4)] + [(o, out, inp) for o, out, inp, _ in offsets]
    for idx, out, inp in todo:
        dst = gwb[:, idx]
        rows, cols = out[2], out[3]
        region = dst[:, rows, cols]
        gy_r, x_r = gyb[out], xb[inp]
        if cg <= _GW_LOOP_MAX_CHANNELS:
            torch.mul(gy_r[:, 0], x_r[:, 0], out=region)
            for ch in range(1, cg):
                region.addcmul_(gy_r[:, ch], x_r[:, ch])
        else:
            torch.sum(gy_r * x_r, dim=1, out=region)
        # zero the rows / columns whose shifted input falls into the padding
        if rows.start:
            dst[:, :rows.start].zero_()
        if rows.stop is not None and rows.stop < h:
            dst[:, rows.stop:].zero_()
        if cols.start:
            dst[:, :, :cols.start].zero_()
        if cols.stop is not None and cols.stop < w:
            dst[:, :, cols.stop:].zero_()
    # kernel offsets that miss the map entirely (K > 2H - 1 or K > 2W - 1) have zero gradient
    covered = {centre} | {o for o, _, _, _ in offsets}
    for idx in sorted(set(range(gwb.shape[1])) - covered):
        gwb[:, idx].zero_()


def triton_available() -> bool:
    return importlib.util.find_spec('triton') is not None


def _resolve_impl(impl: str, x: torch.Tensor, fused: bool = False) -> str:
    """The implementation ``impl`` stands for on ``x``'s device: 'auto' is 'triton' on CUDA,
    'cpp' on a CPU where the compiled kernels build, else 'torch' ('fused' with ``fused``: for
    :func:`~.idynamic_fused.idynamic_dwconv_fused`). For :func:`idynamic_dwconv` (kernels given,
    nothing to fuse) 'fused' means 'cpp' where it builds, else 'torch'."""
    impl = requested_impl('idynamic_dwconv', impl, IMPLS, ENV_IMPL)
    if impl == 'auto':
        if x.is_cuda and triton_available():
            impl = 'triton'
        elif x.device.type == 'cpu' and cpu_kernels.available():
            impl = 'cpp'
        else:
            impl = 'fused'  # below: 'torch' where the kernels are given
    if impl == 'fused' and not fused:
        impl = 'cpp' if x.device.type == 'cpu' and cpu_kernels.available() else 'torch'
    if impl == 'cpp':
        if x.device.type != 'cpu':
            raise ValueError(f"idynamic_dwconv: impl='cpp' needs CPU tensors, got {x.device}")
        if not cpu_kernels.available():
            raise ValueError("idynamic_dwconv: impl='cpp' but the CPU kernels could not be built: "
                             f'{cpu_kernels.unavailable_reason()}')
    if impl == 'triton':
        if not triton_available():
            raise ValueError("idynamic_dwconv: impl='triton' but triton is not installed")
        if not x.is_cuda and os.environ.get('TRITON_INTERPRET') != '1':
            raise ValueError("idynamic_dwconv: impl='triton' needs CUDA tensors "
                             '(or TRITON_INTERPRET=1 for the CPU interpreter)')
    return impl


def _forward(x: torch.Tensor, weight: torch.Tensor, impl: str) -> torch.Tensor:
    if impl == 'cpp':
        return cpu_kernels.forward(_as_compute(x), _as_compute(weight)).to(x.dtype)
    if impl == 'triton':
        from . import triton_idynamic
        return triton_idynamic.forward(x, weight)
    return _torch_forward(x, weight)


class IDynamicDWConvFunction(torch.autograd.Function):
    """I-Dynamic with a memory-light backward: saves only ``x`` and ``weight``.

    ``impl`` is 'torch' (blocked shift-and-accumulate; any device), 'cpp' (the compiled CPU
    kernels of :mod:`.cpu_kernels`) or 'triton' (CUDA, or CPU under ``TRITON_INTERPRET=1``).
    Inputs must be contiguous and of one dtype; half precision is computed in float32.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, impl: str = 'torch') -> torch.Tensor:
        if impl not in ('torch', 'cpp', 'triton'):
            raise ValueError('IDynamicDWConvFunction: impl must be torch, cpp or triton, got '
                             f'{impl!r}')
        with quiet_if_tracing():
            check_idynamic_shapes(x, weight)
            x, weight = x.contiguous(), weight.contiguous()
            ctx.impl = impl
            ctx.save_for_backward(x, weight)
            if _SHAPE_ONLY[0]:
                return torch.empty_like(x)
            return _forward(x, weight, impl)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y: torch.Tensor):
        x, weight = ctx.saved_tensors
        need_x, need_w = ctx.needs_input_grad[:2]
        grad_y = grad_y.contiguous()
        if ctx.impl == 'triton':
            from . import triton_idynamic
            gx, gw = triton_idynamic.backward(grad_y, x, weight, need_x, need_w)
        elif ctx.impl == 'cpp':
            gx, gw = cpu_kernels.backward(
                _as_compute(grad_y), _as_compute(x), _as_compute(weight), need_x, need_w)
            gx = None if gx is None else gx.to(x.dtype)
            gw = None if gw is None else gw.to(weight.dtype)
        else:
            gx, gw = _torch_backward(grad_y, x, weight, need_x, need_w)
        return gx, gw, None


def _same_dtype(*tensors: Optional[torch.Tensor]) -> Tuple[Optional[torch.Tensor], ...]:
    """Apply autocast by hand (custom Functions are opaque to it), else promote to one dtype.
    ``None`` entries (an absent bias) stay None."""
    present = [t for t in tensors if t is not None]
    device_type = present[0].device.type
    if device_type in ('cpu', 'cuda') and torch.is_autocast_enabled(device_type):
        dtype = torch.get_autocast_dtype(device_type)
    else:
        dtype = functools.reduce(torch.promote_types, [t.dtype for t in present])
    return tuple(None if t is None else t.to(dtype) for t in tensors)


def idynamic_dwconv(x: torch.Tensor, weight: torch.Tensor, impl: str = 'auto') -> torch.Tensor:
    """I-Dynamic convolution of ``x`` (B, C, H, W) with ``weight`` (B, G, K, K, H, W).

    ``impl``: 'auto' (``$DEMYSTIFY_IDYNAMIC_IMPL`` if set, else 'triton' on CUDA, 'cpp' on a
    CPU where the compiled kernels build and 'torch' otherwise), 'cpp', 'torch', 'triton' or
    'unfold' (the reference, differentiated by autograd); 'fused' (an implementation of
    :func:`~.idynamic_fused.idynamic_dwconv_fused`) means 'auto' here, where the kernels are
    given.
    """
    with quiet_if_tracing():
        check_idynamic_shapes(x, weight)
        impl = _resolve_impl(impl, x)
        x, weight = _same_dtype(x, weight)
        if impl == 'unfold':
            return idynamic_dwconv_reference(x, weight)
        return IDynamicDWConvFunction.apply(x.contiguous(), weight.contiguous(), impl)
