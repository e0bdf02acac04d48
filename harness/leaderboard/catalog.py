"""What the leaderboard knows about tasks and models, derived from the two tables of record.

Columns, titles, main metrics and setting order come from :data:`harness.tasks.TASKS`; display
names, families, metafile tags, property records and the paper's values from the zoo
(:func:`backbones.zoo.get_model_info`). A model without a zoo entry still gets a row, under its
own name, without references.
"""
from dataclasses import dataclass, fields
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from backbones import zoo
from backbones.properties import BackboneProperties
from backbones.zoo import ModelInfo
from ..tasks import TASKS, Task, get_setting, settings, task_of_setting

#: the two quantities every task reports besides its metrics
COMPLEXITY = ('params_m', 'gflops')
COMPLEXITY_TITLES = {'params_m': 'Params (M)', 'gflops': 'FLOPs (G)'}
#: the quantity of a task's FPS column: inference images/s of the whole task model
FPS = 'fps'
FPS_TITLE = 'FPS (img/s)'
#: the columns of the property table: the fields of the backbones' property records
PROPERTY_TITLES = {
    f.name: f.name.replace('_', ' ').capitalize()
    for f in fields(BackboneProperties)
}
PAPER_TITLE = 'On the Connection between Local Attention and Dynamic Depth-wise Convolution'
PAPER_URL = 'https://arxiv.org/abs/2106.04263'
CODE_URL = 'https://github.com/Atten4Vis/DemystifyLocalViT'


@dataclass(frozen=True)
class Column:
    """One column of the main table: a quantity of a task in its table setting.

    Args:
        task (Task): the task of the column group.
        quantity (str): ``'params_m'``, ``'gflops'`` or a metric (or ``--tta`` metric) name.
    """
    task: Task
    quantity: str

    @property
    def key(self) -> str:
        """``'imagenet:top1'``."""
        return f'{self.task.name}:{self.quantity}'

    @property
    def setting(self) -> str:
        """The key of the task's table setting, e.g. ``'coco_cascade'``."""
        return self.task.table_setting.key

    @property
    def title(self) -> str:
        """``'ImageNet Top-1'``."""
        return f'{self.task.title} {quantity_title(self.quantity)}'


def tta_names(task: Optional[Task] = None) -> List[str]:
    """Record names of the ``--tta`` metrics of ``task`` (all tasks if None), e.g.
    ``['miou_ms']``."""
    tasks = [task] if task is not None else list(TASKS.values())
    return [m.tta_name for t in tasks for m in t.metrics if m.tta_name]


def main_columns(tta: Iterable[str] = (), fps: Iterable[str] = ()) -> List[Column]:
    """The main table: per task its params, FLOPs and the metrics of the paper's table.

    Args:
        tta (Iterable[str]): ``--tta`` metric names that have values; each gets a column after
            its metric. Defaults to none.
        fps (Iterable[str]): tasks with measured task-model throughput; each gets an
            :data:`FPS` column after its metrics. Defaults to none.

    Returns:
        list[Column]: in task order.
    """
    tta, fps = set(tta), set(fps)
    columns = []
    for task in TASKS.values():
        columns += [Column(task, q) for q in COMPLEXITY]
        for m in task.metrics:
            if m.in_table:
                columns.append(Column(task, m.name))
                if m.tta_name in tta:
                    columns.append(Column(task, m.tta_name))
        if task.name in fps:
            columns.append(Column(task, FPS))
    return columns


def other_quantities() -> List[str]:
    """Every quantity in table order: params, FLOPs, then each task's metrics (in table or not)
    with their ``--tta`` names."""
    names = list(COMPLEXITY)
    for task in TASKS.values():
        for m in task.metrics:
            names += [m.name] + ([m.tta_name] if m.tta_name else [])
    return names


def quantity_title(quantity: str) -> str:
    """Column title of a quantity: ``'Params (M)'``, ``'Top-1'``, ``'mIoU (TTA)'``; an unknown
    metric keeps its name."""
    if quantity in COMPLEXITY_TITLES:
        return COMPLEXITY_TITLES[quantity]
    if quantity == FPS:
        return FPS_TITLE
    for task in TASKS.values():
        for m in task.metrics:
            if m.name == quantity:
                return m.title
            if m.tta_name == quantity:
                return f'{m.title} (TTA)'
    return quantity


def main_metric(task: str) -> str:
    """The metric ``--best`` ranks by and the plot shows, e.g. ``'ap_box'`` for ``'coco'``."""
    return TASKS[task].main_metric.name


def table_settings() -> List[str]:
    """The setting keys of the paper's main table, one per task."""
    return [t.table_setting.key for t in TASKS.values()]


def setting_sort_key(setting: str) -> Tuple[int, str]:
    """Known settings in the task table's order, unknown ones after by name."""
    keys = [s.key for s in settings()]
    return (keys.index(setting) if setting in keys else len(keys), setting)


def setting_title(setting: str) -> str:
    """``'Mask R-CNN 1x'`` for ``'coco_maskrcnn'``; an unknown setting keeps its key."""
    try:
        return get_setting(setting).title or setting
    except KeyError:
        return setting


def task_of(setting: str) -> Optional[str]:
    """The task a known setting belongs to (None for an unknown setting)."""
    try:
        return task_of_setting(setting).name
    except KeyError:
        return None


def model_info(model: str) -> Optional[ModelInfo]:
    """The zoo record of ``model``; None for a model without one."""
    try:
        return zoo.get_model_info(model)
    except KeyError:
        return None


def display_name(model: str) -> str:
    """``'I-Dynamic-T'`` for ``'idynamic_t'``; an unknown model keeps its name."""
    info = model_info(model)
    return info.display_name if info is not None else model


def family(model: str) -> Tuple[str, str, Sequence[str]]:
    """(family, title, metafile tags): the zoo's, or for an unknown model its name without the
    size suffix, as both, and no tags."""
    info = model_info(model)
    if info is not None:
        return info.family, info.family_title, tuple(info.metafile_tags)
    name = model.rsplit('_', 1)[0] if '_' in model else model
    return name, name, ()


def paper_reference(model: str, setting: str, quantity: str) -> Optional[float]:
    """The paper's value of ``quantity`` for ``model`` in ``setting``, if it reports one."""
    info = model_info(model)
    if info is None:
        return None
    return info.paper.get(setting, {}).get(quantity)


def model_properties(model: str) -> Optional[Dict[str, bool]]:
    """The backbone's own property record, or None (no zoo entry or no record)."""
    try:
        return zoo.get_properties(model).as_dict()
    except (KeyError, AttributeError):
        return None


def model_order(models: Iterable[str]) -> List[str]:
    """The zoo's order (the paper's models first), then models without an entry by name."""
    models = set(models)
    for m in models:
        model_info(m)  # loads the submitted backbones of contrib/ once
    known = zoo.known_models()
    return [m for m in known if m in models] + sorted(models - set(known))


def paper_models(setting: str) -> List[str]:
    """The zoo models the paper reports in ``setting``, in table order."""
    return [m for m in zoo.known_models() if zoo.get_model_info(m).paper.get(setting)]
