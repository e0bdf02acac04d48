"""Dense-task resolution (``--dense``): the stage-1 operator of a T model at the input sizes of
the dense tasks' table settings (COCO 1280x800 -> a 200x320 map, ADE20K 512x2048 -> 128x512;
stride 4, C = 96, G = 32, batch 1), forward + backward, I-Dynamic against a static 7x7
depth-wise conv.

``idynamic_vs_dwconv_dense_time_ratio`` is the largest of the per-size ratios (the target is an
upper bound, so the worst size decides); ``idynamic_mixer_vs_dwconv_dense_time_ratio`` is the
same for the whole mixer (kernel generator included).
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..tasks import TASKS
from .measure import RunConfig, errors_of, fmt, mem_method_of, ratio
from .ops import OpShape, measure_ops, print_cases

#: the stride of stage 1 (the patch embedding)
STAGE1_STRIDE = 4
DENSE_CASES = [
    dict(case='idynamic', impl='auto'),
    dict(case='idynamic_mixer', impl='auto'),
    dict(case='dwconv'),
]


def dense_sizes() -> List[Tuple[int, int]]:
    """(H, W) inputs of the dense tasks' table settings (every task but classification)."""
    return [t.input_hw for t in TASKS.values() if t.flop_protocol != 'classifier']


def _worst(values: Sequence[Optional[float]]) -> Optional[float]:
    known = [v for v in values if v is not None]
    return max(known) if len(known) == len(values) and known else None


def bench_dense(run: RunConfig,
                shape: OpShape,
                sizes: Optional[Sequence[Tuple[int, int]]] = None) -> Dict[str, Any]:
    """The ``--dense`` report, measured in one run.

    Args:
        run (RunConfig): how the cases run.
        shape (OpShape): batch, channels, groups and kernel (height and width are ignored).
        sizes (Sequence[tuple], optional): (H, W) input sizes; the map is 1/4 of each. Defaults
            to :func:`dense_sizes`.

    Returns:
        dict: ``idynamic_vs_dwconv_dense_time_ratio`` and
        ``idynamic_mixer_vs_dwconv_dense_time_ratio`` (largest over the sizes), ``sizes`` (per
        size: input and map size, ``time_ms``, ``peak_mem_mb``, the two ratios), ``errors``,
        the shape and the run settings.
    """
    per_size, errors = [], {}
    for h, w in sizes or dense_sizes():
        map_shape = OpShape(shape.batch, shape.channels, h // STAGE1_STRIDE, w // STAGE1_STRIDE,
                            shape.groups, shape.kernel)
        results = measure_ops(run, map_shape, DENSE_CASES)
        med = {k: r.get('time_ms') for k, r in results.items()}
        per_size.append(
            dict(
                input_hw=[h, w],
                map_hw=[map_shape.height, map_shape.width],
                time_ms=med,
                peak_mem_mb={
                    k: r.get('peak_mem_mb')
                    for k, r in results.items()
                },
                idynamic_vs_dwconv_time_ratio=ratio(med['idynamic'], med['dwconv']),
                idynamic_mixer_vs_dwconv_time_ratio=ratio(med['idynamic_mixer'], med['dwconv']),
                idynamic_impl=results['idynamic'].get('impl'),
                mem_method=mem_method_of(results)))
        errors.update({f'{k}@{h}x{w}': e for k, e in errors_of(results).items()})
    report = dict(
        idynamic_vs_dwconv_dense_time_ratio=_worst(
            [s['idynamic_vs_dwconv_time_ratio'] for s in per_size]),
        idynamic_mixer_vs_dwconv_dense_time_ratio=_worst(
            [s['idynamic_mixer_vs_dwconv_time_ratio'] for s in per_size]),
        ratio_over_sizes='max',
        sizes=per_size,
        errors=errors)
    report.update({
        k: v
        for k, v in shape.describe().items() if k not in ('height', 'width')
    }, **run.describe())
    report['pass'] = 'forward+backward'
    return report


def print_dense(rep: Dict[str, Any]) -> None:
    """The ``--dense`` report as one table per size and the target."""
    for s in rep['sizes']:
        (h, w), (mh, mw) = s['input_hw'], s['map_hw']
        print(f"stage 1 at {w}x{h} input: map {mh}x{mw}, B={rep['batch_size']} "
              f"C={rep['channels']} G={rep['groups']} K={rep['kernel']}, {rep['dtype']}, "
              f"device={rep['device']}, threads={rep['threads']}, forward+backward")
        print_cases(dict(s, errors={}))
        print(f"I-Dynamic impl: {s['idynamic_impl']}; memory: {s['mem_method']}")
    for key, err in rep['errors'].items():
        print(f'ERROR in {key}: {err}')
    print(f"I-Dynamic / static DW-Conv time, largest over the sizes: "
          f"{fmt(rep['idynamic_vs_dwconv_dense_time_ratio'], '.2f')} (target <= 2.0); the "
          f"whole mixer: {fmt(rep['idynamic_mixer_vs_dwconv_dense_time_ratio'], '.2f')}")
