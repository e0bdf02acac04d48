"""Speed and memory measurements behind ``tools/benchmark.py``.

:mod:`.measure` runs every case in a process of its own and times it with
``torch.utils.benchmark.Timer`` (peak memory: ``VmHWM`` with mmap'ed blocks on the CPU,
``cuda.max_memory_allocated`` on CUDA); the cases are :mod:`.ops` (the dynamic operators at
stage-1 shapes), :mod:`.dense` (the stage-1 operator at dense-task resolution), :mod:`.models`
(backbones) and :mod:`.tasks` (whole task models). Each returns a JSON-ready report; the
``--models`` and ``--tasks`` reports hold :func:`harness.leaderboard.records.benchmark_record`
lists under ``records``, which the leaderboard reads from ``work_dirs/benchmark/**/*.json``.
"""
from .dense import bench_dense, dense_sizes, print_dense
from .measure import DTYPES, RunConfig, measure_all, run_case, spawn
from .models import MODES, RATIOS, bench_models, model_ratios, print_models, print_records
from .ops import OpShape, bench_ops, print_ops
from .tasks import bench_tasks

__all__ = [
    'DTYPES', 'MODES', 'RATIOS', 'OpShape', 'RunConfig', 'bench_dense', 'bench_models', 'bench_ops',
    'bench_tasks', 'dense_sizes', 'measure_all', 'model_ratios', 'print_dense', 'print_models',
    'print_ops', 'print_records', 'run_case', 'spawn'
]
