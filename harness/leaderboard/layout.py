"""The board's layout: sections (full-scale, toy) of rows of cells, independent of the format.

A main-table row is one model with the columns of :func:`~.catalog.main_columns`; settings
outside the paper's main table (Mask R-CNN 1x, ImageNet-22k pre-training, ...) make rows of the
"other settings" table, one per (model, setting). Each cell holds our value and, at full
scale, the paper's.
"""
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence

from .aggregate import Entry, EntryKey, Value, best_throughput
from .catalog import (FPS, Column, main_columns, model_order, other_quantities, paper_reference,
                      setting_sort_key, table_settings, tta_names)
from .records import BenchmarkRecord

MINUS = '\u2212'


def fmt(value: float, decimals: int) -> str:
    """``value`` with ``decimals`` digits and a typographic minus."""
    text = f'{value:.{decimals}f}'
    return MINUS + text[1:] if text.startswith('-') else text


def decimals_for(quantity: str, value: float) -> int:
    """Digits shown: FLOPs by magnitude (2 below 10, 1 below 100, else 0), others 1."""
    if quantity == 'gflops':
        return 2 if abs(value) < 10 else 1 if abs(value) < 100 else 0
    return 1


def format_diff(diff: float, decimals: int) -> str:
    """``+0.3``, ``\u22120.2`` or ``\u00b10.0``."""
    text = f'{abs(diff):.{decimals}f}'
    if float(text) == 0:
        return '\u00b1' + text
    return ('+' if diff > 0 else MINUS) + text


def format_throughput(items: Sequence[BenchmarkRecord], task: Optional[str] = None) -> str:
    """``'GPU 1234 (bs 64); CPU 45.6 (bs 1)'``: the fastest inference per device kind, of the
    backbone alone (``task`` None) or of ``task``'s whole model."""
    items = [t for t in items if t.task == task]
    return '; '.join(f'{k} {fmt(t.images_per_s, throughput_decimals(t.images_per_s))} '
                     f'(bs {t.batch_size})' for k, t in best_throughput(items).items())


def throughput_decimals(images_per_s: float) -> int:
    """Digits shown: two or three significant ones below 1 img/s (detectors on a CPU), one
    below 100, none above."""
    return 0 if images_per_s >= 100 else 1 if images_per_s >= 1 else 2 if images_per_s >= .1 else 3


def has_backbone_throughput(throughput: Dict[str, List[BenchmarkRecord]]) -> bool:
    """Whether any model has a measurement of its backbone alone (the throughput column)."""
    return any(t.task is None for items in throughput.values() for t in items)


@dataclass
class Cell:
    """One value of ours beside the paper's.

    Args:
        quantity (str): ``'params_m'``, ``'gflops'``, a metric name or ``'fps'``.
        ours (Value, optional): our value; None: empty cell.
        paper (float, optional): the paper's value.
        label (str): the text of a cell without a value (the FPS cells). Defaults to ``''``.
    """
    quantity: str
    ours: Optional[Value] = None
    paper: Optional[float] = None
    label: str = ''

    @property
    def decimals(self) -> int:
        """Digits shown (see :func:`decimals_for`)."""
        return decimals_for(self.quantity, self.ours.mean if self.ours else 0.0)

    @property
    def diff(self) -> Optional[float]:
        """Ours minus the paper's; None without both."""
        if self.ours is None or self.paper is None:
            return None
        return self.ours.mean - self.paper

    def ours_text(self) -> str:
        """``'81.6'``, ``'81.6 \u00b1 0.3 [n=3]'`` with ``--mean``; the label without a value."""
        if self.ours is None:
            return self.label
        d = self.decimals
        text = fmt(self.ours.mean, d)
        if self.ours.std is not None:
            text += f' \u00b1 {fmt(self.ours.std, d)}'
        if self.ours.averaged:
            text += f' [n={self.ours.n}]'
        return text

    def paper_text(self) -> str:
        """``'81.8, \u22120.2'``; empty without a reference."""
        if self.diff is None:
            return ''
        return f'{self.paper:g}, {format_diff(self.diff, self.decimals)}'

    def text(self) -> str:
        """``81.6 (81.8, \u22120.2)``; empty where we have no value."""
        ours, ref = self.ours_text(), self.paper_text()
        return f'{ours} ({ref})' if ref else ours


@dataclass
class Row:
    """A row: the model's cells (main table), or one setting of it (other settings).

    Args:
        model (str): zoo name.
        cells (list[Cell]): one per column.
        template (str): the setting key; other-settings rows only.
        entries (list[Entry]): the entries of the cells.
        throughput (str): the formatted throughput; main-table rows only.
    """
    model: str
    cells: List[Cell]
    template: str = ''
    entries: List[Entry] = field(default_factory=list)
    throughput: str = ''


@dataclass
class Section:
    """The tables of one scale.

    Args:
        toy (bool): the toy-run section.
        columns (list[Column]): the main table's columns.
        main (list[Row]): the main table.
        other (list[Row]): the other-settings table.
        other_quantities (list[str]): its columns.
    """
    toy: bool
    columns: List[Column]
    main: List[Row]
    other: List[Row]
    other_quantities: List[str]

    @property
    def title(self) -> str:
        return 'Toy runs (not comparable to the paper)' if self.toy else 'Full-scale results'


@dataclass
class Leaderboard:
    """Everything the outputs show.

    Args:
        mode (str): ``'latest'``, ``'best'`` or ``'mean'``.
        sections (list[Section]): full-scale first, then toy.
        models (list[str]): every model shown, in table order.
        properties (dict): model -> property record (None: unknown).
        throughput (dict): model -> its inference measurements.
        entries (dict): ``{(toy, model, setting): Entry}``.
        warnings (list[str]): skipped inputs.
        notes (list[str]): remarks shown above the tables.
    """
    mode: str
    sections: List[Section]
    models: List[str]
    properties: Dict[str, Optional[Dict[str, bool]]]
    throughput: Dict[str, List[BenchmarkRecord]]
    entries: Dict[EntryKey, Entry]
    warnings: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)


def build_section(entries: Dict[EntryKey, Entry],
                  toy: bool,
                  extra_models: Iterable[str] = (),
                  throughput: Optional[Dict[str, List[BenchmarkRecord]]] = None) -> Section:
    """Lay out the entries of one scale.

    Args:
        entries (dict): ``{(toy, model, setting): Entry}`` of both scales.
        toy (bool): which scale.
        extra_models (Iterable[str]): models that get a main-table row without an entry (e.g.
            benchmarked only). Defaults to none.
        throughput (dict, optional): model -> inference measurements; those of whole task
            models add an FPS column to their task's group.

    Returns:
        Section: toy sections carry no paper references.
    """
    mine = {k[1:]: e for k, e in entries.items() if k[0] == toy}
    models = model_order({m for m, _ in mine} | set(extra_models))
    table = set(table_settings())
    tta = {n for (_, s), e in mine.items() if s in table for n in tta_names() if n in e.metrics}
    throughput = throughput or {}
    fps = {t.task for m in models for t in throughput.get(m, []) if t.task is not None}
    columns = main_columns(tta, fps)

    def cell(model: str, column: Column) -> Cell:
        if column.quantity == FPS:
            return Cell(FPS, label=format_throughput(throughput.get(model, []), column.task.name))
        entry, quantity = mine.get((model, column.setting)), column.quantity
        ours = entry.value(quantity) if entry else None
        paper = None if toy else paper_reference(model, column.setting, quantity)
        return Cell(quantity, ours, paper)

    main = []
    for model in models:
        cells = [cell(model, c) for c in columns]
        used = [mine[(model, s)] for s in table_settings() if (model, s) in mine]
        tp = format_throughput(throughput.get(model, []))
        main.append(Row(model, cells, entries=used, throughput=tp))
    others = sorted((k for k in mine if k[1] not in table),
                    key=lambda k: (models.index(k[0]), setting_sort_key(k[1])))
    quantities = [
        q for q in other_quantities() if any(mine[k].value(q) is not None for k in others)
    ]
    other = [
        Row(model, [
            Cell(q, mine[(model, setting)].value(q),
                 None if toy else paper_reference(model, setting, q)) for q in quantities
        ],
            template=setting,
            entries=[mine[(model, setting)]]) for model, setting in others
    ]
    return Section(toy, columns, main, other, quantities)
