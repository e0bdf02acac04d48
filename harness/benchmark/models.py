"""Backbone cases (``--models``): images/s of each backbone alone, inference (``torch.no_grad``)
and training (forward + backward of the mean of the stage outputs, no optimizer step), at one
batch size and input size.

The report is ``{"records": [...], <ratio keys>, ...}``: one
:func:`harness.leaderboard.records.benchmark_record` per (model, mode), and the images/s ratios
of :data:`RATIOS` measured in the same run (``idynamic_t_vs_swin_t_infer``, ...).
"""
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..leaderboard.records import benchmark_record
from .measure import RunConfig, errors_of, fmt, torch_version

MODES = ('inference', 'train')
#: short names of the modes in the ratio keys
MODE_KEYS = {'inference': 'infer', 'train': 'train'}
#: (model, reference, {mode: target}): the ratios a ``--models`` report carries
RATIOS: List[Tuple[str, str, Dict[str, Optional[float]]]] = [
    ('dwconv_t', 'swin_t', {
        'inference': 1.2,
        'train': None
    }),
    ('idynamic_t', 'swin_t', {
        'inference': 1.0,
        'train': 1.0
    }),
]


def model_step(spec: Dict[str, Any]) -> Callable[[], None]:
    """The step of a backbone case.

    Args:
        spec (dict): the run settings, ``model`` (zoo name), ``mode`` (one of :data:`MODES`),
            ``batch`` and ``img_size``.

    Returns:
        Callable: the step.
    """
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


def record_of(spec: Dict[str, Any], result: Dict[str, Any], **fields: Any) -> Dict[str, Any]:
    """The benchmark record of a measured case (``fields``: the record's other fields, e.g.
    ``mode``, ``task``, ``input_hw``)."""
    return benchmark_record(
        model=spec['model'],
        batch_size=spec['batch'],
        device=spec['device'],
        images_per_s=spec['batch'] / (result['time_ms'] / 1e3),
        threads=spec['threads'],
        dtype=spec['dtype'],
        latency_ms=result['time_ms'],
        peak_mem_mb=result.get('peak_mem_mb'),
        **fields)


def ratio_key(model: str, reference: str, mode: str) -> str:
    """``'idynamic_t_vs_swin_t_infer'``."""
    return f'{model}_vs_{reference}_{MODE_KEYS[mode]}'


def model_ratios(records: Sequence[Dict[str, Any]]) -> Dict[str, float]:
    """The images/s ratios of :data:`RATIOS` that ``records`` hold both sides of."""
    ips = {(r['model'], r['mode']): r['images_per_s'] for r in records}
    out = {}
    for model, ref, targets in RATIOS:
        for mode in targets:
            if (model, mode) in ips and (ref, mode) in ips:
                out[ratio_key(model, ref, mode)] = ips[(model, mode)] / ips[(ref, mode)]
    return out


def ratio_lines(report: Dict[str, Any]) -> List[str]:
    """``'inference: idynamic_t / swin_t images/s = 0.70 (target >= 1.0)'`` per ratio."""
    lines = []
    for model, ref, targets in RATIOS:
        for mode, target in targets.items():
            value = report.get(ratio_key(model, ref, mode))
            if value is not None:
                goal = f' (target >= {target})' if target is not None else ''
                lines.append(f'{mode}: {model} / {ref} images/s = {value:.2f}{goal}')
    return lines


def bench_models(run: RunConfig, names: Sequence[str], modes: Sequence[str], batch: int,
                 img_size: int) -> Dict[str, Any]:
    """The ``--models`` report, every (model, mode) measured in one run (interleaved).

    Args:
        run (RunConfig): how the cases run.
        names (Sequence[str]): zoo names.
        modes (Sequence[str]): of :data:`MODES`.
        batch (int): images per step.
        img_size (int): square input size.

    Returns:
        dict: ``records`` (benchmark records), the ratio keys of :func:`model_ratios`,
        ``errors`` ((model, mode) -> error) and the settings.
    """
    specs = {
        f'{name} {mode}':
        run.spec(kind='model', model=name, mode=mode, batch=batch, img_size=img_size)
        for name in names
        for mode in modes
    }
    results = run.measure(specs)
    records = [
        record_of(specs[key], r, mode=specs[key]['mode'], input_hw=[img_size, img_size])
        for key, r in results.items() if 'error' not in r
    ]
    report = dict(records=records, **model_ratios(records), errors=errors_of(results))
    report.update(batch_size=batch, img_size=img_size, **run.describe())
    return report


def print_records(records: Sequence[Dict[str, Any]], title: str) -> None:
    """A table of benchmark records under a title line."""
    print(title)
    print(f"{'model':<14}{'task':<10}{'mode':<11}{'images/s':>10}{'latency ms':>12}"
          f"{'peak MB':>10}")
    for r in records:
        print(f"{r['model']:<14}{r.get('task') or '-':<10}{r['mode']:<11}"
              f"{r['images_per_s']:>10.2f}{r['latency_ms']:>12.1f}"
              f"{fmt(r['peak_mem_mb'], '.0f'):>10}")


def print_models(report: Dict[str, Any]) -> None:
    """The ``--models`` report as a table, then the ratios."""
    print_records(
        report['records'],
        f"backbones at {report['img_size']}x{report['img_size']}, batch {report['batch_size']}, "
        f"{report['dtype']}, device={report['device']}, threads={report['threads']}, torch "
        f"{torch_version()}, mean of {report['repeats']} (after {max(report['warmup'], 2)} "
        f"warm-up), median of {report['rounds']} round(s); train = forward+backward")
    for key, err in report['errors'].items():
        print(f'ERROR in {key}: {err}')
    for line in ratio_lines(report):
        print(line)
