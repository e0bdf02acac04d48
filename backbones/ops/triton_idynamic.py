"""Triton kernels of I-Dynamic (imported lazily: ``import backbones.ops`` does not load triton).

Every program owns one (sample, group) plane and a block of BLOCK_P flattened positions and keeps
a (KK_PAD, BLOCK_P) tile of kernel taps in registers (KK_PAD = K*K rounded up to a power of two):

* forward:      y[c, p]  = sum_k w[k, p] * x[c, p + s_k]            (w tile loaded once)
* grad input:   gx[c, q] = sum_k w[k, q - s_k] * gy[c, q - s_k]      (w tile gathered once)
* grad weight:  gw[k, p] = sum_c gy[c, p] * x[c, p + s_k]            (accumulated over channels)

and loops over the channels of the group, so nothing of size C*K*K*H*W exists at any time.
Accumulation is float32 (float64 for float64 inputs). The kernels also run on CPU tensors under
Triton's interpreter (``TRITON_INTERPRET=1``), which is how the tests check them without a GPU.
"""
from typing import Optional, Tuple

import torch
import triton
import triton.language as tl


@triton.jit
def _program_tile(G, H, W, K: tl.constexpr, KK_PAD: tl.constexpr, BLOCK_P: tl.constexpr):
    """What a program owns: sample ``b`` and group ``g`` of its (sample, group) plane, the block
    of positions (flat, with their mask), the tile's taps (index, mask), the positions' (row,
    col) and the taps' offsets (dh, dw)."""
    pid_n = tl.program_id(1)
    offs_p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    mask_p = offs_p < H * W
    taps = tl.arange(0, KK_PAD)
    mask_k = taps < K * K
    return (pid_n, pid_n // G, pid_n % G, offs_p, mask_p, taps, mask_k, offs_p // W, offs_p % W,
            taps // K - K // 2, taps % K - K // 2)


@triton.jit
def _shifted(row, col, dh, dw, mask_p, mask_k, H, W, SIGN: tl.constexpr):
    """Flat index and validity (zero padding) of position ``p + SIGN * s_k`` for every tap
    ``k`` (rows) of every position ``p`` (columns) of the block."""
    r = row[None, :] + SIGN * dh[:, None]
    c = col[None, :] + SIGN * dw[:, None]
    inside = (r >= 0) & (r < H) & (c >= 0) & (c < W)
    return r * W + c, mask_k[:, None] & mask_p[None, :] & inside


@triton.jit
def _gather_kernel(SRC, Wt, DST, C, G, CG, H, W, CH_PER_PROG, K: tl.constexpr, KK_PAD: tl.constexpr,
                   BLOCK_P: tl.constexpr, F64: tl.constexpr, SIGN: tl.constexpr):
    """``DST[c, p] = sum_k w[k, p + SIGN s_k] * SRC[c, p + SIGN s_k]`` with the weight tap
    read at the shifted position for SIGN = -1 (grad input: gx[c, q] = sum_k w[k, q - s_k]
    gy[c, q - s_k]) and at ``p`` for SIGN = +1 (forward: y[c, p] = sum_k w[k, p] x[c, p + s_k])."""
    pid_n, b, g, offs_p, mask_p, taps, mask_k, row, col, dh, dw = _program_tile(
        G, H, W, K, KK_PAD, BLOCK_P)
    acc_ty = tl.float64 if F64 else tl.float32
    HW = H * W
    shifted, valid = _shifted(row, col, dh, dw, mask_p, mask_k, H, W, SIGN)
    w_pos = offs_p[None, :] if SIGN > 0 else shifted
    w_valid = mask_k[:, None] & mask_p[None, :] if SIGN > 0 else valid
    w_ptr = Wt + pid_n.to(tl.int64) * (K * K * HW) + taps[:, None] * HW + w_pos
    w_tile = tl.load(w_ptr, mask=w_valid, other=0.).to(acc_ty)
    c_start = tl.program_id(2) * CH_PER_PROG
    for c in range(c_start, tl.minimum(c_start + CH_PER_PROG, CG)):
        plane = (b * C + g * CG + c).to(tl.int64) * HW
        src_tile = tl.load(SRC + plane + shifted, mask=valid, other=0.).to(acc_ty)
        out = tl.sum(src_tile * w_tile, axis=0)
        tl.store(DST + plane + offs_p, out.to(DST.dtype.element_ty), mask=mask_p)


@triton.jit
def _bwd_weight_kernel(GY, X, GW, C, G, CG, H, W, K: tl.constexpr, KK_PAD: tl.constexpr,
                       BLOCK_P: tl.constexpr, F64: tl.constexpr):
    pid_n, b, g, offs_p, mask_p, taps, mask_k, row, col, dh, dw = _program_tile(
        G, H, W, K, KK_PAD, BLOCK_P)
    acc_ty = tl.float64 if F64 else tl.float32
    HW = H * W
    src, valid = _shifted(row, col, dh, dw, mask_p, mask_k, H, W, 1)
    acc = tl.zeros((KK_PAD, BLOCK_P), dtype=acc_ty)
    for c in range(0, CG):
        plane = (b * C + g * CG + c).to(tl.int64) * HW
        gy_row = tl.load(GY + plane + offs_p, mask=mask_p, other=0.).to(acc_ty)
        x_tile = tl.load(X + plane + src, mask=valid, other=0.).to(acc_ty)
        acc += x_tile * gy_row[None, :]
    gw_ptr = GW + pid_n.to(tl.int64) * (K * K * HW) + taps[:, None] * HW + offs_p[None, :]
    tl.store(gw_ptr, acc.to(GW.dtype.element_ty), mask=mask_k[:, None] & mask_p[None, :])


def _config(k: int, hw: int) -> Tuple[int, int]:
    kk_pad = triton.next_power_of_2(k * k)
    # keep the register tile at about 4096 elements
    block_p = max(16, min(triton.next_power_of_2(hw), 4096 // kk_pad))
    return kk_pad, block_p


def _channels_per_program(cg: int, n_programs: int, device: torch.device) -> int:
    """Split a group's channels over programs only when planes x blocks cannot fill the GPU."""
    if device.type != 'cuda':
        return cg
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    splits = max(1, min(cg, (4 * sms + n_programs - 1) // n_programs))
    return (cg + splits - 1) // splits


def _check(*tensors: torch.Tensor) -> None:
    for t in tensors:
        if not t.is_contiguous():
            raise ValueError('triton I-Dynamic kernels need contiguous tensors')


def _meta(x: torch.Tensor, weight: torch.Tensor) -> dict:
    """The kernels' compile-time constants for input ``x`` and kernels ``weight``."""
    k = weight.shape[2]
    kk_pad, block_p = _config(k, x.shape[2] * x.shape[3])
    return dict(K=k, KK_PAD=kk_pad, BLOCK_P=block_p, F64=x.dtype == torch.float64)


def _gather(src: torch.Tensor, weight: torch.Tensor, dst: torch.Tensor, sign: int,
            meta: dict) -> None:
    b, c, h, w = src.shape
    g = weight.shape[1]
    n_p = triton.cdiv(h * w, meta['BLOCK_P'])
    cpp = _channels_per_program(c // g, n_p * b * g, src.device)
    grid = (n_p, b * g, triton.cdiv(c // g, cpp))
    _gather_kernel[grid](src, weight, dst, c, g, c // g, h, w, cpp, SIGN=sign, **meta)


def forward(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    _check(x, weight)
    y = torch.empty_like(x)
    _gather(x, weight, y, 1, _meta(x, weight))
    return y


def backward(grad_y: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, need_x: bool,
             need_w: bool) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
    _check(grad_y, x, weight)
    meta = _meta(x, weight)
    gx = gw = None
    if need_x:
        gx = torch.empty_like(x)
        _gather(grad_y, weight, gx, -1, meta)
    if need_w:
        b, c, h, w = x.shape
        g = weight.shape[1]
        gw = torch.empty_like(weight)
        grid = (triton.cdiv(h * w, meta['BLOCK_P']), b * g)
        _bwd_weight_kernel[grid](grad_y, x, gw, c, g, c // g, h, w, **meta)
    return gx, gw
