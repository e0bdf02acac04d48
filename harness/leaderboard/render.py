"""The board as markdown (the README-style tables) and as long-format CSV."""
import csv
import io
from typing import Dict, List, Optional

from ..tasks import TASKS
from .catalog import (PAPER_TITLE, PAPER_URL, PROPERTY_TITLES, display_name, quantity_title,
                      setting_title)
from .layout import Leaderboard, Section, has_backbone_throughput

TOY_BANNER = ('TOY runs: tiny data and schedules that exercise the pipeline; their numbers are '
              'not comparable to the paper and are shown without its references.')
CSV_FIELDS = [
    'scale', 'section', 'model', 'name', 'setting', 'task', 'quantity', 'ours', 'std', 'n', 'paper',
    'diff', 'runs', 'note'
]


def mode_text(mode: str) -> str:
    """What the values of a mode are, for the page's introduction."""
    if mode == 'best':
        mains = ', '.join(t.main_metric.title for t in TASKS.values())
        return f'best run per (model, setting) by the main metric ({mains})'
    if mode == 'mean':
        return 'mean \u00b1 std over seeds per (model, setting), [n=seeds]'
    return 'latest run per (model, setting)'


def settings_text() -> str:
    """``'ImageNet: ImageNet-1k (FLOPs at 224\u00d7224); COCO: ...'``: the main table's
    settings."""
    return '; '.join(f'{t.title}: {t.table_setting.title} '
                     f'(FLOPs at {t.input_hw[1]}\u00d7{t.input_hw[0]})' for t in TASKS.values())


def main_headers(section: Section, with_throughput: bool) -> List[str]:
    """``['Model', 'ImageNet Params (M)', ...]`` (and the throughput column)."""
    heads = ['Model'] + [c.title for c in section.columns]
    return heads + (['Throughput (img/s, inference)'] if with_throughput else [])


def property_mark(props: Optional[Dict[str, bool]], key: str) -> str:
    """\u2713 / \u2717, or ``?`` where the model has no property record."""
    if props is None or key not in props:
        return '?'
    return '\u2713' if props[key] else '\u2717'


def _md_table(headers: List[str], rows: List[List[str]], align: str = '---:') -> List[str]:

    def line(cells):
        return '| ' + ' | '.join(c.replace('|', '\\|') for c in cells) + ' |'

    out = [line(headers), '|' + '|'.join([':---'] + [align] * (len(headers) - 1)) + '|']
    return out + [line(r) for r in rows]


def render_markdown(board: Leaderboard) -> str:
    """The board as markdown: introduction, notes, per section the main table and the
    other-settings table, the property table and the skipped inputs.

    Args:
        board (Leaderboard): the board.

    Returns:
        str: the document.
    """
    out = [
        '# Leaderboard', '', f'Paper: Han et al., "{PAPER_TITLE}", ICLR 2022 ({PAPER_URL}).', '',
        f'Cells: ours (paper, difference); {mode_text(board.mode)}. {settings_text()}.', ''
    ]
    for note in board.notes:
        out += [f'> **Note:** {note}', '']
    with_tp = has_backbone_throughput(board.throughput)
    for section in board.sections:
        out += [f'## {section.title}', '']
        if section.toy:
            out += [f'> **\u26a0 {TOY_BANNER}**', '']
            if seeds_text(board, True):
                out += [seeds_text(board, True), '']
        rows = [[display_name(r.model)] + [c.text() for c in r.cells] for r in section.main]
        if with_tp:
            rows = [cells + [r.throughput] for cells, r in zip(rows, section.main)]
        out += _md_table(main_headers(section, with_tp), rows) + ['']
        if section.other:
            heads = ['Model', 'Setting'] + [quantity_title(q) for q in section.other_quantities]
            rows = [[display_name(r.model), setting_title(r.template)] +
                    [c.text() for c in r.cells] for r in section.other]
            out += ['### Other settings', ''] + _md_table(heads, rows) + ['']
    out += ['## Properties', '']
    out += _md_table(
        ['Model'] + list(PROPERTY_TITLES.values()),
        [[display_name(m)] + [property_mark(board.properties.get(m), k) for k in PROPERTY_TITLES]
         for m in board.models],
        align=':---:')
    out.append('')
    if board.warnings:
        out += ['## Skipped inputs', ''] + [f'- {w}' for w in board.warnings] + ['']
    return '\n'.join(out)


def seeds_text(board: Leaderboard, toy: bool) -> str:
    """``'Seeds: 0.'`` — the random seeds of the runs shown at one scale (toy runs are seeded,
    so the toy table is reproducible)."""
    seeds = sorted({
        r.seed
        for e in board.entries.values() if e.toy == toy for r in e.used + e.tta_used
        if r.seed is not None
    })
    return f'Seeds: {", ".join(map(str, seeds))}.' if seeds else ''


def _num(value: Optional[float]) -> str:
    return '' if value is None else f'{value:.6g}'


def render_csv(board: Leaderboard) -> str:
    """Long format: one line per (scale, model, setting, quantity), plus throughput and
    property lines; easier to filter than the wide tables.

    Args:
        board (Leaderboard): the board.

    Returns:
        str: CSV with the header :data:`CSV_FIELDS`.
    """
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator='\n')
    writer.writeheader()
    for section in board.sections:
        for name, rows in (('main', section.main), ('other', section.other)):
            for row in rows:
                for i, cell in enumerate(row.cells):
                    if cell.ours is None:
                        continue
                    setting = section.columns[i].setting if name == 'main' else row.template
                    entry = board.entries[(section.toy, row.model, setting)]
                    writer.writerow(
                        dict(
                            scale='toy' if section.toy else 'full',
                            section=name,
                            model=row.model,
                            name=display_name(row.model),
                            setting=setting,
                            task=entry.task,
                            quantity=cell.quantity,
                            ours=_num(cell.ours.mean),
                            std=_num(cell.ours.std),
                            n=cell.ours.n,
                            paper=_num(cell.paper),
                            diff=_num(cell.diff),
                            runs=entry.found,
                            note=';'.join(str(r.path) for r in entry.sources(cell.quantity))))
    for model in board.models:
        common = dict(model=model, name=display_name(model))
        for t in board.throughput.get(model, []):
            writer.writerow(
                dict(
                    common,
                    section='throughput',
                    task=t.task or 'inference',
                    quantity=f'images_per_s_{t.kind.lower()}',
                    ours=_num(t.images_per_s),
                    n=t.batch_size,
                    note=f'batch_size={t.batch_size} device={t.device} '
                    f'dtype={t.dtype} threads={t.threads}'))
        props = board.properties.get(model)
        for key in PROPERTY_TITLES:
            mark = '' if props is None else str(int(props[key]))
            writer.writerow(dict(common, section='properties', quantity=key, ours=mark))
    return buf.getvalue()
