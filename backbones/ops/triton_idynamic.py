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
def _tap_geometry(pid_p, H, W, K: tl.constexpr, KK_PAD: tl.constexpr, BLOCK_P: tl.constexpr):
    """Positions of the block, their (row, col), and the tap offsets (dh, dw) of the tile."""
    offs_p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    mask_p = offs_p < H * W
    row = offs_p // W
    col = offs_p % W
    taps = tl.arange(0, KK_PAD)
    mask_k = taps < K * K
    dh = taps // K - K // 2
    dw = taps % K - K // 2
    return offs_p, mask_p, row, col, taps, mask_k, dh, dw


@triton.jit
def _fwd_kernel(X, Wt, Y, C, G, CG, H, W, CH_PER_PROG, K: tl.constexpr, KK_PAD: tl.constexpr,
                BLOCK_P: tl.constexpr, F64: tl.constexpr):
    pid_p = tl.program_id(0)
    pid_n = tl.program_id(1)
    pid_c = tl.program_id(2)
    HW = H * W
    b = pid_n // G
    g = pid_n % G
    offs_p, mask_p, row, col, taps, mask_k, dh, dw = _tap_geometry(pid_p, H, W, K, KK_PAD, BLOCK_P)
    acc_ty = tl.float64 if F64 else tl.float32
    # kernel taps of this block: w[n, k, p]
    w_ptr = Wt + pid_n.to(tl.int64) * (K * K * HW) + taps[:, None] * HW + offs_p[None, :]
    w_tile = tl.load(w_ptr, mask=mask_k[:, None] & mask_p[None, :], other=0.).to(acc_ty)
    # shifted source positions and their validity (zero padding)
    src_r = row[None, :] + dh[:, None]
    src_c = col[None, :] + dw[:, None]
    inside = (src_r >= 0) & (src_r < H) & (src_c >= 0) & (src_c < W)
    valid = mask_k[:, None] & mask_p[None, :] & inside
    src = src_r * W + src_c
    c_start = pid_c * CH_PER_PROG
    for c in range(c_start, tl.minimum(c_start + CH_PER_PROG, CG)):
        plane = (b * C + g * CG + c).to(tl.int64) * HW
        x_tile = tl.load(X + plane + src, mask=valid, other=0.).to(acc_ty)
        out = tl.sum(x_tile * w_tile, axis=0)
        tl.store(Y + plane + offs_p, out.to(Y.dtype.element_ty), mask=mask_p)


@triton.jit
def _bwd_input_kernel(GY, Wt, GX, C, G, CG, H, W, CH_PER_PROG, K: tl.constexpr,
                      KK_PAD: tl.constexpr, BLOCK_P: tl.constexpr, F64: tl.constexpr):
    pid_p = tl.program_id(0)
    pid_n = tl.program_id(1)
    pid_c = tl.program_id(2)
    HW = H * W
    b = pid_n // G
    g = pid_n % G
    offs_p, mask_p, row, col, taps, mask_k, dh, dw = _tap_geometry(pid_p, H, W, K, KK_PAD, BLOCK_P)
    acc_ty = tl.float64 if F64 else tl.float32
    # output positions q - s_k that read position q through tap k
    dst_r = row[None, :] - dh[:, None]
    dst_c = col[None, :] - dw[:, None]
    inside = (dst_r >= 0) & (dst_r < H) & (dst_c >= 0) & (dst_c < W)
    valid = mask_k[:, None] & mask_p[None, :] & inside
    dst = dst_r * W + dst_c
    w_ptr = Wt + pid_n.to(tl.int64) * (K * K * HW) + taps[:, None] * HW + dst
    w_tile = tl.load(w_ptr, mask=valid, other=0.).to(acc_ty)
    c_start = pid_c * CH_PER_PROG
    for c in range(c_start, tl.minimum(c_start + CH_PER_PROG, CG)):
        plane = (b * C + g * CG + c).to(tl.int64) * HW
        gy_tile = tl.load(GY + plane + dst, mask=valid, other=0.).to(acc_ty)
        out = tl.sum(gy_tile * w_tile, axis=0)
        tl.store(GX + plane + offs_p, out.to(GX.dtype.element_ty), mask=mask_p)


@triton.jit
def _bwd_weight_kernel(GY, X, GW, C, G, CG, H, W, K: tl.constexpr, KK_PAD: tl.constexpr,
                       BLOCK_P: tl.constexpr, F64: tl.constexpr):
    pid_p = tl.program_id(0)
    pid_n = tl.program_id(1)
    HW = H * W
    b = pid_n // G
    g = pid_n % G
    offs_p, mask_p, row, col, taps, mask_k, dh, dw = _tap_geometry(pid_p, H, W, K, KK_PAD, BLOCK_P)
    acc_ty = tl.float64 if F64 else tl.float32
    src_r = row[None, :] + dh[:, None]
    src_c = col[None, :] + dw[:, None]
    inside = (src_r >= 0) & (src_r < H) & (src_c >= 0) & (src_c < W)
    valid = mask_k[:, None] & mask_p[None, :] & inside
    src = src_r * W + src_c
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


def forward(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    _check(x, weight)
    b, c, h, w = x.shape
    g, k = weight.shape[1], weight.shape[2]
    kk_pad, block_p = _config(k, h * w)
    y = torch.empty_like(x)
    n_p = triton.cdiv(h * w, block_p)
    cpp = _channels_per_program(c // g, n_p * b * g, x.device)
    grid = (n_p, b * g, triton.cdiv(c // g, cpp))
    meta = dict(K=k, KK_PAD=kk_pad, BLOCK_P=block_p, F64=x.dtype == torch.float64)
    _fwd_kernel[grid](x, weight, y, c, g, c // g, h, w, cpp, **meta)
    return y


def backward(grad_y: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, need_x: bool,
             need_w: bool) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
    _check(grad_y, x, weight)
    b, c, h, w = x.shape
    g, k = weight.shape[1], weight.shape[2]
    kk_pad, block_p = _config(k, h * w)
    n_p = triton.cdiv(h * w, block_p)
    meta = dict(K=k, KK_PAD=kk_pad, BLOCK_P=block_p, F64=x.dtype == torch.float64)
    gx = gw = None
    if need_x:
        gx = torch.empty_like(x)
        cpp = _channels_per_program(c // g, n_p * b * g, x.device)
        grid = (n_p, b * g, triton.cdiv(c // g, cpp))
        _bwd_input_kernel[grid](grad_y, weight, gx, c, g, c // g, h, w, cpp, **meta)
    if need_w:
        gw = torch.empty_like(weight)
        grid = (n_p, b * g)
        _bwd_weight_kernel[grid](grad_y, x, gw, c, g, c // g, h, w, **meta)
    return gx, gw
