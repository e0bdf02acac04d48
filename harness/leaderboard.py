"""The leaderboard: every ``result.json`` under the work-dirs tree, laid out as the paper's table.

``tools/leaderboard.py`` is the command line. Rows follow the paper (one per backbone, paper
order, unknown models after), column groups ImageNet / COCO / ADE20K; each cell shows ours, the
paper's reference and the difference. Settings that are not in the paper's main table (Mask R-CNN
1x, ImageNet-22k pre-training, ...) go into a second table; toy runs never share a table with
full-scale ones.

This module needs only the standard library (matplotlib for the plot, PyYAML for the metafiles):
``backbones.paper`` is plain data, and the zoo (for the property table and display names) is used
when the package is importable, so the leaderboard also runs where mmcv is not installed.
"""
import argparse
import base64
import csv
import html
import importlib.util
import io
import json
import math
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

TASKS = ('imagenet', 'coco', 'ade20k')
TASK_TITLES = {'imagenet': 'ImageNet', 'coco': 'COCO', 'ade20k': 'ADE20K'}
#: the config behind each cell of the paper's table (same as backbones.configgen.TABLE_TEMPLATE,
#: which is not imported here because it needs the whole package)
TABLE_TEMPLATE = {'imagenet': 'imagenet', 'coco': 'coco_cascade', 'ade20k': 'ade20k'}
#: the metric that --best ranks by
MAIN_METRIC = {'imagenet': 'top1', 'coco': 'ap_box', 'ade20k': 'miou'}
METRIC_TITLES = {
    'top1': 'Top-1',
    'top5': 'Top-5',
    'real_top1': 'ReaL',
    'ap_box': 'AP box',
    'ap_mask': 'AP mask',
    'miou': 'mIoU',
    'miou_ms': 'mIoU (ms)'
}
#: our metric name -> the paper's column (backbones.paper.PAPER / PAPER_IN22K)
PAPER_METRIC = {
    'top1': 'top1',
    'real_top1': 'real',
    'ap_box': 'ap_box',
    'ap_mask': 'ap_mask',
    'miou': 'miou'
}
#: the main table: (task, quantity) per column; quantity is 'params_m', 'gflops' or a metric
MAIN_COLUMNS: List[Tuple[str, str]] = [
    ('imagenet', 'params_m'),
    ('imagenet', 'gflops'),
    ('imagenet', 'top1'),
    ('imagenet', 'real_top1'),
    ('coco', 'params_m'),
    ('coco', 'gflops'),
    ('coco', 'ap_box'),
    ('coco', 'ap_mask'),
    ('ade20k', 'params_m'),
    ('ade20k', 'gflops'),
    ('ade20k', 'miou'),
]
OTHER_QUANTITIES = ('params_m', 'gflops', 'top1', 'top5', 'real_top1', 'ap_box', 'ap_mask', 'miou',
                    'miou_ms')
QUANTITY_TITLES = dict(METRIC_TITLES, params_m='Params (M)', gflops='FLOPs (G)')
#: the settings we know, in the order of the "other settings" table, with their task
TEMPLATE_TASK = {
    'imagenet': 'imagenet',
    'coco_maskrcnn': 'coco',
    'coco_cascade': 'coco',
    'ade20k': 'ade20k',
    'imagenet_in22k_ft': 'imagenet',
    'ade20k_in22k': 'ade20k'
}
TEMPLATE_ORDER = tuple(TEMPLATE_TASK)
PROPERTY_TITLES = {
    'sparse_connectivity': 'Sparse connectivity',
    'weight_sharing_across_channels': 'Weight sharing across channels',
    'weight_sharing_across_positions': 'Weight sharing across positions',
    'dynamic_weights': 'Dynamic weights',
}
MODES = ('latest', 'best', 'mean')
PAPER_TITLE = 'On the Connection between Local Attention and Dynamic Depth-wise Convolution'
PAPER_URL = 'https://arxiv.org/abs/2106.04263'
CODE_URL = 'https://github.com/Atten4Vis/DemystifyLocalViT'
FAMILIES = {
    'swin': ('Swin', ['Local Attention', 'Shifted Windows']),
    'dwconv': ('DW-Conv', ['Depth-wise Convolution']),
    'ddwconv': ('D-DW-Conv', ['Dynamic Depth-wise Convolution']),
    'idynamic': ('I-Dynamic', ['Inhomogeneous Dynamic Depth-wise Convolution']),
}
MINUS = '\u2212'

# ---------------------------------------------------------------------------------------------
# the rest of the package, loaded lazily


def _load_sibling(name: str) -> ModuleType:
    """Load ``backbones/<name>.py`` by path, without running the package ``__init__``."""
    spec = importlib.util.spec_from_file_location(f'_leaderboard_{name}',
                                                  Path(__file__).with_name(f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_PAPER: Optional[ModuleType] = None


def _paper() -> ModuleType:
    global _PAPER
    if _PAPER is None:
        if __package__:
            from . import paper
            _PAPER = paper
        else:  # loaded standalone (tools/leaderboard.py without mmcv): paper.py is plain data
            _PAPER = _load_sibling('paper')
    return _PAPER


def _zoo() -> Optional[ModuleType]:
    """``backbones.zoo`` if the package is importable (it needs torch, mmengine and mmcv)."""
    if not __package__:
        return None
    try:
        from . import zoo
    except ImportError:
        return None
    return zoo


def display_name(model: str) -> str:
    zoo = _zoo()
    return zoo.display_name(model) if zoo is not None else model


def model_properties(model: str) -> Optional[Dict[str, bool]]:
    """The backbone's own property record, or None (unknown model, or no zoo available)."""
    zoo = _zoo()
    if zoo is None:
        return None
    try:
        return zoo.get_properties(model).as_dict()
    except (KeyError, AttributeError):
        return None


def paper_reference(model: str, template: str, task: str, quantity: str) -> Optional[float]:
    """The paper's value of ``quantity`` for ``model`` in this setting, if it reports one."""
    paper = _paper()
    if template == TABLE_TEMPLATE.get(task):
        row = paper.PAPER.get(model)
        if row is None:
            return None
        params_key, flops_key = paper.TASK_KEYS[task]
        if quantity in ('params_m', 'gflops'):
            return row[params_key if quantity == 'params_m' else flops_key]
        return row.get(PAPER_METRIC.get(quantity, ''))
    if 'in22k' in template and quantity in PAPER_METRIC:
        return paper.PAPER_IN22K.get(model, {}).get(PAPER_METRIC[quantity])
    return None


def model_order(models: Iterable[str]) -> List[str]:
    """Paper order first, then unknown models alphabetically."""
    known = list(_paper().PAPER)
    models = set(models)
    return [m for m in known if m in models] + sorted(models - set(known))


def family_of(model: str) -> str:
    """``swin_t`` -> ``swin``; an unknown model's prefix before its size suffix."""
    return model.rsplit('_', 1)[0] if '_' in model else model


def _warn(message: str) -> None:
    print(f'warning: {message}', file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# reading


@dataclass
class Record:
    """One validated ``result.json``."""
    path: Path
    model: str
    task: str
    template: str
    metrics: Dict[str, float]
    toy: bool
    params_m: Optional[float] = None
    gflops: Optional[float] = None
    date: Optional[datetime] = None
    seed: Optional[int] = None
    config: Optional[str] = None
    checkpoint: Optional[str] = None


class RecordError(ValueError):
    pass


def _number(value: Any, what: str, optional: bool = True) -> Optional[float]:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RecordError(f'{what} is {value!r}, expected a finite number')
    return float(value)


def _string(data: dict, key: str, optional: bool = False) -> Optional[str]:
    value = data.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise RecordError(f'"{key}" is {value!r}, expected a non-empty string')
    return value


def _parse_date(text: Optional[str]) -> Optional[datetime]:
    if text is None:
        return None
    try:
        date = datetime.fromisoformat(text)
    except ValueError as exc:
        raise RecordError(f'"date" is {text!r}, expected ISO 8601') from exc
    return date if date.tzinfo else date.replace(tzinfo=timezone.utc)


def parse_record(data: Any, path: Path) -> Record:
    """Validate one result record; raises RecordError saying what is wrong."""
    if not isinstance(data, dict):
        raise RecordError(f'expected a JSON object, got {type(data).__name__}')
    missing = [k for k in ('model', 'task', 'template', 'metrics', 'toy') if k not in data]
    if missing:
        raise RecordError(f'missing keys: {", ".join(missing)}')
    task = _string(data, 'task')
    if task not in TASKS:
        raise RecordError(f'unknown task {task!r}')
    template = _string(data, 'template')
    if TEMPLATE_TASK.get(template, task) != task:
        raise RecordError(f'template {template!r} does not belong to task {task!r}')
    if not isinstance(data['metrics'], dict):
        raise RecordError('"metrics" is not an object')
    metrics = {str(k): _number(v, f'metric {k!r}') for k, v in data['metrics'].items()}
    if not isinstance(data['toy'], bool):
        raise RecordError(f'"toy" is {data["toy"]!r}, expected true/false')
    seed = data.get('seed')
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise RecordError(f'"seed" is {seed!r}, expected an integer')
    return Record(
        path=path,
        model=_string(data, 'model'),
        task=task,
        template=template,
        metrics={
            k: v
            for k, v in metrics.items() if v is not None
        },
        toy=data['toy'],
        params_m=_number(data.get('params_m'), '"params_m"'),
        gflops=_number(data.get('gflops'), '"gflops"'),
        date=_parse_date(_string(data, 'date', optional=True)),
        seed=seed,
        config=_string(data, 'config', optional=True),
        checkpoint=_string(data, 'checkpoint', optional=True))


def _walk(root: Path, pattern) -> List[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):  # does not follow symlinked folders
        dirnames.sort()
        found.extend(Path(dirpath) / f for f in sorted(filenames) if pattern(f))
    return found


def _read_json(path: Path, warnings: List[str]) -> Any:
    try:
        return json.loads(path.read_text(encoding='utf-8'))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        _skip(path, f'cannot read JSON ({exc})', warnings)
        return None


def _skip(path: Path, reason: str, warnings: List[str]) -> None:
    message = f'skipped {path}: {reason}'
    _warn(message)
    warnings.append(message)


def load_records(work_dirs: Path, warnings: List[str]) -> List[Record]:
    """Every valid ``result.json`` under ``work_dirs``; broken ones are reported and skipped."""
    records = []
    for path in _walk(work_dirs, lambda f: f == 'result.json'):
        data = _read_json(path, warnings)
        if data is None:
            continue
        try:
            records.append(parse_record(data, path))
        except RecordError as exc:
            _skip(path, str(exc), warnings)
    return records


@dataclass
class Throughput:
    model: str
    kind: str  # 'GPU' or 'CPU'
    batch_size: int
    images_per_s: float
    device: str
    dtype: str = ''
    threads: Optional[int] = None


def load_benchmarks(work_dirs: Path, warnings: List[str]) -> List[Throughput]:
    """Inference throughput records from ``<work_dirs>/benchmark/**/*.json`` (lists written by
    ``tools/benchmark.py --json``); other JSON files there are ignored."""
    root = work_dirs / 'benchmark'
    if not root.is_dir():
        return []
    paths = sorted(_walk(root, lambda f: f.endswith('.json')), key=lambda p: p.stat().st_mtime)
    found: Dict[tuple, Throughput] = {}  # later files override the same measurement
    for path in paths:
        data = _read_json(path, warnings)
        if not isinstance(data, list):
            continue
        for i, item in enumerate(data):
            try:
                if not isinstance(item, dict):
                    raise RecordError('not an object')
                if item.get('mode') != 'inference':
                    continue
                batch = item.get('batch_size')
                if isinstance(batch, bool) or not isinstance(batch, int):
                    raise RecordError(f'"batch_size" is {batch!r}')
                device = _string(item, 'device')
                threads = item.get('threads')
                t = Throughput(
                    model=_string(item, 'model'),
                    kind='CPU' if device.lower().startswith('cpu') else 'GPU',
                    batch_size=batch,
                    device=device,
                    images_per_s=_number(
                        item.get('images_per_s'), '"images_per_s"', optional=False),
                    dtype=str(item.get('dtype') or ''),
                    threads=threads if isinstance(threads, int) else None)
            except RecordError as exc:
                _skip(path, f'benchmark entry {i}: {exc}', warnings)
                continue
            found[(t.model, t.kind, t.device, t.batch_size, t.dtype, t.threads)] = t
    return list(found.values())


def best_throughput(items: Sequence[Throughput]) -> Dict[str, Throughput]:
    """Per device kind (GPU first), the fastest inference measurement."""
    best: Dict[str, Throughput] = {}
    for t in items:
        if t.kind not in best or t.images_per_s > best[t.kind].images_per_s:
            best[t.kind] = t
    return {k: best[k] for k in ('GPU', 'CPU') if k in best}


def format_throughput(items: Sequence[Throughput]) -> str:
    return '; '.join(f'{k} {_fmt(t.images_per_s, 0 if t.images_per_s >= 100 else 1)} '
                     f'(bs {t.batch_size})' for k, t in best_throughput(items).items())


# ---------------------------------------------------------------------------------------------
# choosing among repeated runs


@dataclass
class Value:
    mean: float
    std: Optional[float] = None  # only with --mean over >= 2 seeds
    n: int = 1  # number of seeds averaged
    averaged: bool = False  # a --mean value: shown with its count even when n == 1


@dataclass
class Entry:
    """The result of one (model, setting) at one scale, from the runs chosen by the mode."""
    model: str
    task: str
    template: str
    toy: bool
    metrics: Dict[str, Value]
    params_m: Optional[float]
    gflops: Optional[float]
    used: List[Record]  # the records the values come from
    found: int  # how many records there were
    config: Optional[str] = None
    checkpoint: Optional[str] = None

    def value(self, quantity: str) -> Optional[Value]:
        if quantity in ('params_m', 'gflops'):
            v = getattr(self, quantity)
            return None if v is None else Value(v)
        return self.metrics.get(quantity)


_OLDEST = datetime.min.replace(tzinfo=timezone.utc)


def _recency(r: Record) -> tuple:
    return (r.date or _OLDEST, str(r.path))


def _rank(r: Record) -> tuple:
    main = r.metrics.get(MAIN_METRIC[r.task], -math.inf)
    return (main, ) + _recency(r)


def aggregate(records: Sequence[Record], mode: str = 'latest') -> Entry:
    """Combine the runs of one (model, template, scale): the latest, the best by the task's main
    metric, or the mean over seeds (the latest run of each seed)."""
    if mode not in MODES:
        raise ValueError(f'mode must be one of {MODES}')
    latest = max(records, key=_recency)
    if mode == 'mean':
        per_seed: Dict[Optional[int], Record] = {}
        for r in sorted(records, key=_recency):
            per_seed[r.seed] = r
        used = sorted(per_seed.values(), key=_recency)
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
    # params/FLOPs do not depend on the run: take them from the chosen run, else any run
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


def aggregate_all(records: Sequence[Record], mode: str) -> Dict[tuple, Entry]:
    """``{(toy, model, template): Entry}``"""
    groups: Dict[tuple, List[Record]] = {}
    for r in records:
        groups.setdefault((r.toy, r.model, r.template), []).append(r)
    return {key: aggregate(group, mode) for key, group in groups.items()}


# ---------------------------------------------------------------------------------------------
# the tables


def _fmt(value: float, decimals: int) -> str:
    text = f'{value:.{decimals}f}'
    return MINUS + text[1:] if text.startswith('-') else text


def decimals_for(quantity: str, value: float) -> int:
    if quantity == 'gflops':
        return 2 if abs(value) < 10 else 1 if abs(value) < 100 else 0
    return 1


def format_diff(diff: float, decimals: int) -> str:
    text = f'{abs(diff):.{decimals}f}'
    if float(text) == 0:
        return '\u00b1' + text
    return ('+' if diff > 0 else MINUS) + text


@dataclass
class Cell:
    quantity: str
    ours: Optional[Value] = None
    paper: Optional[float] = None

    @property
    def decimals(self) -> int:
        return decimals_for(self.quantity, self.ours.mean if self.ours else 0.0)

    @property
    def diff(self) -> Optional[float]:
        if self.ours is None or self.paper is None:
            return None
        return self.ours.mean - self.paper

    def ours_text(self) -> str:
        if self.ours is None:
            return ''
        d = self.decimals
        text = _fmt(self.ours.mean, d)
        if self.ours.std is not None:
            text += f' \u00b1 {_fmt(self.ours.std, d)}'
        if self.ours.averaged:
            text += f' [n={self.ours.n}]'
        return text

    def paper_text(self) -> str:
        if self.diff is None:
            return ''
        return f'{self.paper:g}, {format_diff(self.diff, self.decimals)}'

    def text(self) -> str:
        """``81.6 (81.8, −0.2)``; empty where we have no value."""
        ours, ref = self.ours_text(), self.paper_text()
        return f'{ours} ({ref})' if ref else ours


@dataclass
class Row:
    model: str
    cells: List[Cell]
    template: str = ''  # 'other settings' rows only
    entries: List[Entry] = field(default_factory=list)
    throughput: str = ''


@dataclass
class Section:
    """The tables of one scale (full-scale or toy)."""
    toy: bool
    main: List[Row]
    other: List[Row]
    other_quantities: List[str]

    @property
    def title(self) -> str:
        return 'Toy runs (not comparable to the paper)' if self.toy else 'Full-scale results'


@dataclass
class Leaderboard:
    mode: str
    sections: List[Section]
    models: List[str]  # every model that appears, in table order
    properties: Dict[str, Optional[Dict[str, bool]]]
    throughput: Dict[str, List[Throughput]]
    entries: Dict[tuple, Entry]
    warnings: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)


def _template_key(template: str) -> tuple:
    return (TEMPLATE_ORDER.index(template) if template in TEMPLATE_ORDER else len(TEMPLATE_ORDER),
            template)


def build_section(entries: Dict[tuple, Entry],
                  toy: bool,
                  extra_models: Iterable[str] = (),
                  throughput: Optional[Dict[str, List[Throughput]]] = None) -> Section:
    mine = {k[1:]: e for k, e in entries.items() if k[0] == toy}
    models = model_order({m for m, _ in mine} | set(extra_models))
    main = []
    for model in models:
        cells = []
        for task, quantity in MAIN_COLUMNS:
            entry = mine.get((model, TABLE_TEMPLATE[task]))
            ours = entry.value(quantity) if entry else None
            paper = None if toy else paper_reference(model, TABLE_TEMPLATE[task], task, quantity)
            cells.append(Cell(quantity, ours, paper))
        used = [
            mine[(model, TABLE_TEMPLATE[t])] for t in TASKS if (model, TABLE_TEMPLATE[t]) in mine
        ]
        main.append(
            Row(model,
                cells,
                entries=used,
                throughput=format_throughput((throughput or {}).get(model, []))))
    others = sorted((k for k in mine if k[1] not in TABLE_TEMPLATE.values()),
                    key=lambda k: (models.index(k[0]), _template_key(k[1])))
    quantities = [q for q in OTHER_QUANTITIES if any(mine[k].value(q) is not None for k in others)]
    other = []
    for model, template in others:
        entry = mine[(model, template)]
        cells = [
            Cell(q, entry.value(q),
                 None if toy else paper_reference(model, template, entry.task, q))
            for q in quantities
        ]
        other.append(Row(model, cells, template=template, entries=[entry]))
    return Section(toy, main, other, quantities)


def build_leaderboard(work_dirs: Path, mode: str = 'latest', scale: str = 'auto') -> Leaderboard:
    """Read ``work_dirs`` and lay the results out. ``scale``: 'auto' (full-scale tables, toy
    ones in their own section), 'full' or 'toy' (only those)."""
    warnings: List[str] = []
    records = load_records(work_dirs, warnings)
    benchmarks = load_benchmarks(work_dirs, warnings)
    entries = aggregate_all(records, mode)
    throughput: Dict[str, List[Throughput]] = {}
    for t in benchmarks:
        throughput.setdefault(t.model, []).append(t)
    n_full = sum(not r.toy for r in records)
    n_toy = len(records) - n_full
    notes = []
    if scale == 'full':
        scales = [False]
        if n_toy:
            notes.append(f'{n_toy} toy record(s) not shown (use --toy).')
    elif scale == 'toy':
        scales = [True]
        if n_full:
            notes.append(f'{n_full} full-scale record(s) not shown (use --full).')
    else:
        scales = ([False] if n_full or not n_toy else []) + ([True] if n_toy else [])
    if not records:
        notes.append(f'No result records (result.json) found under {work_dirs}.')
    elif not any((r.toy in scales) for r in records):
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


# ---------------------------------------------------------------------------------------------
# rendering

_MODE_TEXT = {
    'latest': 'latest run per (model, setting)',
    'best': 'best run per (model, setting) by the main metric (top-1, AP box, mIoU)',
    'mean': 'mean \u00b1 std over seeds per (model, setting), [n=seeds]',
}
TOY_BANNER = ('TOY runs: tiny data and schedules that exercise the pipeline; their numbers are '
              'not comparable to the paper and are shown without its references.')


def _main_headers(with_throughput: bool) -> List[str]:
    heads = ['Model'] + [f'{TASK_TITLES[t]} {QUANTITY_TITLES[q]}' for t, q in MAIN_COLUMNS]
    return heads + (['Throughput (img/s, inference)'] if with_throughput else [])


def _md_table(headers: List[str], rows: List[List[str]], align: str = '---:') -> List[str]:

    def line(cells):
        return '| ' + ' | '.join(c.replace('|', '\\|') for c in cells) + ' |'

    out = [line(headers), '|' + '|'.join([':---'] + [align] * (len(headers) - 1)) + '|']
    return out + [line(r) for r in rows]


def _property_mark(props: Optional[Dict[str, bool]], key: str) -> str:
    if props is None or key not in props:
        return '?'
    return '\u2713' if props[key] else '\u2717'


def render_markdown(board: Leaderboard) -> str:
    out = [
        '# Leaderboard', '', f'Paper: Han et al., "{PAPER_TITLE}", ICLR 2022 ({PAPER_URL}).', '',
        f'Cells: ours (paper, difference); {_MODE_TEXT[board.mode]}. ImageNet-1k 224px; '
        'COCO: Cascade Mask R-CNN 3x; ADE20K: UperNet 160k, single-scale mIoU.', ''
    ]
    for note in board.notes:
        out += [f'> **Note:** {note}', '']
    with_tp = bool(board.throughput)
    for section in board.sections:
        out += [f'## {section.title}', '']
        if section.toy:
            out += [f'> **\u26a0 {TOY_BANNER}**', '']
        out += _md_table(
            _main_headers(with_tp),
            [[display_name(r.model)] + [c.text()
                                        for c in r.cells] + ([r.throughput] if with_tp else [])
             for r in section.main])
        out.append('')
        if section.other:
            out += ['### Other settings', '']
            heads = ['Model', 'Setting'] + [QUANTITY_TITLES[q] for q in section.other_quantities]
            out += _md_table(heads,
                             [[display_name(r.model), r.template] + [c.text() for c in r.cells]
                              for r in section.other])
            out.append('')
    out += ['## Properties', '']
    out += _md_table(
        ['Model'] + list(PROPERTY_TITLES.values()),
        [[display_name(m)] + [_property_mark(board.properties.get(m), k) for k in PROPERTY_TITLES]
         for m in board.models],
        align=':---:')
    out.append('')
    if board.warnings:
        out += ['## Skipped inputs', ''] + [f'- {w}' for w in board.warnings] + ['']
    return '\n'.join(out)


CSV_FIELDS = [
    'scale', 'section', 'model', 'name', 'setting', 'task', 'quantity', 'ours', 'std', 'n', 'paper',
    'diff', 'runs', 'note'
]


def _num(value: Optional[float]) -> str:
    return '' if value is None else f'{value:.6g}'


def render_csv(board: Leaderboard) -> str:
    """Long format: one line per (scale, model, setting, quantity), plus throughput and property
    lines; easier to filter than the wide markdown table."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator='\n')
    writer.writeheader()
    for section in board.sections:
        scale = 'toy' if section.toy else 'full'
        for name, rows in (('main', section.main), ('other', section.other)):
            for row in rows:
                for i, cell in enumerate(row.cells):
                    if cell.ours is None:
                        continue
                    task = MAIN_COLUMNS[i][0] if name == 'main' else row.entries[0].task
                    setting = TABLE_TEMPLATE[task] if name == 'main' else row.template
                    entry = board.entries[(section.toy, row.model, setting)]
                    writer.writerow(
                        dict(
                            scale=scale,
                            section=name,
                            model=row.model,
                            name=display_name(row.model),
                            setting=setting,
                            task=task,
                            quantity=cell.quantity,
                            ours=_num(cell.ours.mean),
                            std=_num(cell.ours.std),
                            n=cell.ours.n,
                            paper=_num(cell.paper),
                            diff=_num(cell.diff),
                            runs=entry.found,
                            note=';'.join(str(r.path) for r in entry.used)))
    for model in board.models:
        for t in board.throughput.get(model, []):
            writer.writerow(
                dict(
                    section='throughput',
                    model=model,
                    name=display_name(model),
                    task='inference',
                    quantity=f'images_per_s_{t.kind.lower()}',
                    ours=_num(t.images_per_s),
                    n=t.batch_size,
                    note=f'batch_size={t.batch_size} device={t.device} '
                    f'dtype={t.dtype} threads={t.threads}'))
        props = board.properties.get(model)
        for key in PROPERTY_TITLES:
            mark = '' if props is None else str(int(props[key]))
            writer.writerow(
                dict(
                    section='properties',
                    model=model,
                    name=display_name(model),
                    quantity=key,
                    ours=mark))
    return buf.getvalue()


def plot_png(board: Leaderboard) -> bytes:
    """Accuracy vs FLOPs per task: ours filled, the paper's hollow, same colour per model."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    paper = _paper()
    section = board.sections[0] if board.sections else None
    models = model_order(set(paper.PAPER) | set(board.models))
    colors = {m: f'C{i % 10}' for i, m in enumerate(models)}
    fig = Figure(figsize=(16, 5), dpi=100)
    axes = fig.subplots(1, 3)
    for ax, task in zip(axes, TASKS):
        metric = MAIN_METRIC[task]
        ours = {}
        for row in section.main if section else []:
            entry = board.entries.get((section.toy, row.model, TABLE_TEMPLATE[task]))
            if entry is not None and entry.gflops is not None and metric in entry.metrics:
                ours[row.model] = (entry.gflops, entry.metrics[metric].mean)
        for model in paper.PAPER:
            x = paper_reference(model, TABLE_TEMPLATE[task], task, 'gflops')
            y = paper_reference(model, TABLE_TEMPLATE[task], task, metric)
            ax.scatter([x], [y], s=60, facecolors='none', edgecolors=colors[model], linewidths=1.5)
            if model not in ours:  # else the colour pairs it with our labelled point
                ax.annotate(
                    display_name(model), (x, y),
                    textcoords='offset points',
                    xytext=(5, -10),
                    fontsize=7,
                    color='0.45')
        for model, (x, y) in ours.items():
            ax.scatter([x], [y], s=60, color=colors[model], zorder=3)
            ax.annotate(
                display_name(model), (x, y),
                textcoords='offset points',
                xytext=(5, 4),
                fontsize=8,
                color=colors[model],
                fontweight='bold')
        if not ours:
            ax.text(
                0.02,
                0.98,
                'no result of ours with FLOPs',
                transform=ax.transAxes,
                ha='left',
                va='top',
                fontsize=9,
                color='0.4')
        ax.set_xlabel('GFLOPs')
        ax.set_ylabel(f'{METRIC_TITLES[metric]} (%)')
        ax.set_title(f'{TASK_TITLES[task]} {METRIC_TITLES[metric]} vs FLOPs')
        ax.grid(alpha=0.3)
    handles = [
        Line2D([], [], marker='o', ls='', color='0.2', label='ours'),
        Line2D([], [],
               marker='o',
               ls='',
               markerfacecolor='none',
               color='0.2',
               label='paper (Han et al., ICLR 2022)')
    ]
    fig.legend(
        handles=handles,
        loc='upper right',
        ncol=2,
        fontsize=9,
        frameon=False,
        bbox_to_anchor=(0.98, 0.995))
    if section is not None and section.toy:
        fig.text(
            0.05,
            0.96,
            'TOY runs: not comparable to the paper',
            color='#b00020',
            fontweight='bold',
            fontsize=12)
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.11, top=0.83, wspace=0.22)  # fast
    buf = io.BytesIO()
    fig.savefig(buf, format='png')
    return buf.getvalue()


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right;white-space:nowrap}
th{background:#f2f2f2}td.model,th.model{text-align:left}
.ref{color:#777}.pos{color:#1a7f37}.neg{color:#b00020}
.toy{background:#fff3cd;border:2px solid #e0a800;padding:.6em 1em;font-weight:bold}
.note{background:#eef4ff;border-left:4px solid #4a7bd0;padding:.4em 1em}
section.toy-section{border-left:6px solid #e0a800;padding-left:1em}
img{max-width:100%}
"""


def _html_cell(cell: Cell) -> str:
    ours = html.escape(cell.ours_text())
    if cell.diff is None:
        return f'<td>{ours}</td>'
    cls = ''
    if cell.quantity not in ('params_m', 'gflops') and cell.diff:
        cls = ' class="pos"' if cell.diff > 0 else ' class="neg"'
    diff = html.escape(format_diff(cell.diff, cell.decimals))
    return (f'<td><b>{ours}</b> <span class="ref">({cell.paper:g},</span> '
            f'<span{cls}>{diff}</span><span class="ref">)</span></td>')


def _html_main(section: Section, with_tp: bool) -> List[str]:
    groups = [(t, sum(1 for task, _ in MAIN_COLUMNS if task == t)) for t in TASKS]
    head1 = ['<th class="model" rowspan="2">Model</th>'
             ] + [f'<th colspan="{n}">{TASK_TITLES[t]}</th>' for t, n in groups]
    head2 = [f'<th>{html.escape(QUANTITY_TITLES[q])}</th>' for _, q in MAIN_COLUMNS]
    if with_tp:
        head1.append('<th rowspan="2">Throughput<br>(img/s, inference)</th>')
    out = ['<table>', '<tr>' + ''.join(head1) + '</tr>', '<tr>' + ''.join(head2) + '</tr>']
    for row in section.main:
        cells = [f'<td class="model">{html.escape(display_name(row.model))}</td>']
        cells += [_html_cell(c) for c in row.cells]
        if with_tp:
            cells.append(f'<td>{html.escape(row.throughput)}</td>')
        out.append('<tr>' + ''.join(cells) + '</tr>')
    return out + ['</table>']


def render_html(board: Leaderboard, png: bytes) -> str:
    """One self-contained page: inline CSS, the plot as a data URI."""
    out = [
        '<!DOCTYPE html>', '<html lang="en"><head><meta charset="utf-8">',
        '<title>Leaderboard: local attention vs dynamic depth-wise convolution</title>',
        f'<style>{_CSS}</style></head><body>', '<h1>Leaderboard</h1>',
        f'<p>Paper: Han et al., <a href="{PAPER_URL}">{html.escape(PAPER_TITLE)}</a>, '
        f'ICLR 2022. Cells: <b>ours</b> <span class="ref">(paper, difference)</span>; '
        f'{html.escape(_MODE_TEXT[board.mode])}.</p>'
    ]
    out += [f'<p class="note">{html.escape(n)}</p>' for n in board.notes]
    with_tp = bool(board.throughput)
    for section in board.sections:
        out.append(f'<section class="{"toy-section" if section.toy else "full-section"}">')
        out.append(f'<h2>{html.escape(section.title)}</h2>')
        if section.toy:
            out.append(f'<p class="toy">\u26a0 {html.escape(TOY_BANNER)}</p>')
        out += _html_main(section, with_tp)
        if section.other:
            out += [
                '<h3>Other settings</h3>', '<table>', '<tr><th class="model">Model</th>'
                '<th class="model">Setting</th>' +
                ''.join(f'<th>{html.escape(QUANTITY_TITLES[q])}</th>'
                        for q in section.other_quantities) + '</tr>'
            ]
            for row in section.other:
                out.append(f'<tr><td class="model">{html.escape(display_name(row.model))}</td>'
                           f'<td class="model">{html.escape(row.template)}</td>' +
                           ''.join(_html_cell(c) for c in row.cells) + '</tr>')
            out.append('</table>')
        out.append('</section>')
    data = base64.b64encode(png).decode('ascii')
    out += [
        '<h2>Accuracy vs FLOPs</h2>',
        f'<img alt="accuracy vs FLOPs" src="data:image/png;base64,{data}">', '<h2>Properties</h2>',
        '<table>',
        '<tr><th class="model">Model</th>' + ''.join(f'<th>{html.escape(t)}</th>'
                                                     for t in PROPERTY_TITLES.values()) + '</tr>'
    ]
    for m in board.models:
        out.append(f'<tr><td class="model">{html.escape(display_name(m))}</td>' +
                   ''.join(f'<td>{_property_mark(board.properties.get(m), k)}</td>'
                           for k in PROPERTY_TITLES) + '</tr>')
    out.append('</table>')
    if board.warnings:
        out += ['<h2>Skipped inputs</h2>', '<ul>']
        out += [f'<li>{html.escape(w)}</li>' for w in board.warnings]
        out.append('</ul>')
    return '\n'.join(out + ['</body></html>', ''])


def atomic_write(path: Path, data: Any) -> None:
    """Write ``data`` (str or bytes) to ``path`` via a temporary file in the same folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data.encode('utf-8') if isinstance(data, str) else data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_outputs(board: Leaderboard, out_dir: Path) -> Dict[str, Path]:
    png = plot_png(board)
    files = {
        'md': render_markdown(board),
        'csv': render_csv(board),
        'html': render_html(board, png),
        'png': png
    }
    paths = {}
    for ext, data in files.items():
        paths[ext] = out_dir / f'leaderboard.{ext}'
        atomic_write(paths[ext], data)
    return paths


# ---------------------------------------------------------------------------------------------
# OpenMMLab model-zoo files

_RESULT_SPECS = {  # task -> [(Task, Dataset, {metric: name in the metafile})]
    'imagenet': [('Image Classification', 'ImageNet-1k',
                  {'top1': 'Top 1 Accuracy', 'top5': 'Top 5 Accuracy',
                   'real_top1': 'ReaL Top 1 Accuracy'})],
    'coco': [('Object Detection', 'COCO', {'ap_box': 'box AP'}),
             ('Instance Segmentation', 'COCO', {'ap_mask': 'mask AP'})],
    'ade20k': [('Semantic Segmentation', 'ADE20K', {'miou': 'mIoU', 'miou_ms': 'mIoU(ms+flip)'})],
}


def load_complexity(path: Path, warnings: List[str]) -> List[dict]:
    """Records of ``tools/get_flops.py --all --json``; malformed ones are skipped."""
    data = _read_json(path, warnings)
    if data is None:
        return []
    if not isinstance(data, list):
        _skip(path, 'expected a JSON list of complexity records', warnings)
        return []
    good = []
    for i, item in enumerate(data):
        try:
            if not isinstance(item, dict):
                raise RecordError('not an object')
            if item.get('task') not in TASKS:
                raise RecordError(f'unknown task {item.get("task")!r}')
            good.append(
                dict(
                    model=_string(item, 'model', optional=True),
                    task=item['task'],
                    config=_string(item, 'config', optional=True),
                    params_m=_number(item.get('params_m'), '"params_m"'),
                    gflops=_number(item.get('gflops'), '"gflops"')))
        except RecordError as exc:
            _skip(path, f'complexity entry {i}: {exc}', warnings)
    return good


def _norm_config(config: Optional[str]) -> str:
    return os.path.normpath(config) if config else ''


def _results(entry: Entry) -> List[dict]:
    results = []
    for task_name, dataset, names in _RESULT_SPECS[entry.task]:
        metrics = {
            name: round(entry.metrics[k].mean, 2)
            for k, name in names.items() if k in entry.metrics
        }
        if metrics:
            results.append({'Task': task_name, 'Dataset': dataset, 'Metrics': metrics})
    return results


def build_metafiles(entries: Dict[tuple, Entry],
                    complexity: Sequence[dict] = ()) -> Dict[str, dict]:
    """``{family: metafile}`` in mmpretrain's format, from full-scale entries only (toy results
    never enter the model zoo); FLOPs/params missing from the records come from ``complexity``.
    """
    by_config = {_norm_config(c['config']): c for c in complexity if c['config']}
    by_task = {(c['model'], c['task']): c for c in complexity if c['model']}
    models: Dict[str, dict] = {}  # model name in the metafile -> model entry
    for (toy, model, template), entry in sorted(entries.items(), key=lambda kv: kv[0][1:]):
        if toy:
            continue
        comp = by_config.get(_norm_config(entry.config))
        if comp is None and template == TABLE_TEMPLATE[entry.task]:
            comp = by_task.get((model, entry.task))
        params = entry.params_m if entry.params_m is not None else (comp or {}).get('params_m')
        gflops = entry.gflops if entry.gflops is not None else (comp or {}).get('gflops')
        name = Path(entry.config).stem if entry.config else f'{model}_{template}'
        models[name] = dict(
            model=model,
            task=entry.task,
            config=entry.config,
            params_m=params,
            gflops=gflops,
            results=_results(entry),
            weights=entry.checkpoint)
    for comp in complexity:  # configs measured but not (yet) trained at full scale
        if not comp['model'] or not comp['config']:
            continue
        name = Path(comp['config']).stem
        if name not in models:
            models[name] = dict(
                model=comp['model'],
                task=comp['task'],
                config=comp['config'],
                params_m=comp['params_m'],
                gflops=comp['gflops'],
                results=[],
                weights=None)
    families: Dict[str, dict] = {}
    order = model_order(m['model'] for m in models.values())
    for name in sorted(models, key=lambda n: (order.index(models[n]['model']), n)):
        info = models[name]
        family = family_of(info['model'])
        if family not in families:
            title, architecture = FAMILIES.get(family, (family, []))
            metadata: Dict[str, Any] = {'Training Data': ['ImageNet-1k', 'COCO', 'ADE20K']}
            if architecture:
                metadata['Architecture'] = architecture
            families[family] = {
                'Collections': [{
                    'Name': title,
                    'Metadata': metadata,
                    'Paper': {
                        'Title': PAPER_TITLE,
                        'URL': PAPER_URL
                    },
                    'Code': {
                        'URL': CODE_URL
                    }
                }],
                'Models': []
            }
        meta: Dict[str, Any] = {}
        if info['gflops'] is not None:
            meta['FLOPs'] = int(round(info['gflops'] * 1e9))
        if info['params_m'] is not None:
            meta['Parameters'] = int(round(info['params_m'] * 1e6))
        meta['Training Data'] = _RESULT_SPECS[info['task']][0][1]
        item: Dict[str, Any] = {
            'Name': name,
            'In Collection': families[family]['Collections'][0]['Name'],
            'Metadata': meta,
            'Results': info['results'] or None
        }
        if info['config']:
            item['Config'] = info['config']
        if info['weights']:
            item['Weights'] = info['weights']
        families[family]['Models'].append(item)
    return families


def write_metafiles(families: Dict[str, dict], root: Path) -> List[Path]:
    """``<root>/metafiles/<family>.yml`` and ``<root>/model-index.yml`` importing them."""
    import yaml

    def order(f):
        return (list(FAMILIES).index(f) if f in FAMILIES else len(FAMILIES), f)

    written = []
    for family in sorted(families, key=order):
        path = root / 'metafiles' / f'{family}.yml'
        atomic_write(path, yaml.safe_dump(families[family], sort_keys=False, allow_unicode=True))
        written.append(path)
    index = {'Import': [f'metafiles/{p.name}' for p in written]}
    atomic_write(root / 'model-index.yml', yaml.safe_dump(index, sort_keys=False))
    return written + [root / 'model-index.yml']


# ---------------------------------------------------------------------------------------------
# command line

REPO_ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='tools/leaderboard.py',
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description='Turn the result records under the work-dirs tree into the paper\'s '
        'comparison table: leaderboard.{md,csv,html,png} in --out, markdown on stdout.')
    parser.add_argument(
        '--work-dirs',
        default='work_dirs',
        help='searched recursively for result.json; benchmark lists in '
        '<work-dirs>/benchmark/*.json (default: %(default)s)')
    parser.add_argument('--out', help='output folder (default: <work-dirs>/leaderboard)')
    runs = parser.add_mutually_exclusive_group()
    runs.add_argument(
        '--best',
        action='store_true',
        help='per (model, setting) the best run by the main metric (default: the '
        'latest by date)')
    runs.add_argument('--mean', action='store_true', help='mean +- std over seeds')
    scale = parser.add_mutually_exclusive_group()
    scale.add_argument('--toy', action='store_true', help='only toy runs')
    scale.add_argument('--full', action='store_true', help='only full-scale runs')
    parser.add_argument(
        '--metafiles',
        nargs='?',
        const=str(REPO_ROOT),
        metavar='ROOT',
        help='also write ROOT/metafiles/<family>.yml and ROOT/model-index.yml '
        '(OpenMMLab model zoo; full-scale results only; ROOT defaults to the '
        'repository)')
    parser.add_argument(
        '--complexity',
        metavar='FILE',
        help='JSON of tools/get_flops.py --all --json: FLOPs/params for the '
        'metafiles where no record has them')
    parser.add_argument('--quiet', action='store_true', help='do not print the table')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    work_dirs = Path(args.work_dirs)
    if not work_dirs.is_dir():
        print(f'error: --work-dirs {work_dirs} is not a directory', file=sys.stderr)
        return 2
    if args.complexity and not Path(args.complexity).is_file():
        print(f'error: --complexity {args.complexity} is not a file', file=sys.stderr)
        return 2
    mode = 'best' if args.best else 'mean' if args.mean else 'latest'
    board = build_leaderboard(work_dirs, mode,
                              'toy' if args.toy else 'full' if args.full else 'auto')
    out_dir = Path(args.out) if args.out else work_dirs / 'leaderboard'
    paths = write_outputs(board, out_dir)
    if not args.quiet:
        print(render_markdown(board))
    print(f'wrote {", ".join(str(p) for p in paths.values())}', file=sys.stderr)
    if args.metafiles is not None:
        complexity = (
            load_complexity(Path(args.complexity), board.warnings) if args.complexity else [])
        families = build_metafiles(board.entries, complexity)
        if families:
            written = write_metafiles(families, Path(args.metafiles))
            print(f'wrote {", ".join(str(p) for p in written)}', file=sys.stderr)
        else:  # keep what is there rather than write an empty model index
            _warn('no full-scale result and no complexity record: metafiles not written')
    return 0
