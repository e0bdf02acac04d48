"""Operator cases: the dynamic depth-wise operators against a static depth-wise conv, forward +
backward, at the stage-1 shapes of a T model (``--ops``) or at dense-task resolution
(:mod:`.dense`).

Cases (``time_ms`` keys): ``idynamic`` (:func:`backbones.ops.idynamic_dwconv` given the kernel
tensor), ``idynamic_mixer`` (the whole :class:`backbones.mixers.IDynamicDWConv`: kernel
generator and convolution, as a block runs it), ``unfold`` (the unfold reference), ``dwconv``
(``nn.Conv2d`` with groups = C), ``ddwconv`` and its implementations (D-DW-Conv).
"""
from dataclasses import dataclass
from typing import Any, Callable, Dict, List

from .measure import RunConfig, errors_of, fmt, mem_method_of, ratio


@dataclass
class OpShape:
    """The operands of an op case.

    Args:
        batch (int): B. Defaults to 8.
        channels (int): C. Defaults to 96.
        height (int): H. Defaults to 56.
        width (int): W. Defaults to 56.
        groups (int): I-Dynamic kernel groups G. Defaults to 32.
        kernel (int): kernel size K. Defaults to 7.
    """
    batch: int = 8
    channels: int = 96
    height: int = 56
    width: int = 56
    groups: int = 32
    kernel: int = 7

    def describe(self) -> Dict[str, int]:
        """The shape for a report (``batch_size`` for the batch)."""
        fields = dict(vars(self))
        return dict(batch_size=fields.pop('batch'), **fields)


def _op_fn(spec: Dict[str, Any]) -> tuple:
    """(function, tensors whose gradients a step computes) of an op case."""
    import torch
    import torch.nn as nn

    from backbones.mixers import IDynamicDWConv
    from backbones.ops import (dynamic_dwconv, dynamic_dwconv_reference, idynamic_dwconv,
                               idynamic_dwconv_reference)
    device, dtype = spec['device'], getattr(torch, spec['dtype'])
    b, c, h, w, g, k = (
        spec[key] for key in ('batch', 'channels', 'height', 'width', 'groups', 'kernel'))
    x = torch.randn(b, c, h, w, device=device, dtype=dtype, requires_grad=True)
    name, impl = spec['case'], spec.get('impl', 'auto')
    if name in ('idynamic', 'unfold'):
        weight = torch.randn(b, g, k, k, h, w, device=device, dtype=dtype, requires_grad=True)
        if name == 'unfold':
            return (lambda: idynamic_dwconv_reference(x, weight)), [x, weight]
        return (lambda: idynamic_dwconv(x, weight, impl=impl)), [x, weight]
    if name in ('idynamic_mixer', 'dwconv'):
        if name == 'dwconv':
            module = nn.Conv2d(c, c, k, padding=k // 2, groups=c)
        else:
            module = IDynamicDWConv(c, c, k, kernel_groups=g, impl=impl)
        module = module.to(device=device, dtype=dtype).train()
        return (lambda: module(x)), [x] + list(module.parameters())
    if name == 'ddwconv':
        weight = torch.randn(b, c, k, k, device=device, dtype=dtype, requires_grad=True)
        bias = torch.randn(c, device=device, dtype=dtype, requires_grad=True)
        if impl == 'unfold':
            return (lambda: dynamic_dwconv_reference(x, weight, bias)), [x, weight, bias]
        return (lambda: dynamic_dwconv(x, weight, bias, impl=impl)), [x, weight, bias]
    raise ValueError(f'unknown op case {name!r}')


def op_step(spec: Dict[str, Any]) -> Callable[[], None]:
    """The step of an op case: forward, then backward to every input and parameter.

    Args:
        spec (dict): the run settings, the :class:`OpShape` fields, ``case`` and ``impl``.

    Returns:
        Callable: the step; its ``info`` names the I-Dynamic implementation that ran.
    """
    import torch
    fn, inputs = _op_fn(spec)
    x = inputs[0]
    grad_y = torch.randn(x.shape, device=x.device, dtype=x.dtype)

    def step():
        torch.autograd.grad(fn(), inputs, grad_y)

    step.info = {}
    if spec['case'] == 'idynamic':
        from backbones.ops.idynamic import _resolve_impl
        step.info['impl'] = _resolve_impl(spec.get('impl', 'auto'), x)
    return step


def op_cases(device: str) -> List[Dict[str, str]]:
    """The ``--ops`` cases (a Triton-free I-Dynamic case too on CUDA)."""
    cases = [
        dict(case='idynamic', impl='auto'),
        dict(case='idynamic_mixer', impl='auto'),
        dict(case='unfold'),
        dict(case='dwconv'),
        dict(case='ddwconv', impl='auto')
    ]
    cases += [dict(case='ddwconv', impl=i) for i in ('folded', 'folded_cl', 'loop')]
    # the PyTorch-only paths beside the compiled / Triton ones that 'auto' picks
    cases += [dict(case='idynamic', impl='torch'), dict(case='idynamic_mixer', impl='fused')]
    return cases


def case_key(case: Dict[str, str]) -> str:
    """``'ddwconv_loop'``; the plain case name for the automatic implementation."""
    impl = case.get('impl')
    return case['case'] if impl in (None, 'auto') else f"{case['case']}_{impl}"


def measure_ops(run: RunConfig, shape: OpShape,
                cases: List[Dict[str, str]]) -> Dict[str, Dict[str, Any]]:
    """Measure op ``cases`` at ``shape``: case key -> result."""
    specs = {case_key(case): run.spec(kind='op', **vars(shape), **case) for case in cases}
    return run.measure(specs)


def bench_ops(run: RunConfig, shape: OpShape) -> Dict[str, Any]:
    """The ``--ops`` report: times, peaks and the ratios of the targets, measured in one run.

    Args:
        run (RunConfig): how the cases run.
        shape (OpShape): the operands.

    Returns:
        dict: ``idynamic_vs_unfold_speedup``, ``idynamic_vs_unfold_memory_ratio``,
        ``idynamic_vs_dwconv_time_ratio``, ``idynamic_mixer_vs_dwconv_time_ratio``,
        ``ddwconv_vs_dwconv_time_ratio``, ``time_ms`` and ``peak_mem_mb`` per case, ``errors``,
        the shape and the run settings.
    """
    results = measure_ops(run, shape, op_cases(run.device))
    med = {k: r.get('time_ms') for k, r in results.items()}
    mem = {k: r.get('peak_mem_mb') for k, r in results.items()}
    report = dict(
        idynamic_vs_unfold_speedup=ratio(med['unfold'], med['idynamic']),
        idynamic_vs_unfold_memory_ratio=ratio(mem['idynamic'], mem['unfold']),
        idynamic_vs_dwconv_time_ratio=ratio(med['idynamic'], med['dwconv']),
        idynamic_mixer_vs_dwconv_time_ratio=ratio(med['idynamic_mixer'], med['dwconv']),
        ddwconv_vs_dwconv_time_ratio=ratio(med['ddwconv'], med['dwconv']),
        time_ms=med,
        peak_mem_mb=mem,
        idynamic_impl=results['idynamic'].get('impl'),
        errors=errors_of(results),
        mem_method=mem_method_of(results))
    report.update(shape.describe(), **run.describe())
    report['pass'] = 'forward+backward'
    return report


def print_cases(rep: Dict[str, Any], base: str = 'dwconv') -> None:
    """A table of ``rep``'s cases: time, peak and time relative to ``base``."""
    print(f"{'case':<22}{'ms':>12}{'peak MB':>10}{'x ' + base:>10}")
    for key, med in rep['time_ms'].items():
        ref = rep['time_ms'].get(base)
        print(f"{key:<22}{fmt(med, '.1f'):>12}{fmt(rep['peak_mem_mb'][key], '.0f'):>10}"
              f"{fmt(ratio(med, ref), '.2f'):>10}")
    for key, err in rep['errors'].items():
        print(f'ERROR in {key}: {err}')


def print_ops(rep: Dict[str, Any]) -> None:
    """The ``--ops`` report as a table and the targets."""
    print(f"I-Dynamic / D-DW-Conv vs 7x7 depth-wise conv, forward+backward, "
          f"B={rep['batch_size']} C={rep['channels']} H={rep['height']} W={rep['width']} "
          f"G={rep['groups']} K={rep['kernel']}, {rep['dtype']}, device={rep['device']}, "
          f"threads={rep['threads']}, torch {rep['torch']}, mean of {rep['repeats']} "
          f"(after {max(rep['warmup'], 2)} warm-up), median of {rep['rounds']} round(s)")
    print_cases(rep)
    print(f"I-Dynamic impl: {rep['idynamic_impl']}; memory: {rep['mem_method']}")
    print(f"I-Dynamic vs unfold: {fmt(rep['idynamic_vs_unfold_speedup'], '.2f')}x faster "
          f"(target >= 3), memory ratio {fmt(rep['idynamic_vs_unfold_memory_ratio'], '.3f')} "
          f"(target <= 0.125)")
    print(f"I-Dynamic / static DW-Conv time: {fmt(rep['idynamic_vs_dwconv_time_ratio'], '.2f')} "
          f"(target <= 1.5); the whole mixer: "
          f"{fmt(rep['idynamic_mixer_vs_dwconv_time_ratio'], '.2f')}; D-DW-Conv / static "
          f"DW-Conv time: {fmt(rep['ddwconv_vs_dwconv_time_ratio'], '.2f')} (target <= 1.5)")
