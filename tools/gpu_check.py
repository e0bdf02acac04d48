#!/usr/bin/env python
"""The GPU check (run by ``tools/gpu_check.sh``; see its header): one short run that tells
whether this code works and is fast on a CUDA device, printed as ONE JSON line on stdout
(everything else goes to stderr).

1. ``ops``: the dynamic operators on the device against the float64 unfold references, forward
   and gradients: every ``impl`` of ``idynamic_dwconv`` (Triton, torch) and of
   ``dynamic_dwconv`` in float32 / float16 / bfloat16, and every ``impl`` of the I-Dynamic
   mixer (fused, Triton, ...) in float32. ``worst`` is the largest error in units of the
   tolerance (pass: <= 1).
2. ``cupy``: our I-Dynamic forward against a one-thread-per-output CuPy kernel launched as the
   official code launches its kernels (1024 threads per block, grid-stride loop), stage-1 shape
   of a T model at batch 64, float32: ``ours_faster``.
3. ``amp``: one AMP float16 training step (``AmpOptimWrapper``, loss scaling) of each T
   backbone's ImageNet classifier, built from its generated config.
4. ``throughput``: ``tools/benchmark.py --models`` for the four T models, batch 64, 224,
   float16 and float32 (inference, then training while the time budget lasts).

``--dry-run`` does all of it on the CPU at toy sizes (bfloat16 for the half types that need a
GPU, the CuPy kernel's index arithmetic emulated with torch) so that it is known to start.
"""
import argparse
import contextlib
import json
import os
import sys
import time
import traceback
from typing import Any, Callable, Dict, List

import _bootstrap  # noqa: F401  # isort: skip  (quiet imports, the repository on sys.path)
import torch

T_MODELS = ['swin_t', 'dwconv_t', 'ddwconv_t', 'idynamic_t']
#: tolerance of each dtype, relative to the largest reference value (2 units in the last place
#: for the half types: float32 accumulation, one rounding of the result)
TOLERANCE = {torch.float32: 1e-5, torch.float16: 2.0**-10, torch.bfloat16: 2.0**-7}
#: (B, C, H, W, K, G): odd maps, G < C, G = 1, a kernel larger than the map
OP_SHAPES = [(2, 8, 13, 9, 3, 4), (1, 6, 7, 5, 7, 1), (2, 64, 20, 17, 7, 32), (1, 4, 3, 2, 7, 2)]

#: The official code's launch: one thread per output element, 1024 per block, grid-stride loop.
#: weight is (N, G, K, K, H, W): weight[((n*G + g)*K + kh)*K + kw, h, w], g = c // (C / G).
OFFICIAL_KERNEL = r'''
extern "C" __global__ void idynamic_forward(const float* __restrict__ x,
                                            const float* __restrict__ weight,
                                            float* __restrict__ y, const int N, const int C,
                                            const int H, const int W, const int G, const int K,
                                            const int P) {
  const long long total = (long long)N * C * H * W;
  for (long long index = blockIdx.x * (long long)blockDim.x + threadIdx.x; index < total;
       index += (long long)blockDim.x * gridDim.x) {
    const int w = index % W;
    const int h = (index / W) % H;
    const int c = (index / ((long long)W * H)) % C;
    const int n = index / ((long long)W * H * C);
    const int g = c / (C / G);
    float value = 0;
    for (int kh = 0; kh < K; ++kh) {
      for (int kw = 0; kw < K; ++kw) {
        const int h_in = h - P + kh;
        const int w_in = w - P + kw;
        if (h_in >= 0 && h_in < H && w_in >= 0 && w_in < W) {
          const long long offset_w = ((((long long)(n * G + g) * K + kh) * K + kw) * H + h) * W + w;
          const long long offset_x = (((long long)n * C + c) * H + h_in) * W + w_in;
          value += weight[offset_w] * x[offset_x];
        }
      }
    }
    y[index] = value;
  }
}
'''
THREADS_PER_BLOCK = 1024


def log(message: str) -> None:
    print(f'[gpu_check] {message}', file=sys.stderr, flush=True)


def rel_error(got: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype) -> float:
    """max |got - ref| in units of ``TOLERANCE[dtype] * max(max |ref|, 1)`` (the floor keeps
    gradients that vanish in exact arithmetic, e.g. of a conv bias before BN, from dividing
    rounding noise by almost nothing)."""
    scale = TOLERANCE[dtype] * max(ref.abs().max().item(), 1.0)
    return (got.double() - ref).abs().max().item() / scale


def _fwd_bwd(fn: Callable, inputs: List[torch.Tensor], grad_y: torch.Tensor) -> List[torch.Tensor]:
    y = fn(*inputs)
    return [y] + list(torch.autograd.grad(y, inputs, grad_y.to(y.dtype)))


def check_ops(device: str, dtypes: List[torch.dtype]) -> Dict[str, Any]:
    """Every implementation against the float64 unfold reference on ``device``."""
    from backbones.mixers import IDynamicDWConv
    from backbones.ops import (available_impls, dynamic_dwconv, dynamic_dwconv_reference,
                               idynamic_dwconv, idynamic_dwconv_reference)
    impls = available_impls()
    idyn = [i for i in impls['idynamic_dwconv'] if i not in ('unfold', 'fused')]
    # exact float32 convolutions and matmuls (no TF32) for the cuDNN / cuBLAS parts
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    worst: Dict[str, float] = {}

    def note(key: str, errors: List[float]) -> None:
        worst[key] = max(worst.get(key, 0.0), *errors)

    for b, c, h, w, k, g in OP_SHAPES:
        x64 = torch.randn(b, c, h, w, device=device, dtype=torch.float64)
        wt64 = torch.randn(b, g, k, k, h, w, device=device, dtype=torch.float64)
        dw64 = torch.randn(b, c, k, k, device=device, dtype=torch.float64)
        gy = torch.randn(b, c, h, w, device=device, dtype=torch.float64)
        for dtype in dtypes:
            # inputs representable in dtype, so that the reference sees the same values
            xs = [t.to(dtype).double().requires_grad_() for t in (x64, wt64, dw64)]
            ref_i = _fwd_bwd(idynamic_dwconv_reference, xs[:2], gy.to(dtype).double())
            ref_d = _fwd_bwd(dynamic_dwconv_reference, [xs[0], xs[2]], gy.to(dtype).double())
            low = [t.detach().to(dtype).requires_grad_() for t in xs]
            for impl in idyn:
                got = _fwd_bwd(lambda a, b_, i=impl: idynamic_dwconv(a, b_, impl=i), low[:2], gy)
                note(f'idynamic_dwconv/{impl}/{str(dtype)[6:]}',
                     [rel_error(a, r, dtype) for a, r in zip(got, ref_i)])
            for impl in [i for i in impls['dynamic_dwconv'] if i != 'unfold']:
                got = _fwd_bwd(
                    lambda a, b_, i=impl: dynamic_dwconv(a, b_, impl=i), [low[0], low[2]], gy)
                note(f'dynamic_dwconv/{impl}/{str(dtype)[6:]}',
                     [rel_error(a, r, dtype) for a, r in zip(got, ref_d)])
        if c % g == 0 and c > g:
            mixer = IDynamicDWConv(c, c, k, kernel_groups=g).to(device).train()
            for impl in ['auto'] + impls['idynamic_dwconv']:
                errors = _mixer_errors(mixer, impl, x64, gy)
                note(f'IDynamicDWConv/{impl}/float32', errors)
    return dict(worst=worst, passed=all(v <= 1.0 for v in worst.values()))


def _mixer_errors(mixer: torch.nn.Module, impl: str, x64: torch.Tensor,
                  gy: torch.Tensor) -> List[float]:
    """Errors of the float32 mixer with ``impl`` against the float64 one with 'unfold'."""
    import copy
    outs = []
    for dtype, use in ((torch.float64, 'unfold'), (torch.float32, impl)):
        m = copy.deepcopy(mixer).to(dtype)
        m.impl = use
        x = x64.to(dtype).requires_grad_()
        params = [x] + list(m.parameters())
        outs.append(_fwd_bwd(lambda *_: m(x), params, gy))
    # 10x the float32 tolerance: BN and the generator's convs (cuDNN / oneDNN) round too
    return [rel_error(a, r, torch.float32) / 10 for a, r in zip(outs[1], outs[0])]


def _emulated_official(x: torch.Tensor, weight: torch.Tensor, k: int) -> torch.Tensor:
    """:data:`OFFICIAL_KERNEL`'s index arithmetic, vectorized over the outputs with torch."""
    n_, c_, h_, w_ = x.shape
    g_ = weight.shape[1]
    n, c, h, w = torch.meshgrid(*(torch.arange(s) for s in x.shape), indexing='ij')
    g, p = c // (c_ // g_), k // 2
    xf, wf, y = x.reshape(-1), weight.reshape(-1), torch.zeros_like(x)
    for kh in range(k):
        for kw in range(k):
            h_in, w_in = h - p + kh, w - p + kw
            valid = (h_in >= 0) & (h_in < h_) & (w_in >= 0) & (w_in < w_)
            offset_w = ((((n * g_ + g) * k + kh) * k + kw) * h_ + h) * w_ + w
            offset_x = ((n * c_ + c) * h_ + h_in.clamp(0, h_ - 1)) * w_ + w_in.clamp(0, w_ - 1)
            y += torch.where(valid, wf[offset_w] * xf[offset_x], torch.zeros_like(y))
    return y


def cupy_vs_ours(device: str, shape: tuple, dry_run: bool) -> Dict[str, Any]:
    """Our forward against :data:`OFFICIAL_KERNEL` (emulated on the CPU in a dry run)."""
    from torch.utils.benchmark import Timer

    from backbones.ops import idynamic_dwconv, idynamic_dwconv_reference
    b, c, h, w, k, g = shape
    small = [torch.randn(1, 8, 9, 11, device=device), torch.randn(1, 2, 7, 7, 9, 11, device=device)]
    ref = idynamic_dwconv_reference(*small)
    if dry_run:
        err = rel_error(_emulated_official(*small, 7), ref, torch.float32)
        return dict(kernel_matches_reference=err <= 10, error_in_tolerances=err, emulated=True)
    import cupy
    kernel = cupy.RawKernel(OFFICIAL_KERNEL, 'idynamic_forward')

    def official(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        y = torch.empty_like(x)
        n, c_, h_, w_ = x.shape
        total = x.numel()
        args = (cupy.from_dlpack(x), cupy.from_dlpack(weight), cupy.from_dlpack(y),
                *(cupy.int32(v)
                  for v in (n, c_, h_, w_, weight.shape[1], weight.shape[2], weight.shape[2] // 2)))
        with cupy.cuda.ExternalStream(torch.cuda.current_stream().cuda_stream):
            kernel(((total + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK, ), (THREADS_PER_BLOCK, ),
                   args)
        return y

    err = rel_error(official(*small), ref, torch.float32)
    x = torch.randn(b, c, h, w, device=device)
    weight = torch.randn(b, g, k, k, h, w, device=device)
    times = {}
    with torch.no_grad():
        for name, fn in (('official_cupy', official), ('ours', idynamic_dwconv)):
            fn(x, weight)
            timer = Timer(stmt='fn(x, weight)', globals=dict(fn=fn, x=x, weight=weight))
            times[name] = timer.blocked_autorange(min_run_time=1.0).median * 1e3
    return dict(
        kernel_matches_reference=err <= 10,
        error_in_tolerances=err,
        shape=list(shape),
        time_ms=times,
        official_vs_ours_time_ratio=times['official_cupy'] / times['ours'],
        ours_faster=times['ours'] < times['official_cupy'])


def amp_steps(device: str, models: List[str], batch: int, img_size: int) -> Dict[str, Any]:
    """One AMP training step of each T model's ImageNet classifier."""
    from mmengine.config import Config
    from mmengine.optim import AmpOptimWrapper
    from mmpretrain.structures import DataSample

    from backbones.engine.optimizers import CPUAutocastOptimWrapper
    from harness.configgen import model_config
    from harness.models import build_task_model
    out = {}
    for name in models:
        cfg = Config.fromfile(str(model_config(name, 'imagenet')))
        model_cfg = cfg.model
        model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
        net = build_task_model(model_cfg, 'imagenet').to(device).train()
        optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)
        if device == 'cuda':
            wrapper = AmpOptimWrapper(optimizer=optimizer, dtype='float16')
        else:
            wrapper = CPUAutocastOptimWrapper(optimizer=optimizer, dtype='bfloat16')
        data = dict(
            inputs=[torch.randint(0, 256, (3, img_size, img_size), dtype=torch.uint8)] * batch,
            data_samples=[DataSample().set_gt_label(i % 1000) for i in range(batch)])
        before = [p.detach().clone() for p in net.parameters()]
        loss = net.train_step(data, wrapper)['loss'].item()
        changed = sum(not torch.equal(a, p) for a, p in zip(before, net.parameters()))
        scale = wrapper.loss_scaler.get_scale() if device == 'cuda' else None
        out[name] = dict(
            loss=loss,
            loss_scale=scale,
            params_changed=changed,
            passed=bool(torch.isfinite(torch.tensor(loss))) and changed > 0)
    return dict(models=out, passed=all(m['passed'] for m in out.values()))


def throughput(device: str, models: List[str], batch: int, img_size: int, dtypes: List[str],
               modes: List[str], budget: 'Budget', warmup: int, repeats: int) -> Dict[str, Any]:
    """``benchmark.py --models`` for the T models: inference per dtype, then training while
    the budget lasts."""
    from harness.benchmark import RunConfig, bench_models
    threads = max(1, (os.cpu_count() or 1) // 2)
    out: Dict[str, Any] = {}
    for mode in modes:
        for dtype in dtypes:
            if mode == 'train' and budget.left() < 120:
                out[f'{mode}/{dtype}'] = 'skipped: time budget'
                continue
            run = RunConfig(device, dtype, threads, warmup, repeats, 1, 300)
            out[f'{mode}/{dtype}'] = bench_models(run, models, [mode], batch, img_size)
    return out


class _Absent:
    """A meta-path finder that makes packages absent (as on the GPU machine)."""

    def __init__(self, names: List[str]) -> None:
        self.names = set(names)

    def find_spec(self, name: str, path=None, target=None):
        if name.split('.')[0] in self.names:
            raise ImportError(f'{name} is not installed on the GPU machine')
        return None


class Budget:
    """Seconds left of the run's time budget."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--dry-run', action='store_true', help='everything but CUDA, on the CPU')
    p.add_argument('--budget', type=float, default=420, help='seconds (default 420)')
    p.add_argument('--models', nargs='+', default=T_MODELS, help='(default: the four T models)')
    args = p.parse_args(argv)
    dry = args.dry_run
    if dry:  # as on the GPU machine: no mmdet, no mmseg
        sys.meta_path.insert(0, _Absent(['mmdet', 'mmseg']))
    if not dry and not torch.cuda.is_available():
        print(json.dumps(dict(passed=False, errors=['no CUDA device (use --dry-run)'])))
        return 2
    device = 'cpu' if dry else 'cuda'
    budget, start = Budget(args.budget), time.monotonic()
    report: Dict[str, Any] = dict(
        dry_run=dry,
        device=torch.cuda.get_device_name() if not dry else 'cpu',
        torch=torch.__version__,
        python=sys.version.split()[0])
    try:
        import triton
        report['triton'] = triton.__version__
    except ImportError:
        report['triton'] = None
    half = [torch.bfloat16] if dry else [torch.float16, torch.bfloat16]
    # toy batches in a dry run; 224 there too: Swin's last stage needs a 7x7 map
    batch, bench_batch = (2, 2) if dry else (16, 64)
    bench_dtypes = ['float32', 'bfloat16' if dry else 'float16']
    bench_modes = ['inference'] if dry else ['inference', 'train']
    warmup, repeats = (0, 1) if dry else (5, 20)
    parts = [
        ('ops', lambda: check_ops(device, [torch.float32] + half)),
        ('cupy', lambda: cupy_vs_ours(device, (64, 96, 56, 56, 7, 32), dry)),
        ('amp', lambda: amp_steps(device, args.models, batch, 224)),
        ('throughput', lambda: throughput(device, args.models, bench_batch, 224, bench_dtypes,
                                          bench_modes, budget, warmup, repeats)),
    ]
    errors = []
    with contextlib.redirect_stdout(sys.stderr):  # mmengine logs to stdout
        for name, part in parts:
            if budget.left() <= 0:
                report[name] = 'skipped: time budget'
                continue
            log(f'{name} ({budget.left():.0f} s left)')
            t0 = time.monotonic()
            try:
                report[name] = part()
                report[name]['seconds'] = round(time.monotonic() - t0, 1)
            except Exception as exc:  # report and go on with the next part
                traceback.print_exc()
                report[name] = dict(error=f'{type(exc).__name__}: {exc}'[:500])
                errors.append(name)
    report['ours_faster_than_official'] = report['cupy'].get('ours_faster') if isinstance(
        report.get('cupy'), dict) else None
    report['passed'] = not errors and all(
        report[n].get('passed', True) for n in ('ops', 'amp') if isinstance(report.get(n), dict))
    report['errors'] = errors
    report['elapsed_s'] = round(time.monotonic() - start, 1)
    print(json.dumps(report), flush=True)
    return 0 if report['passed'] else 1


if __name__ == '__main__':
    sys.exit(main())
