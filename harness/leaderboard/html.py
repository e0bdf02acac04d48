"""The board as one self-contained HTML page: inline CSS, the plot as a data URI."""
import base64
from html import escape as _esc
from typing import List

from .catalog import (PAPER_TITLE, PAPER_URL, PROPERTY_TITLES, display_name, quantity_title,
                      setting_title)
from .layout import Cell, Leaderboard, Section, format_diff, has_backbone_throughput
from .render import TOY_BANNER, mode_text, property_mark, seeds_text, settings_text

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right;white-space:nowrap}
th{background:#f2f2f2}th[colspan]{text-align:center}td.model,th.model{text-align:left}
.wide{overflow-x:auto}
.ref{color:#777}.pos{color:#1a7f37}.neg{color:#b00020}
.toy{background:#fff3cd;border:2px solid #e0a800;padding:.6em 1em;font-weight:bold}
.note{background:#eef4ff;border-left:4px solid #4a7bd0;padding:.4em 1em}
section.toy-section{border-left:6px solid #e0a800;padding-left:1em}
img{max-width:100%}
"""


def _cell(cell: Cell) -> str:
    ours = _esc(cell.ours_text())
    if cell.diff is None:
        return f'<td>{ours}</td>'
    cls = ''
    if cell.quantity not in ('params_m', 'gflops') and cell.diff:
        cls = ' class="pos"' if cell.diff > 0 else ' class="neg"'
    diff = _esc(format_diff(cell.diff, cell.decimals))
    return (f'<td><b>{ours}</b> <span class="ref">({cell.paper:g},</span> '
            f'<span{cls}>{diff}</span><span class="ref">)</span></td>')


def _model(model: str) -> str:
    return f'<td class="model">{_esc(display_name(model))}</td>'


def _row(cells: List[str]) -> str:
    return '<tr>' + ''.join(cells) + '</tr>'


def _main_table(section: Section, with_tp: bool) -> List[str]:
    groups: List[list] = []  # [task title, number of columns]
    for c in section.columns:
        if groups and groups[-1][0] == c.task.title:
            groups[-1][1] += 1
        else:
            groups.append([c.task.title, 1])
    head1 = ['<th class="model" rowspan="2">Model</th>'
             ] + [f'<th colspan="{n}">{_esc(title)}</th>' for title, n in groups]
    if with_tp:
        head1.append('<th rowspan="2">Throughput<br>(img/s, inference)</th>')
    head2 = [f'<th>{_esc(quantity_title(c.quantity))}</th>' for c in section.columns]
    out = ['<div class="wide"><table>', _row(head1), _row(head2)]
    for row in section.main:
        cells = [_model(row.model)] + [_cell(c) for c in row.cells]
        out.append(_row(cells + ([f'<td>{_esc(row.throughput)}</td>'] if with_tp else [])))
    return out + ['</table></div>']


def _other_table(section: Section) -> List[str]:
    heads = ['<th class="model">Model</th><th class="model">Setting</th>']
    heads += [f'<th>{_esc(quantity_title(q))}</th>' for q in section.other_quantities]
    out = ['<h3>Other settings</h3>', '<table>', _row(heads)]
    for row in section.other:
        setting = f'<td class="model">{_esc(setting_title(row.template))}</td>'
        out.append(_row([_model(row.model), setting] + [_cell(c) for c in row.cells]))
    return out + ['</table>']


def render_html(board: Leaderboard, png: bytes) -> str:
    """One self-contained page: the tables of :func:`~.render.render_markdown` with coloured
    differences, the plot and the property table.

    Args:
        board (Leaderboard): the board.
        png (bytes): the accuracy-vs-FLOPs plot (:func:`~.plot.plot_png`), embedded as a data
            URI.

    Returns:
        str: the HTML document.
    """
    out = [
        '<!DOCTYPE html>', '<html lang="en"><head><meta charset="utf-8">',
        '<title>Leaderboard: local attention vs dynamic depth-wise convolution</title>',
        f'<style>{_CSS}</style></head><body>', '<h1>Leaderboard</h1>',
        f'<p>Paper: Han et al., <a href="{PAPER_URL}">{_esc(PAPER_TITLE)}</a>, '
        f'ICLR 2022. Cells: <b>ours</b> <span class="ref">(paper, difference)</span>; '
        f'{_esc(mode_text(board.mode))}. {_esc(settings_text())}.</p>'
    ]
    out += [f'<p class="note">{_esc(n)}</p>' for n in board.notes]
    with_tp = has_backbone_throughput(board.throughput)
    for section in board.sections:
        out.append(f'<section class="{"toy-section" if section.toy else "full-section"}">')
        out.append(f'<h2>{_esc(section.title)}</h2>')
        if section.toy:
            out.append(f'<p class="toy">\u26a0 {_esc(TOY_BANNER)}</p>')
            if seeds_text(board, True):
                out.append(f'<p>{_esc(seeds_text(board, True))}</p>')
        out += _main_table(section, with_tp)
        if section.other:
            out += _other_table(section)
        out.append('</section>')
    data = base64.b64encode(png).decode('ascii')
    out += [
        '<h2>Accuracy vs FLOPs</h2>',
        f'<img alt="accuracy vs FLOPs" src="data:image/png;base64,{data}">', '<h2>Properties</h2>',
        '<table>',
        _row(['<th class="model">Model</th>'] +
             [f'<th>{_esc(t)}</th>' for t in PROPERTY_TITLES.values()])
    ]
    for m in board.models:
        marks = [f'<td>{property_mark(board.properties.get(m), k)}</td>' for k in PROPERTY_TITLES]
        out.append(_row([_model(m)] + marks))
    out.append('</table>')
    if board.warnings:
        out += ['<h2>Skipped inputs</h2>', '<ul>']
        out += [f'<li>{_esc(w)}</li>' for w in board.warnings]
        out.append('</ul>')
    return '\n'.join(out + ['</body></html>', ''])
