"""I-Dynamic with its kernel generator fused in: the (B, G*K*K, H, W) kernel tensor never exists.

The mixer's kernels are the output of a 1x1 conv ``kernels = gen_weight @ hidden + gen_bias``
(``hidden``: the (B, R, H, W) map of the generator's first layers). At a T model's stage 1 the
kernel tensor has G*K*K = 1568 channels, 16x the activations it filters; the unfused mixer writes
it, reads it back, and does the same with its gradient.

:class:`IDynamicFusedFunction` takes ``x``, ``hidden`` and the 1x1 conv's parameters instead and
works on tiles of (samples, rows). For each kernel row i of a tile it computes the K taps
(i, 0..K-1) of the tile's kernels with one matmul (the bias rides along as a channel of ones
appended to ``hidden``), applies them by K shift-and-accumulate passes and drops them: the
kernels only ever exist as a (G, K, tile) block in cache. Backward recomputes them the same way,
makes the kernels' gradient block by block and turns it into the gradients of ``hidden``,
``gen_weight`` and ``gen_bias`` at once (two more matmuls).

The passes use a flat layout: ``x`` is zero-padded once to (H + K, W + K - 1) and the outputs are
computed on the padded width, so that every kernel offset is a shift of the flattened plane and
every pass is one elementwise op over a contiguous run of rows (the outputs in the K - 1 extra
columns are discarded; their output gradient is zero, so they contribute nothing backward). The
K shifts of a kernel row are one overlapping strided view, and the K passes one
``_foreach_addcmul_`` call. On a CPU with several threads the tiles run on single-threaded
workers (:mod:`.tile_pool`). Half-precision inputs are computed in float32. Saved for backward:
the inputs only.
"""
import contextlib
import math
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from . import cpu_kernels
from . import idynamic as _idyn
from .dispatch import quiet_if_tracing
from .tile_pool import run_tiles

# Elements of one (samples x channels x padded-width positions) tile of x / y: the tile of y, the
# rows of x around it and one kernel row (G*K/C times the tile) stay in a core's L2 over the
# passes, and a T model's stage 1 (B = 8) has 4 tiles per sample for the workers to share.
_TILE_ELEMS = 1 << 16
_GW_LOOP_MAX_CHANNELS = 4


def check_fused_shapes(x: torch.Tensor, hidden: torch.Tensor, gen_weight: torch.Tensor,
                       gen_bias: Optional[torch.Tensor]) -> None:
    """Raise a one-line ValueError unless x is (B, C, H, W), hidden (B, R, H, W), gen_weight
    (G, K, K, R) with G dividing C and K odd, and gen_bias (G, K, K) or None."""
    name = 'idynamic_dwconv_fused'
    if x.dim() != 4 or hidden.dim() != 4:
        raise ValueError(f'{name}: x and hidden must be (B, C, H, W) and (B, R, H, W), got shapes '
                         f'{tuple(x.shape)} and {tuple(hidden.shape)}')
    if gen_weight.dim() != 4:
        raise ValueError(f'{name}: gen_weight must be (G, K, K, R), got shape '
                         f'{tuple(gen_weight.shape)}')
    b, c, h, w = map(int, x.shape)
    g, k1, k2, r = map(int, gen_weight.shape)
    if tuple(map(int, hidden.shape)) != (b, r, h, w):
        raise ValueError(f'{name}: hidden must be {(b, r, h, w)} (B, R, H, W) for x of shape '
                         f'{(b, c, h, w)} and gen_weight of shape {(g, k1, k2, r)}, got '
                         f'{tuple(hidden.shape)}')
    if k1 != k2 or k1 % 2 != 1:
        raise ValueError(f'{name}: kernel must be square with odd size, got {k1}x{k2}')
    if g <= 0 or c % g:
        raise ValueError(f'{name}: {g} kernel groups do not divide {c} channels')
    if gen_bias is not None and tuple(map(int, gen_bias.shape)) != (g, k1, k2):
        raise ValueError(f'{name}: gen_bias must be {(g, k1, k2)}, got {tuple(gen_bias.shape)}')


def generated_kernels(hidden: torch.Tensor, gen_weight: torch.Tensor,
                      gen_bias: Optional[torch.Tensor]) -> torch.Tensor:
    """The whole (B, G, K, K, H, W) kernel tensor, as the unfused mixer makes it (a 1x1 conv)."""
    g, k, _, r = gen_weight.shape
    b, _, h, w = hidden.shape
    bias = None if gen_bias is None else gen_bias.reshape(-1)
    # contiguous: a channels-last map would make channels-last kernels, which the op copies
    kernels = F.conv2d(hidden.contiguous(), gen_weight.reshape(g * k * k, r, 1, 1), bias)
    return kernels.view(b, g, k, k, h, w)


def idynamic_dwconv_fused_reference(x: torch.Tensor,
                                    hidden: torch.Tensor,
                                    gen_weight: torch.Tensor,
                                    gen_bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The unfused computation: the 1x1 conv, then the unfold reference (the test oracle)."""
    check_fused_shapes(x, hidden, gen_weight, gen_bias)
    return _idyn.idynamic_dwconv_reference(x, generated_kernels(hidden, gen_weight, gen_bias))


def _tiles(b: int, h: int, row_elems: int, min_rows: int) -> List[Tuple[int, int, int, int]]:
    """(first sample, end sample, first row, end row) of every tile; ``row_elems`` is the number
    of x elements of one padded-width row of one sample. Row tiles have at least ``min_rows``
    rows (K - 1: see :func:`_gx_safe_phases`)."""
    rows = max(1, _TILE_ELEMS // max(1, row_elems))
    if rows >= h:  # whole samples
        per = max(1, rows // h)
        return [(s, min(b, s + per), 0, h) for s in range(0, b, per)]
    n_row_tiles = max(1, h // max(rows, min_rows))
    rows = -(-h // n_row_tiles)  # balanced, and still at least min_rows
    return [(s, s + 1, r, min(h, r + rows)) for s in range(b) for r in range(0, h, rows)]


def _padded(t: torch.Tensor,
            dtype: torch.dtype,
            rows: Tuple[int, int],
            cols: Tuple[int, int],
            extra_channels: int = 0) -> torch.Tensor:
    """A contiguous copy of ``t`` (B, C, H, W) with ``rows`` / ``cols`` zeros (before, after)
    around it, as ``dtype``, and ``extra_channels`` uninitialised channels after its own (only
    the padding is zero-filled: the copy writes the rest)."""
    b, c, h, w = t.shape
    (top, bottom), (left, right) = rows, cols
    out = t.new_empty((b, c + extra_channels, top + h + bottom, left + w + right), dtype=dtype)
    out[:, :c, :top].zero_()
    out[:, :c, top + h:].zero_()
    out[:, :c, top:top + h, :left].zero_()
    out[:, :c, top:top + h, left + w:].zero_()
    out[:, :c, top:top + h, left:left + w] = t
    return out


class _Layout:
    """Flat padded views shared by forward and backward (see the module docstring)."""

    def __init__(self, x: torch.Tensor, hidden: torch.Tensor, gen_weight: torch.Tensor,
                 gen_bias: Optional[torch.Tensor]) -> None:
        b, c, h, w = map(int, x.shape)
        g, k, _, r = map(int, gen_weight.shape)
        self.b, self.c, self.h, self.w, self.g, self.k, self.r = b, c, h, w, g, k, r
        self.kk, self.cg, self.p = k * k, c // g, k // 2
        self.wp = w + 2 * self.p
        self.dtype = torch.float32 if x.dtype in _idyn._HALF_TYPES else x.dtype
        p = self.p
        # x: zero padding of p on every side plus one more row at the bottom, so that the flat
        # shifts of the last tile's extra columns stay inside the buffer
        self.xp = _padded(x, self.dtype, (p, p + 1), (p, p)).view(b, c, -1)
        # hidden on the padded width, plus a channel of ones that multiplies the bias
        hp = _padded(hidden, self.dtype, (0, 0), (0, 2 * p), extra_channels=1)
        hp[:, r] = 1
        self.hp = hp.view(b, r + 1, h * self.wp)
        wg = gen_weight.to(self.dtype).reshape(self.g * self.kk, r)
        bias = wg.new_zeros(self.g * self.kk) if gen_bias is None else gen_bias.reshape(-1)
        wg = torch.cat([wg, bias.to(self.dtype)[:, None]], 1).view(self.g, k, k, r + 1)
        # the generator's rows of kernel row i (all groups, offsets (i, 0..K-1)): (G*K, R + 1)
        self.wrows = [wg[:, i].reshape(self.g * k, r + 1) for i in range(k)]

    def tiles(self) -> List[Tuple[int, int, int, int]]:
        return _tiles(self.b, self.h, self.c * self.wp, self.k - 1)

    def kernel_row(self, i: int, ht: torch.Tensor) -> torch.Tensor:
        """Kernel taps (i, 0..K-1) of a hidden tile (S, R + 1, n): (S, G, K, n)."""
        return _left_mm(self.wrows[i], ht).view(ht.shape[0], self.g, self.k, ht.shape[2])

    def shifted(self, buf: torch.Tensor, s0: int, s1: int, q: int, n: int) -> torch.Tensor:
        """(S, G, C/G, n) view of a flat (B, C, L) buffer at flat position q."""
        return buf[s0:s1, :, q:q + n].view(s1 - s0, self.g, self.cg, n)

    def row_shifts(self, buf: torch.Tensor, s0: int, s1: int, q: int, n: int) -> torch.Tensor:
        """(S, G, C/G, K, n) view of a flat (B, C, L) buffer at flat positions q + j + (0..n-1)
        for the K taps j of a kernel row (overlapping: read, or update one tap at a time)."""
        base = self.shifted(buf, s0, s1, q, n)
        st = base.stride()
        return base.as_strided(base.shape[:3] + (self.k, n), st[:3] + (1, 1))

    def output(self, flat: torch.Tensor, dtype: torch.dtype, rows: int = 0) -> torch.Tensor:
        """(B, channels, H, W) interior of a flat buffer on the padded width (``rows``: padding
        rows above the map)."""
        b, ch = flat.shape[:2]
        full = flat.view(b, ch, -1, self.wp)[:, :, rows:rows + self.h]
        cols = self.p if rows else 0
        return full[..., cols:cols + self.w].to(dtype, memory_format=torch.contiguous_format)


def _left_mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b[i]`` for every i, (S, M, N) contiguous (torch.matmul would compute a 2-d by 3-d
    product transposed, leaving positions as the strided axis)."""
    if b.shape[0] == 1:
        return torch.mm(a, b[0]).unsqueeze(0)
    return torch.bmm(a.expand(b.shape[0], -1, -1), b)


def _fused_forward(x: torch.Tensor, hidden: torch.Tensor, gen_weight: torch.Tensor,
                   gen_bias: Optional[torch.Tensor]) -> torch.Tensor:
    lay = _Layout(x, hidden, gen_weight, gen_bias)
    y = torch.empty((lay.b, lay.c, lay.h * lay.wp), dtype=lay.dtype, device=x.device)

    def tile(t: Tuple[int, int, int, int]) -> None:
        s0, s1, r0, r1 = t
        q0, n = r0 * lay.wp, (r1 - r0) * lay.wp
        ht = lay.hp[s0:s1, :, q0:q0 + n]
        yt = lay.shifted(y, s0, s1, q0, n)
        for i in range(lay.k):  # one kernel row at a time: its taps stay in L2
            kers = lay.kernel_row(i, ht).unsqueeze(3).unbind(2)  # K x (S, G, 1, n)
            xs = lay.row_shifts(lay.xp, s0, s1, q0 + i * lay.wp, n).unbind(3)
            if i == 0:
                torch.mul(xs[0], kers[0], out=yt)
                kers, xs = kers[1:], xs[1:]
            # y += ker_j * x_j for every tap j, one call (sequential on a CPU)
            torch._foreach_addcmul_([yt] * len(xs), kers, xs)

    run_tiles(tile, [lay.tiles()], x.device)
    return lay.output(y, x.dtype)


def _kernel_grad_row(gker: torch.Tensor, gyt: torch.Tensor, lay: _Layout, s0: int, s1: int,
                     q: int) -> None:
    """gker (S, G, K, n)[..., j, :] = sum over a group's channels of grad_y * (x shifted by
    offset (i, j)); ``q``: the flat position of offset (i, 0). The K shifts of a kernel row are
    one overlapping strided view of x (read only)."""
    shifts = lay.row_shifts(lay.xp, s0, s1, q, gker.shape[-1])  # (S, G, C/G, K, n)
    gyt = gyt.unsqueeze(3)  # (S, G, C/G, 1, n)
    if lay.cg <= _GW_LOOP_MAX_CHANNELS:
        torch.mul(gyt[:, :, 0], shifts[:, :, 0], out=gker)
        for ch in range(1, lay.cg):
            gker.addcmul_(gyt[:, :, ch], shifts[:, :, ch])
    else:
        torch.sum(gyt * shifts, dim=2, out=gker)


def _fused_backward(grad_y: torch.Tensor, x: torch.Tensor, hidden: torch.Tensor,
                    gen_weight: torch.Tensor, gen_bias: Optional[torch.Tensor],
                    needs: Tuple[bool, bool, bool, bool]) -> Tuple[Optional[torch.Tensor], ...]:
    need_x, need_h, need_w, need_b = needs
    need_gw = need_w or need_b
    lay = _Layout(x, hidden, gen_weight, gen_bias)
    b, c, h, g, k, r, p = lay.b, lay.c, lay.h, lay.g, lay.k, lay.r, lay.p
    # grad_y on the padded width, zero in the extra columns
    gy = _padded(grad_y, lay.dtype, (0, 0), (0, 2 * p)).view(b, c, -1)
    gx = torch.zeros_like(lay.xp) if need_x else None
    gh = torch.empty((b, r, h * lay.wp), dtype=lay.dtype, device=x.device) if need_h else None

    def tile(t: Tuple[int, int, int, int]) -> List[torch.Tensor]:
        """Adds the tile's part of grad_x, writes its grad_hidden, returns its part of the
        generator's gradient, one (G*K, R + 1) matrix per kernel row."""
        s0, s1, r0, r1 = t
        q0, n = r0 * lay.wp, (r1 - r0) * lay.wp
        ht = lay.hp[s0:s1, :, q0:q0 + n]
        gyt = lay.shifted(gy, s0, s1, q0, n)
        ght = None
        gw_rows = []
        for i in range(k):
            q = q0 + i * lay.wp
            if gx is not None:
                kers = lay.kernel_row(i, ht).unsqueeze(3).unbind(2)
                gxs = lay.row_shifts(gx, s0, s1, q, n).unbind(3)
                torch._foreach_addcmul_(list(gxs), kers, [gyt] * k)
                del kers
            if not (need_h or need_gw):
                continue
            gker = torch.empty((s1 - s0, g, k, n), dtype=lay.dtype, device=x.device)
            _kernel_grad_row(gker, gyt, lay, s0, s1, q)
            gker = gker.view(s1 - s0, g * k, n)
            if need_h:
                part = _left_mm(lay.wrows[i][:, :r].t(), gker)
                ght = part if ght is None else ght.add_(part)
            if need_gw:
                gw_row = torch.mm(gker[0], ht[0].t())
                for s in range(1, s1 - s0):
                    gw_row.addmm_(gker[s], ht[s].t())
                gw_rows.append(gw_row)
        if gh is not None:
            gh[s0:s1, :, q0:q0 + n] = ght
        return gw_rows

    # summed in tile order, whichever worker ran which tile: the result is deterministic
    gw_parts = run_tiles(tile, _gx_safe_phases(lay.tiles(), 2 * p), x.device)
    gw = gb = None
    if need_gw:
        gwb = torch.stack([sum(rows) for rows in zip(*gw_parts)], 0)  # (K, G*K, R + 1)
        gwb = gwb.view(k, g, k, r + 1).transpose(0, 1)  # (G, K, K, R + 1)
        gw = gwb[..., :r].to(gen_weight.dtype) if need_w else None
        gb = gwb[..., r].to(gen_bias.dtype) if need_b else None
    return (None if gx is None else lay.output(gx, x.dtype, rows=p),
            None if gh is None else lay.output(gh, hidden.dtype), gw, gb)


def _gx_safe_phases(tiles: List[Tuple[int, int, int, int]],
                    halo: int) -> List[List[Tuple[int, int, int, int]]]:
    """Split tiles into phases whose tiles may run concurrently. A tile adds to the input gradient
    of its rows and ``halo`` rows below them; whole-sample tiles are disjoint, and row tiles of
    one sample at least ``halo`` rows high (:func:`_tiles`) alternate between two phases."""
    if all(r0 == 0 for _, _, r0, _ in tiles):
        return [tiles]
    rows, h = tiles[0][3] - tiles[0][2], max(t[3] for t in tiles)
    assert all(r1 - r0 >= halo for _, _, r0, r1 in tiles if r1 < h), 'row tiles below the halo'
    return [[t for t in tiles if (t[2] // rows) % 2 == phase] for phase in (0, 1)]


def _cpp_operands(x: torch.Tensor, hidden: torch.Tensor, gen_weight: torch.Tensor,
                  gen_bias: Optional[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
    """The compiled kernels' operands: contiguous, detached, float32 for half precision."""
    x, hidden, gen_weight = (
        _idyn._as_compute(t.detach()).contiguous() for t in (x, hidden, gen_weight))
    if gen_bias is not None:
        gen_bias = gen_bias.detach().to(gen_weight.dtype)
    return (x, hidden) + cpu_kernels.generator_rows(gen_weight, gen_bias)


def _cpp_forward(x: torch.Tensor, hidden: torch.Tensor, gen_weight: torch.Tensor,
                 gen_bias: Optional[torch.Tensor]) -> torch.Tensor:
    return cpu_kernels.fused_forward(*_cpp_operands(x, hidden, gen_weight, gen_bias)).to(x.dtype)


def _cpp_backward(grad_y: torch.Tensor, x: torch.Tensor, hidden: torch.Tensor,
                  gen_weight: torch.Tensor, gen_bias: Optional[torch.Tensor],
                  needs: Tuple[bool, bool, bool, bool]) -> Tuple[Optional[torch.Tensor], ...]:
    need_x, need_h, need_w, need_b = needs
    operands = _cpp_operands(x, hidden, gen_weight, gen_bias)
    gy = _idyn._as_compute(grad_y).contiguous()
    gx, gh, gwr, gbr = cpu_kernels.fused_backward(gy, *operands, need_x, need_h, need_w or need_b)
    g, k, _, r = gen_weight.shape
    gw = gwr.view(k, g, k, r).permute(1, 0, 2, 3).to(gen_weight.dtype) if need_w else None
    gb = gbr.view(k, g, k).permute(1, 0, 2).to(gen_bias.dtype) if need_b else None
    return (None if gx is None else gx.to(x.dtype), None if gh is None else gh.to(hidden.dtype), gw,
            gb)


class IDynamicFusedFunction(torch.autograd.Function):
    """I-Dynamic with the kernel generator's last 1x1 conv fused in (see the module docstring).

    Inputs: ``x`` (B, C, H, W), ``hidden`` (B, R, H, W), ``gen_weight`` (G, K, K, R),
    ``gen_bias`` (G, K, K) or None, of one dtype (any memory format); ``impl`` 'fused' (the
    PyTorch tiles above) or 'cpp' (the compiled kernels of :mod:`.cpu_kernels`, the same tiles
    in C++). Saves only the inputs. Computes in the inputs' dtype (float32 for half) whatever
    autocast says, like the workers.
    """

    @staticmethod
    def forward(ctx,
                x: torch.Tensor,
                hidden: torch.Tensor,
                gen_weight: torch.Tensor,
                gen_bias: Optional[torch.Tensor],
                impl: str = 'fused') -> torch.Tensor:
        if impl not in ('fused', 'cpp'):
            raise ValueError(f'IDynamicFusedFunction: impl must be fused or cpp, got {impl!r}')
        with quiet_if_tracing():
            check_fused_shapes(x, hidden, gen_weight, gen_bias)
            ctx.save_for_backward(x, hidden, gen_weight, gen_bias)
            ctx.impl = impl
            if _idyn._SHAPE_ONLY[0]:
                return torch.empty_like(x, memory_format=torch.contiguous_format)
            with _no_autocast(x.device):
                forward = _cpp_forward if impl == 'cpp' else _fused_forward
                return forward(x, hidden, gen_weight, gen_bias)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y: torch.Tensor):
        x, hidden, gen_weight, gen_bias = ctx.saved_tensors
        needs = tuple(ctx.needs_input_grad[:4])
        with _no_autocast(x.device):
            backward = _cpp_backward if ctx.impl == 'cpp' else _fused_backward
            return backward(grad_y, x, hidden, gen_weight, gen_bias, needs) + (None, )


def _no_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    if device.type in ('cpu', 'cuda'):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


def idynamic_dwconv_fused(x: torch.Tensor,
                          hidden: torch.Tensor,
                          gen_weight: torch.Tensor,
                          gen_bias: Optional[torch.Tensor] = None,
                          kernel_groups: Optional[int] = None,
                          impl: str = 'auto') -> torch.Tensor:
    """I-Dynamic convolution of ``x`` with the kernels a 1x1 conv makes from ``hidden``.

    Equal to ``idynamic_dwconv(x, conv2d(hidden, gen_weight, gen_bias).view(B, G, K, K, H, W))``.

    Args:
        x (torch.Tensor): the input, (B, C, H, W).
        hidden (torch.Tensor): the kernel generator's input, (B, R, H, W).
        gen_weight (torch.Tensor): the generator's 1x1 conv weight: (G*K*K, R, 1, 1) or
            (G*K*K, R) with ``kernel_groups`` = G, or (G, K, K, R).
        gen_bias (torch.Tensor, optional): its bias, G*K*K values. Defaults to None.
        kernel_groups (int, optional): G; needed unless ``gen_weight`` is (G, K, K, R).
            Defaults to None.
        impl (str): 'auto' (``$DEMYSTIFY_IDYNAMIC_IMPL`` if set, else 'triton' on CUDA, 'cpp'
            on a CPU where the compiled kernels build, 'fused' otherwise), 'fused' or 'cpp'
            (:class:`IDynamicFusedFunction` in PyTorch or compiled), or 'torch', 'triton',
            'unfold': the whole kernel tensor made by a 1x1 conv, then :func:`idynamic_dwconv`
            with that implementation. Defaults to 'auto'.

    Returns:
        torch.Tensor: (B, C, H, W).
    """
    with quiet_if_tracing():
        gen_weight = _as_grouped(gen_weight, kernel_groups)
        g, k = int(gen_weight.shape[0]), int(gen_weight.shape[1])
        if gen_bias is not None:
            gen_bias = gen_bias.reshape(g, k, k) if gen_bias.numel() == g * k * k else gen_bias
        check_fused_shapes(x, hidden, gen_weight, gen_bias)
        impl = _idyn._resolve_impl(impl, x, fused=True)
        if impl not in ('fused', 'cpp'):
            return _idyn.idynamic_dwconv(
                x, generated_kernels(hidden, gen_weight, gen_bias), impl=impl)
        return IDynamicFusedFunction.apply(*_idyn._same_dtype(x, hidden, gen_weight, gen_bias),
                                           impl)


def _as_grouped(gen_weight: torch.Tensor, kernel_groups: Optional[int]) -> torch.Tensor:
    """(G, K, K, R) view of a 1x1 conv weight (G*K*K, R[, 1, 1])."""
    shape = tuple(map(int, gen_weight.shape))
    if kernel_groups is None:
        if gen_weight.dim() == 4 and shape[2:] != (1, 1):
            return gen_weight
        raise ValueError('idynamic_dwconv_fused: kernel_groups is needed for a gen_weight of '
                         f'shape {shape}')
    if gen_weight.dim() not in (2, 4) or shape[2:] not in ((), (1, 1)):
        raise ValueError('idynamic_dwconv_fused: gen_weight must be (G*K*K, R) or '
                         f'(G*K*K, R, 1, 1), got shape {shape}')
    kk, rest = divmod(shape[0], kernel_groups) if kernel_groups > 0 else (0, 1)
    k = math.isqrt(max(kk, 0))
    if rest or k * k != kk or kk == 0:
        raise ValueError(f'idynamic_dwconv_fused: {shape[0]} generated channels are not '
                         f'kernel_groups={kernel_groups} square kernels')
    return gen_weight.reshape(kernel_groups, k, k, shape[1])
