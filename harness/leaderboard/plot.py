"""The accuracy-vs-FLOPs plot: one panel per task, ours filled, the paper's hollow.

Labels are placed in display coordinates: each label tries positions around its point, nearest
first, and takes the first whose box (measured with the renderer) meets no label placed before
it, no other point and stays inside the panel; a label moved away from its point gets a thin
leader line. The paper's T models sit within 0.5 GFLOPs of each other, so fixed offsets would
stack their labels on top of each other.
"""
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, List, Sequence, Tuple

from ..tasks import TASKS, Task
from .catalog import display_name, model_order, paper_models, paper_reference
from .layout import Leaderboard

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.backend_bases import RendererBase
    from matplotlib.figure import Figure
    from matplotlib.transforms import Bbox

#: ``gid`` of the label texts (tests find them by it)
LABEL_GID = 'point-label'
MARKER_SIZE = 60  # points^2
_DIRECTIONS = [  # (dx, dy, ha, va) per unit distance: right of the point first
    (1, 0.8, 'left', 'bottom'), (1, -0.8, 'left', 'top'), (1, 0, 'left', 'center'),
    (-1, 0.8, 'right', 'bottom'), (-1, -0.8, 'right', 'top'), (-1, 0, 'right', 'center'),
    (0, 1, 'center', 'bottom'), (0, -1, 'center', 'top')
]
_FIRST, _STEP, _RINGS = 5.0, 5.0, 60  # offsets in points: 5, 10, 15, ... 300


@dataclass
class Label:
    """A point's label.

    Args:
        text (str): the model's display name.
        x (float): the point, data coordinates.
        y (float): the point, data coordinates.
        color (str): text colour.
        bold (bool): our result (the paper's points get a grey label).
    """
    text: str
    x: float
    y: float
    color: str
    bold: bool = False


def _candidates() -> Iterator[Tuple[float, float, str, str]]:
    for ring in range(_RINGS):
        d = _FIRST + _STEP * ring
        for dx, dy, ha, va in _DIRECTIONS:
            yield dx * d, dy * d, ha, va


def _overlaps(box: 'Bbox', others: Sequence['Bbox']) -> bool:
    return any(box.overlaps(o) for o in others)


def place_labels(ax: 'Axes', labels: Sequence[Label], renderer: 'RendererBase') -> list:
    """Add ``labels`` to ``ax`` so that no two of them overlap.

    The axes' limits must be final: positions are chosen in display coordinates.

    Args:
        ax (Axes): the panel, with its points drawn.
        labels (Sequence[Label]): in priority order (earlier labels sit closer to their point).
        renderer (RendererBase): measures the text boxes.

    Returns:
        list[Text]: the label texts, ``gid`` :data:`LABEL_GID`.
    """
    from matplotlib.transforms import Bbox, offset_copy

    fig = ax.figure
    radius = (MARKER_SIZE**0.5 / 2 + 1) * fig.dpi / 72
    points = [ax.transData.transform(p) for c in ax.collections for p in c.get_offsets()]
    markers = [Bbox.from_bounds(x - radius, y - radius, 2 * radius, 2 * radius) for x, y in points]
    # where a label may go, most wanted first: inside the panel clear of the other points,
    # inside the figure, anywhere (never on another label)
    areas = [ax.get_window_extent(renderer), fig.bbox, None]
    placed: List[Bbox] = []
    texts = []
    for label in labels:
        text = ax.text(
            label.x,
            label.y,
            label.text,
            fontsize=8 if label.bold else 7,
            fontweight='bold' if label.bold else 'normal',
            color=label.color,
            gid=LABEL_GID)
        here = ax.transData.transform((label.x, label.y))
        others = [m for m in markers if not m.contains(*here)]
        for area, (dx, dy, ha, va) in ((a, c) for a in areas for c in _candidates()):
            text.set_transform(offset_copy(ax.transData, fig=fig, x=dx, y=dy, units='points'))
            text.set_ha(ha)
            text.set_va(va)
            box = text.get_window_extent(renderer).padded(1.5)
            if _overlaps(box, placed) or (area is areas[0] and _overlaps(box, others)):
                continue
            if area is None or (box.x0 >= area.x0 and box.x1 <= area.x1 and box.y0 >= area.y0
                                and box.y1 <= area.y1):
                break
        placed.append(box)
        texts.append(text)
        if abs(dx) > _FIRST or abs(dy) > _FIRST:  # moved away: a leader line to its point
            ax.annotate(
                '', (label.x, label.y),
                xytext=(dx, dy),
                textcoords='offset points',
                arrowprops=dict(
                    arrowstyle='-', color=label.color, lw=0.6, alpha=0.6, shrinkA=0, shrinkB=4))
    return texts


def _panel(ax: 'Axes', board: Leaderboard, task: Task, colors: dict) -> List[Label]:
    """Draw one task's points; returns their labels (ours first)."""
    setting, metric = task.table_setting.key, task.main_metric
    section = board.sections[0] if board.sections else None
    ours = {}
    for row in section.main if section else []:
        entry = board.entries.get((section.toy, row.model, setting))
        if entry is not None and entry.gflops is not None and metric.name in entry.metrics:
            ours[row.model] = (entry.gflops, entry.metrics[metric.name].mean)
    labels = []
    for model, (x, y) in ours.items():
        ax.scatter([x], [y], s=MARKER_SIZE, color=colors[model], zorder=3)
        labels.append(Label(display_name(model), x, y, colors[model], bold=True))
    for model in paper_models(setting):
        x = paper_reference(model, setting, 'gflops')
        y = paper_reference(model, setting, metric.name)
        if x is None or y is None:
            continue
        ax.scatter([x], [y],
                   s=MARKER_SIZE,
                   facecolors='none',
                   edgecolors=colors[model],
                   linewidths=1.5)
        if model not in ours:  # else the colour pairs it with our labelled point
            labels.append(Label(display_name(model), x, y, '0.45'))
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
    ax.set_ylabel(f'{metric.title} (%)')
    ax.set_title(f'{task.title} {metric.title} vs FLOPs')
    ax.grid(alpha=0.3)
    ax.margins(0.15, 0.2)
    return labels


def plot_figure(board: Leaderboard) -> 'Figure':
    """The plot as a matplotlib figure (Agg canvas), labels placed.

    Args:
        board (Leaderboard): its first section's main table gives our points.

    Returns:
        Figure: one panel per task.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    settings = [t.table_setting.key for t in TASKS.values()]
    models = model_order({m for s in settings for m in paper_models(s)} | set(board.models))
    colors = {m: f'C{i % 10}' for i, m in enumerate(models)}
    fig = Figure(figsize=(16, 5), dpi=100)
    canvas = FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(TASKS), squeeze=False)[0]
    labels = [_panel(ax, board, task, colors) for ax, task in zip(axes, TASKS.values())]
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
    if board.sections and board.sections[0].toy:
        fig.text(
            0.05,
            0.96,
            'TOY runs: not comparable to the paper',
            color='#b00020',
            fontweight='bold',
            fontsize=12)
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.11, top=0.83, wspace=0.22)
    renderer = canvas.get_renderer()
    for ax, panel_labels in zip(axes, labels):
        ax.set_xlim(ax.get_xlim())  # freeze the limits: labels are placed in display space
        ax.set_ylim(ax.get_ylim())
        place_labels(ax, panel_labels, renderer)
    return fig


def plot_png(board: Leaderboard) -> bytes:
    """:func:`plot_figure` as PNG bytes.

    Args:
        board (Leaderboard): the board.

    Returns:
        bytes: the PNG file.
    """
    fig = plot_figure(board)
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=fig.dpi)
    return buf.getvalue()
