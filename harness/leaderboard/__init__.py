"""The leaderboard: every result record under the work-dirs tree, laid out as the paper's table.

``tools/leaderboard.py`` is the command line. Rows follow the zoo (the paper's models in table
order, other models after), one column group per task of :data:`harness.tasks.TASKS`; each cell
shows ours, the paper's reference and the difference. Settings outside the paper's main table
(Mask R-CNN 1x, ImageNet-22k pre-training, ...) go into a second table; toy runs never share a
table with full-scale ones. ``--tta`` test runs add their metrics (e.g. multi-scale mIoU) to the
entry of their (model, setting).

The modules: :mod:`.records` (reading result and benchmark records), :mod:`.aggregate`
(choosing among runs), :mod:`.catalog` (tasks and models), :mod:`.layout` (sections, rows,
cells), :mod:`.render` (markdown, CSV), :mod:`.html` and :mod:`.plot` (the page and its
accuracy-vs-FLOPs plot), :mod:`.metafiles` (OpenMMLab model-zoo files).
"""
from pathlib import Path
from typing import Dict, List

from backbones.engine.fileio import atomic_write
from .aggregate import MODES, Entry, Value, aggregate, aggregate_all
from .catalog import main_columns, model_order, model_properties
from .html import render_html
from .layout import Cell, Leaderboard, Row, Section, build_section
from .metafiles import build_metafiles, load_complexity, write_metafiles
from .plot import plot_figure, plot_png
from .records import (BENCHMARK_SCHEMA_VERSION, BenchmarkRecord, Record, benchmark_record,
                      load_benchmarks, load_records)
from .render import render_csv, render_markdown

SCALES = ('auto', 'full', 'toy')

__all__ = [
    'BENCHMARK_SCHEMA_VERSION', 'MODES', 'SCALES', 'BenchmarkRecord', 'Cell', 'Entry',
    'Leaderboard', 'Record', 'Row', 'Section', 'Value', 'aggregate', 'aggregate_all',
    'benchmark_record', 'build_leaderboard', 'build_metafiles', 'build_section', 'load_benchmarks',
    'load_complexity', 'load_records', 'main_columns', 'plot_figure', 'plot_png', 'render_csv',
    'render_html', 'render_markdown', 'write_metafiles', 'write_outputs'
]


def _scales(scale: str, n_full: int, n_toy: int, notes: List[str]) -> List[bool]:
    """Which sections to show (False: full scale, True: toy); notes what is left out."""
    if scale == 'full':
        if n_toy:
            notes.append(f'{n_toy} toy record(s) not shown (use --toy).')
        return [False]
    if scale == 'toy':
        if n_full:
            notes.append(f'{n_full} full-scale record(s) not shown (use --full).')
        return [True]
    return ([False] if n_full or not n_toy else []) + ([True] if n_toy else [])


def build_leaderboard(work_dirs: Path, mode: str = 'latest', scale: str = 'auto') -> Leaderboard:
    """Read ``work_dirs`` and lay the results out.

    Args:
        work_dirs (Path): searched recursively for ``result.json`` and ``--tta``
            ``test_result.json``; benchmark lists in ``<work_dirs>/benchmark/*.json``.
        mode (str): one of :data:`MODES`: ``'latest'`` run, ``'best'`` run by the main
            metric, ``'mean'`` over seeds. Defaults to ``'latest'``.
        scale (str): one of :data:`SCALES`: ``'auto'`` (full-scale tables, toy ones in their
            own section), ``'full'`` or ``'toy'`` (only those). Defaults to ``'auto'``.

    Returns:
        Leaderboard: broken inputs are skipped and listed in ``warnings``.
    """
    if scale not in SCALES:
        raise ValueError(f'scale must be one of {SCALES}')
    warnings: List[str] = []
    records = load_records(work_dirs, warnings)
    throughput: Dict[str, list] = {}
    for t in load_benchmarks(work_dirs, warnings):
        throughput.setdefault(t.model, []).append(t)
    entries = aggregate_all(records, mode)
    n_full = sum(not r.toy for r in records)
    notes: List[str] = []
    scales = _scales(scale, n_full, len(records) - n_full, notes)
    if not records:
        notes.append(f'No result records (result.json) found under {work_dirs}.')
    elif not any(r.toy in scales for r in records):
        notes.append(f'No {"toy" if scales == [True] else "full-scale"} result records.')
    # benchmark-only models get a row in the first table, where the throughput column is
    sections = [
        build_section(entries, toy,
                      set(throughput) if i == 0 else (), throughput) for i, toy in enumerate(scales)
    ]
    models = model_order({r.model for r in records if r.toy in scales} | set(throughput))
    return Leaderboard(
        mode=mode,
        sections=sections,
        models=models,
        properties={m: model_properties(m)
                    for m in models},
        throughput=throughput,
        entries=entries,
        warnings=warnings,
        notes=notes)


def write_outputs(board: Leaderboard, out_dir: Path) -> Dict[str, Path]:
    """Write ``leaderboard.{md,csv,html,png}`` into ``out_dir``, each atomically.

    Args:
        board (Leaderboard): the board.
        out_dir (Path): created if missing.

    Returns:
        dict[str, Path]: extension -> file written.
    """
    png = plot_png(board)
    files = {
        'md': render_markdown(board),
        'csv': render_csv(board),
        'html': render_html(board, png),
        'png': png
    }
    return {
        ext: atomic_write(Path(out_dir) / f'leaderboard.{ext}', data)
        for ext, data in files.items()
    }
