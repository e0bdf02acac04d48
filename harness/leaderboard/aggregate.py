"""Choosing among repeated runs: one :class:`Entry` per (scale, model, setting).

``latest`` takes the newest run, ``best`` the best by the task's main metric, ``mean`` the mean
and standard deviation over seeds (the latest run of each seed). ``--tta`` test runs of the same
(scale, model, setting) are chosen the same way and add their metrics (e.g. ``miou_ms``) to the
entry.
"""
import math
import statistics
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from .catalog import COMPLEXITY, main_metric, tta_names
from .records import BenchmarkRecord, Record

MODES = ('latest', 'best', 'mean')
#: ``(toy, model, setting)``
EntryKey = Tuple[bool, str, str]


@dataclass
class Value:
    """A shown value.

    Args:
        mean (float): the value (the mean with ``--mean``).
        std (float, optional): standard deviation, with ``--mean`` over two or more seeds.
        n (int): number of seeds averaged. Defaults to 1.
        averaged (bool): a ``--mean`` value, shown with its count even when ``n == 1``.
    """
    mean: float
    std: Optional[float] = None
    n: int = 1
    averaged: bool = False


@dataclass
class Entry:
    """The result of one (model, setting) at one scale, from the runs chosen by the mode.

    Args:
        model (str): zoo name.
        task (str): task name.
        template (str): setting key.
        toy (bool): toy runs.
        metrics (dict[str, Value]): metric name -> value.
        params_m (float, optional): params (M) in the full-scale setting.
        gflops (float, optional): FLOPs (G) in the full-scale setting.
        used (list[Record]): the records the values come from.
        found (int): how many training records there were.
        config (str, optional): the chosen run's config.
        checkpoint (str, optional): the chosen run's checkpoint.
        tta_used (list[Record]): the ``--tta`` test records the tta metrics come from.
    """
    model: str
    task: str
    template: str
    toy: bool
    metrics: Dict[str, Value]
    params_m: Optional[float]
    gflops: Optional[float]
    used: List[Record]
    found: int
    config: Optional[str] = None
    checkpoint: Optional[str] = None
    tta_used: List[Record] = field(default_factory=list)

    def value(self, quantity: str) -> Optional[Value]:
        """The value of a metric, ``'params_m'`` or ``'gflops'``; None if there is none."""
        if quantity in COMPLEXITY:
            v = getattr(self, quantity)
            return None if v is None else Value(v)
        return self.metrics.get(quantity)

    def sources(self, quantity: str) -> List[Record]:
        """The records behind one quantity's value."""
        return self.tta_used if quantity in tta_names() else self.used


def _rank(r: Record) -> tuple:
    names = [main_metric(r.task)] + tta_names()
    main = next((r.metrics[n] for n in names if n in r.metrics), -math.inf)
    return (main, ) + r.recency


def aggregate(records: Sequence[Record], mode: str = 'latest') -> Entry:
    """Combine the runs of one (model, setting, scale).

    Args:
        records (Sequence[Record]): at least one record.
        mode (str): ``'latest'`` (by date), ``'best'`` (by the task's main metric) or
            ``'mean'`` (over seeds, the latest run of each). Defaults to ``'latest'``.

    Returns:
        Entry: the chosen values; params/FLOPs from the chosen run, else from any used run.
    """
    if mode not in MODES:
        raise ValueError(f'mode must be one of {MODES}')
    latest = max(records, key=lambda r: r.recency)
    if mode == 'mean':
        per_seed: Dict[Optional[int], Record] = {}
        for r in sorted(records, key=lambda r: r.recency):
            per_seed[r.seed] = r
        used = sorted(per_seed.values(), key=lambda r: r.recency)
        metrics = {}
        for key in sorted({k for r in used for k in r.metrics}):
            values = [r.metrics[key] for r in used if key in r.metrics]
            metrics[key] = Value(
                statistics.fmean(values),
                statistics.stdev(values) if len(values) > 1 else None,
                len(values),
                averaged=True)
        chosen = latest
    else:
        chosen = latest if mode == 'latest' else max(records, key=_rank)
        used = [chosen]
        metrics = {k: Value(v) for k, v in chosen.metrics.items()}
    params = next((r.params_m for r in [chosen, *used] if r.params_m is not None), None)
    gflops = next((r.gflops for r in [chosen, *used] if r.gflops is not None), None)
    return Entry(
        model=chosen.model,
        task=chosen.task,
        template=chosen.template,
        toy=chosen.toy,
        metrics=metrics,
        params_m=params,
        gflops=gflops,
        used=used,
        found=len(records),
        config=chosen.config,
        checkpoint=chosen.checkpoint)


def _merge_tta(entry: Optional[Entry], tta: Entry) -> Entry:
    """``entry`` with the ``--tta`` metrics of ``tta``; ``tta`` alone (no training record)."""
    tta.metrics = {k: v for k, v in tta.metrics.items() if k in tta_names()}
    tta.tta_used, tta.used, tta.found = tta.used, [], 0
    if entry is None:
        return tta
    entry.metrics.update(tta.metrics)
    entry.tta_used = tta.tta_used
    return entry


def aggregate_all(records: Sequence[Record], mode: str) -> Dict[EntryKey, Entry]:
    """One :class:`Entry` per (toy, model, setting); ``--tta`` test records are aggregated
    apart and merged into the entry of the same key.

    Args:
        records (Sequence[Record]): training and ``--tta`` test records.
        mode (str): see :func:`aggregate`.

    Returns:
        dict: ``{(toy, model, setting): Entry}``.
    """
    groups: Dict[Tuple[bool, EntryKey], List[Record]] = {}
    for r in records:
        groups.setdefault((r.tta, (r.toy, r.model, r.template)), []).append(r)
    entries = {key: aggregate(group, mode) for (tta, key), group in groups.items() if not tta}
    for (tta, key), group in groups.items():
        if tta:
            entries[key] = _merge_tta(entries.get(key), aggregate(group, mode))
    return entries


def best_throughput(items: Sequence[BenchmarkRecord]) -> Dict[str, BenchmarkRecord]:
    """Per device kind (GPU first), the fastest inference measurement.

    Args:
        items (Sequence[BenchmarkRecord]): one model's measurements.

    Returns:
        dict: ``{'GPU': record, 'CPU': record}`` for the kinds measured.
    """
    best: Dict[str, BenchmarkRecord] = {}
    for t in items:
        if t.kind not in best or t.images_per_s > best[t.kind].images_per_s:
            best[t.kind] = t
    return {k: best[k] for k in ('GPU', 'CPU') if k in best}
