#!/usr/bin/env python
"""Speed and memory of the dynamic depth-wise operators (``--ops``) and the backbones
(``--models``).

    python tools/benchmark.py --ops                 # stage-1 shapes of the T models, fwd + bwd
    python tools/benchmark.py --ops --json
    python tools/benchmark.py --models --json --out work_dirs/speed.json
    python tools/benchmark.py --models --names swin_t dwconv_t idynamic_t --batch 8

Every case (one operator, or one model in one mode) runs in a fresh subprocess: warm-up, timed
repeats (the MEDIAN is reported), then one more iteration whose peak memory is measured. Cases
cannot disturb one another's allocator state or caches.

Peak memory is the peak of what one iteration allocates on top of its inputs (outputs, tensors
saved for backward, gradients, temporaries):

* CUDA: ``torch.cuda.max_memory_allocated()`` minus the allocation before the iteration;
* CPU: PyTorch has no allocator statistics for CPU tensors, so the peak resident set size is
  used. Two things make it exact for tensor memory: glibc is told (``mallopt``) to serve every
  block >= 64 KiB with its own mmap, so freed tensors go back to the OS at once instead of being
  reused silently from the heap (``malloc_trim`` first returns what the timed runs left there);
  and the kernel's high-water mark is reset (``/proc/self/clear_refs``) right before the
  iteration, so ``VmHWM - VmRSS(before)`` is the peak of that iteration alone. (ru_maxrss deltas
  would miss peaks below the import-time high-water mark; the profiler's memory events need
  replaying and miss allocations outside ATen.) Where clear_refs is not writable, the result is
  null and the JSON says so in ``mem_method``.
"""
import argparse
import ctypes
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULT_TAG = 'BENCH_RESULT '
DTYPES = ('float32', 'bfloat16', 'float16')

# -------------------------------------------------------------------------------------------------
# measurement (runs in the child process)


def _status_kb(key: str) -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1])
    raise KeyError(key)


def _reset_cpu_peak() -> bool:
    """Return unused heap memory to the OS, mmap big blocks from now on, reset VmHWM."""
    gc.collect()
    try:
        libc = ctypes.CDLL('libc.so.6')
        libc.mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD (also stops its dynamic growth)
        libc.mallopt(-1, 128 * 1024)  # M_TRIM_THRESHOLD
        libc.malloc_trim(0)
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')  # reset the peak resident set size (VmHWM)
        return True
    except OSError:
        return False


def _peak_mb(step: Callable[[], None], device: str) -> Dict[str, object]:
    import torch
    if device == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step()
        torch.cuda.synchronize()
        return dict(
            peak_mem_mb=(torch.cuda.max_memory_allocated() - base) / 2**20,
            mem_method='cuda.max_memory_allocated')
    if not sys.platform.startswith('linux') or not _reset_cpu_peak():
        step()
        return dict(peak_mem_mb=None, mem_method='unavailable')
    base = _status_kb('VmRSS')
    step()
    return dict(peak_mem_mb=(_status_kb('VmHWM') - base) / 1024, mem_method='VmHWM-VmRSS(mmap)')


def _timings(step: Callable[[], None], sync: Callable[[], None], warmup: int,
             repeats: int) -> List[float]:
    for _ in range(warmup):
        step()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return times


def _op_step(spec: dict) -> Callable[[], None]:
    import torch
    import torch.nn as nn

    from backbones.ops import (dynamic_dwconv, dynamic_dwconv_reference, idynamic_dwconv,
                               idynamic_dwconv_reference)
    device, dtype = spec['device'], getattr(torch, spec['dtype'])
    b, c, h, w, g, k = (
        spec[key] for key in ('batch', 'channels', 'height', 'width', 'groups', 'kernel'))
    x = torch.randn(b, c, h, w, device=device, dtype=dtype, requires_grad=True)
    grad_y = torch.randn(b, c, h, w, device=device, dtype=dtype)
    name, impl = spec['case'], spec.get('impl', 'auto')
    if name in ('idynamic', 'unfold'):
        weight = torch.randn(b, g, k, k, h, w, device=device, dtype=dtype, requires_grad=True)
        inputs = [x, weight]
        if name == 'unfold':
            fn = lambda: idynamic_dwconv_reference(x, weight)  # noqa: E731
        else:
            fn = lambda: idynamic_dwconv(x, weight, impl=impl)  # noqa: E731
    elif name == 'dwconv':
        conv = nn.Conv2d(c, c, k, padding=k // 2, groups=c).to(device=device, dtype=dtype)
        inputs = [x] + list(conv.parameters())
        fn = lambda: conv(x)  # noqa: E731
    elif name == 'ddwconv':
        weight = torch.randn(b, c, k, k, device=device, dtype=dtype, requires_grad=True)
        bias = torch.randn(c, device=device, dtype=dtype, requires_grad=True)
        inputs = [x, weight, bias]
        if impl == 'unfold':
            fn = lambda: dynamic_dwconv_reference(x, weight, bias)  # noqa: E731
        else:
            fn = lambda: dynamic_dwconv(x, weight, bias, impl=impl)  # noqa: E731
    else:
        raise ValueError(f'unknown op case {name!r}')

    def step():
        torch.autograd.grad(fn(), inputs, grad_y)

    return step


def _model_step(spec: dict) -> Callable[[], None]:
    import torch

    from backbones.zoo import build_backbone
    device, dtype = spec['device'], getattr(torch, spec['dtype'])
    model = build_backbone(spec['model']).to(device)
    imgs = torch.randn(spec['batch'], 3, spec['img_size'], spec['img_size'], device=device)
    autocast = torch.autocast(device, dtype=dtype, enabled=dtype != torch.float32)
    if spec['mode'] == 'inference':
        model.eval()

        def step():
            with torch.no_grad(), autocast:
                model(imgs)
    else:
        model.train()

        def step():
            model.zero_grad(set_to_none=True)
            with autocast:
                outs = model(imgs)
                loss = sum(o.float().mean() for o in outs)
            loss.backward()

    return step


def run_case(spec: dict) -> dict:
    """Time and measure one case in this process; ``spec`` comes from the parent."""
    import torch
    torch.set_num_threads(spec['threads'])
    torch.manual_seed(0)
    device = spec['device']
    sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)
    step = _model_step(spec) if spec['kind'] == 'model' else _op_step(spec)
    times = _timings(step, sync, spec['warmup'], spec['repeats'])
    result = dict(
        median_ms=statistics.median(times) * 1e3,
        min_ms=min(times) * 1e3,
        times_ms=[t * 1e3 for t in times])
    result.update(_peak_mb(step, device))
    if spec['kind'] == 'op' and spec['case'] == 'idynamic':
        from backbones.ops.idynamic import _resolve_impl
        result['impl'] = _resolve_impl(spec.get('impl', 'auto'), torch.empty(0, device=device))
    return result


# -------------------------------------------------------------------------------------------------
# orchestration (parent process)


def _spawn(spec: dict, timeout: float) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(spec['threads']))
    env['PYTHONPATH'] = ROOT + os.pathsep + env.get('PYTHONPATH', '')
    cmd = [sys.executable, os.path.abspath(__file__), '--_case', json.dumps(spec)]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(error=f'timed out after {timeout:.0f} s')
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ['no output']
    return dict(error=f'exit {proc.returncode}: {tail[0]}')


def _torch_version() -> str:
    import torch
    return torch.__version__


def _op_cases(device: str) -> List[dict]:
    cases = [
        dict(case='idynamic', impl='auto'),
        dict(case='unfold'),
        dict(case='dwconv'),
        dict(case='ddwconv', impl='auto')
    ]
    cases += [dict(case='ddwconv', impl=i) for i in ('folded', 'folded_cl', 'loop')]
    if device == 'cuda':
        cases.append(dict(case='idynamic', impl='torch'))
    return cases


def _case_key(case: dict) -> str:
    impl = case.get('impl')
    return case['case'] if impl in (None, 'auto') else f"{case['case']}_{impl}"


def bench_ops(args: argparse.Namespace) -> dict:
    common = dict(
        kind='op',
        batch=args.batch,
        channels=args.channels,
        height=args.height,
        width=args.width,
        groups=args.groups,
        kernel=args.kernel,
        threads=args.threads,
        device=args.device,
        dtype=args.dtype,
        warmup=args.warmup,
        repeats=args.repeats)
    results = {}
    for case in _op_cases(args.device):
        key = _case_key(case)
        results[key] = _spawn(dict(common, **case), args.timeout)
        if not args.json:
            print(f'  measured {key}: {_fmt_result(results[key])}', file=sys.stderr)
    med = {k: r.get('median_ms') for k, r in results.items()}
    mem = {k: r.get('peak_mem_mb') for k, r in results.items()}

    def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
        return a / b if a is not None and b else None

    report = dict(
        idynamic_vs_unfold_speedup=ratio(med['unfold'], med['idynamic']),
        idynamic_vs_unfold_memory_ratio=ratio(mem['idynamic'], mem['unfold']),
        idynamic_vs_dwconv_time_ratio=ratio(med['idynamic'], med['dwconv']),
        ddwconv_vs_dwconv_time_ratio=ratio(med['ddwconv'], med['dwconv']),
        time_ms=med,
        time_min_ms={
            k: r.get('min_ms')
            for k, r in results.items()
        },
        peak_mem_mb=mem,
        idynamic_impl=results['idynamic'].get('impl'),
        errors={
            k: r['error']
            for k, r in results.items() if 'error' in r
        },
        mem_method=next((r['mem_method'] for r in results.values() if 'mem_method' in r), None),
        batch_size=args.batch,
        channels=args.channels,
        height=args.height,
        width=args.width,
        groups=args.groups,
        kernel=args.kernel,
        threads=args.threads,
        device=args.device,
        dtype=args.dtype,
        warmup=args.warmup,
        repeats=args.repeats,
        torch=_torch_version())
    report['pass'] = 'forward+backward'
    return report


def _fmt_result(r: dict) -> str:
    if 'error' in r:
        return 'ERROR ' + r['error']
    mem = r.get('peak_mem_mb')
    return f"median {r['median_ms']:.1f} ms, peak {'n/a' if mem is None else f'{mem:.0f} MB'}"


def _fmt(v: Optional[float], spec: str) -> str:
    return 'n/a' if v is None else format(v, spec)


def print_ops(rep: dict) -> None:
    print(f"I-Dynamic / D-DW-Conv vs 7x7 depth-wise conv, forward+backward, "
          f"B={rep['batch_size']} C={rep['channels']} H={rep['height']} W={rep['width']} "
          f"G={rep['groups']} K={rep['kernel']}, {rep['dtype']}, device={rep['device']}, "
          f"threads={rep['threads']}, torch {rep['torch']}, median of {rep['repeats']} "
          f"(after {rep['warmup']} warm-up)")
    print(f"{'case':<22}{'median ms':>12}{'min ms':>10}{'peak MB':>10}{'x dwconv':>10}")
    for key, med in rep['time_ms'].items():
        base = rep['time_ms'].get('dwconv')
        print(f"{key:<22}{_fmt(med, '.1f'):>12}{_fmt(rep['time_min_ms'][key], '.1f'):>10}"
              f"{_fmt(rep['peak_mem_mb'][key], '.0f'):>10}"
              f"{_fmt(med / base if med and base else None, '.2f'):>10}")
    print(f"I-Dynamic impl: {rep['idynamic_impl']}; memory: {rep['mem_method']}")
    print(f"I-Dynamic vs unfold: {_fmt(rep['idynamic_vs_unfold_speedup'], '.2f')}x faster "
          f"(target >= 3), memory ratio {_fmt(rep['idynamic_vs_unfold_memory_ratio'], '.3f')} "
          f"(target <= 0.125)")
    print(f"I-Dynamic / static DW-Conv time: {_fmt(rep['idynamic_vs_dwconv_time_ratio'], '.2f')} "
          f"(target <= 3); D-DW-Conv / static DW-Conv time: "
          f"{_fmt(rep['ddwconv_vs_dwconv_time_ratio'], '.2f')} (target <= 1.5)")
    for key, err in rep['errors'].items():
        print(f'ERROR in {key}: {err}')


def bench_models(args: argparse.Namespace) -> List[dict]:
    names = args.names
    if not names:
        from backbones.zoo import MODEL_NAMES
        names = list(MODEL_NAMES)
    records = []
    for name in names:
        for mode in args.modes:
            spec = dict(
                kind='model',
                model=name,
                mode=mode,
                batch=args.batch,
                img_size=args.img_size,
                threads=args.threads,
                device=args.device,
                dtype=args.dtype,
                warmup=args.warmup,
                repeats=args.repeats)
            r = _spawn(spec, args.timeout)
            if 'error' in r:
                print(f'{name} {mode}: ERROR {r["error"]}', file=sys.stderr)
                continue
            rec = dict(
                model=name,
                mode=mode,
                batch_size=args.batch,
                threads=args.threads,
                device=args.device,
                dtype=args.dtype,
                images_per_s=args.batch / (r['median_ms'] / 1e3),
                latency_ms=r['median_ms'],
                peak_mem_mb=r['peak_mem_mb'])
            records.append(rec)
            if not args.json:
                print(f'  measured {name} {mode}: {_fmt_result(r)}', file=sys.stderr)
    return records


RATIO_TARGETS = [('dwconv_t', 'swin_t', 1.2), ('idynamic_t', 'swin_t', 1.0)]


def model_ratios(records: List[dict]) -> List[str]:
    ips = {(r['model'], r['mode']): r['images_per_s'] for r in records}
    lines = []
    for mode in ('inference', 'train'):
        for a, b, target in RATIO_TARGETS:
            if (a, mode) in ips and (b, mode) in ips:
                r = ips[(a, mode)] / ips[(b, mode)]
                goal = f' (target >= {target})' if mode == 'inference' else ''
                lines.append(f'{mode}: {a} / {b} images/s = {r:.2f}{goal}')
    return lines


def print_models(records: List[dict], args: argparse.Namespace) -> None:
    print(f'backbones at {args.img_size}x{args.img_size}, batch {args.batch}, {args.dtype}, '
          f'device={args.device}, threads={args.threads}, torch {_torch_version()}, '
          f'median of {args.repeats} (after {args.warmup} warm-up); train = forward+backward')
    print(f"{'model':<14}{'mode':<11}{'images/s':>10}{'latency ms':>12}{'peak MB':>10}")
    for r in records:
        print(f"{r['model']:<14}{r['mode']:<11}{r['images_per_s']:>10.1f}"
              f"{r['latency_ms']:>12.1f}{_fmt(r['peak_mem_mb'], '.0f'):>10}")


def _write_atomic(path: str, text: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.' + os.path.basename(path), suffix='.tmp')
    try:
        with os.fdopen(fd, 'w') as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument('--ops', action='store_true', help='operator level (fwd+bwd)')
    mode.add_argument('--models', action='store_true', help='backbone level')
    mode.add_argument('--_case', help=argparse.SUPPRESS)
    p.add_argument('--batch', type=int, default=8, help='batch size (default 8)')
    p.add_argument('--channels', type=int, default=96, help='--ops: C (default 96)')
    p.add_argument('--height', type=int, default=56, help='--ops: H (default 56)')
    p.add_argument('--width', type=int, default=56, help='--ops: W (default 56)')
    p.add_argument('--groups', type=int, default=32, help='--ops: I-Dynamic kernel groups G')
    p.add_argument('--kernel', type=int, default=7, help='--ops: kernel size K (default 7)')
    p.add_argument('--names', nargs='*', help='--models: zoo names (default: all)')
    p.add_argument(
        '--modes',
        nargs='+',
        default=['inference', 'train'],
        choices=['inference', 'train'],
        help='--models: what to measure')
    p.add_argument('--img-size', type=int, default=224, help='--models: input size')
    p.add_argument(
        '--threads',
        type=int,
        default=os.cpu_count() or 1,
        help='torch intra-op threads (default: all cores)')
    p.add_argument('--repeats', type=int, default=None, help='timed runs (ops 10, models 5)')
    p.add_argument('--warmup', type=int, default=None, help='warm-up runs (ops 3, models 2)')
    p.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    p.add_argument(
        '--dtype',
        default='float32',
        choices=DTYPES,
        help='ops: tensor dtype; models: autocast dtype unless float32')
    p.add_argument('--timeout', type=float, default=1800, help='seconds per case')
    p.add_argument('--json', action='store_true', help='print JSON instead of a table')
    p.add_argument('--out', help='also write the JSON to this file (atomically)')
    args = p.parse_args(argv)
    if args.repeats is None:
        args.repeats = 5 if args.models else 10
    if args.warmup is None:
        args.warmup = 2 if args.models else 3
    if min(args.repeats, args.threads, args.batch) < 1 or args.warmup < 0:
        p.error('--repeats, --threads and --batch must be >= 1, --warmup >= 0')
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args._case:
        if ROOT not in sys.path:
            sys.path.insert(0, ROOT)
        print(RESULT_TAG + json.dumps(run_case(json.loads(args._case))), flush=True)
        return 0
    if args.ops:
        result = bench_ops(args)
        failed = bool(result['errors'])
        if not args.json:
            print_ops(result)
    else:
        result = bench_models(args)
        failed = not result
        if not args.json:
            print_models(result, args)
        for line in model_ratios(result):
            print(line, file=sys.stderr if args.json else sys.stdout)
    text = json.dumps(result, indent=2)
    if args.json:
        print(text)
    if args.out:
        _write_atomic(args.out, text + '\n')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
