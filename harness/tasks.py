"""The benchmark's tasks, defined once.

A *task* is a dataset family evaluated by one toolbox (ImageNet / mmpretrain, COCO / mmdet,
ADE20K / mmseg); a *setting* is one config template of a task (e.g. Cascade Mask R-CNN 3x on
COCO). Config generation, FLOP counting, result records, the leaderboard, toy adaptation, the
contract checks and the tools all read this table: adding a setting or a metric is one entry
here plus its template in ``configs/_base_``::

    add_setting('ade20k', Setting('ade20k_fpn', suffix='fpn', template='ade20k_fpn_80k.py',
                                  head_channels={'neck.in_channels': 'all'}))
"""
import argparse
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, Iterator, List, Mapping, Optional, Tuple, Union

#: where a setting's channels come from: ``'all'`` = the four stage widths, an int = one stage
ChannelSource = Union[str, int]


@dataclass(frozen=True)
class Metric:
    """One metric of a task.

    Args:
        name (str): the name in result records and the leaderboard, e.g. ``'ap_box'``.
        key (str): the toolbox evaluator's key, e.g. ``'coco/bbox_mAP'``.
        title (str): column title, e.g. ``'AP box'``.
        scale (float): factor to percent (mmdet reports fractions). Defaults to 1.
        main (bool): the metric that ranks runs (``--best``) and the plot's y axis.
        in_table (bool): a column of the paper's table. Defaults to True.
        paper_title (str): the paper's column title. Defaults to ``title``.
        metafile (tuple, optional): (OpenMMLab metafile task, metric name), e.g.
            ``('Object Detection', 'box AP')``; None: not in metafiles.
        tta_name (str, optional): the record name of this metric in ``--tta`` test runs.
        tta_metafile (str, optional): its metafile name.
    """
    name: str
    key: str
    title: str
    scale: float = 1.0
    main: bool = False
    in_table: bool = True
    paper_title: str = ''
    metafile: Optional[Tuple[str, str]] = None
    tta_name: Optional[str] = None
    tta_metafile: Optional[str] = None


@dataclass(frozen=True)
class Setting:
    """One config template of a task.

    Args:
        key (str): unique key, e.g. ``'coco_cascade'`` (records and the leaderboard use it).
        suffix (str): config file name ``{model}_{suffix}.py``.
        template (str): file in ``configs/_base_``.
        title (str): how the leaderboard names it. Defaults to ``key``.
        pretrained (str, optional): the classification weights it starts from
            (``checkpoints/{model}_{pretrained}.pth``); None: trains from scratch.
        default (bool): written for every model (else only for ``extra_for`` models).
        in_table (bool): the setting of the paper's table for its task.
        head_channels (dict, optional): config key -> :data:`ChannelSource`; overrides the
            task's.
        paper_table (str): ``'main'`` or ``'in22k'``: which of the paper's tables reports it.
    """
    key: str
    suffix: str
    template: str
    title: str = ''
    pretrained: Optional[str] = 'in1k'
    default: bool = True
    in_table: bool = False
    head_channels: Optional[Mapping[str, ChannelSource]] = None
    paper_table: str = 'main'


@dataclass(frozen=True)
class Task:
    """A dataset family and the toolbox that evaluates it.

    Args:
        name (str): ``'imagenet'`` / ``'coco'`` / ``'ade20k'``.
        title (str): e.g. ``'ImageNet'``.
        scope (str): the OpenMMLab toolbox (registry scope): ``'mmpretrain'``, ...
        dataset (str): dataset name in metafiles, e.g. ``'ImageNet-1k'``.
        input_hw (tuple): (H, W) of the table's FLOPs setting.
        metrics (tuple): its :class:`Metric`\\ s, table order.
        settings (tuple): its :class:`Setting`\\ s, leaderboard order.
        head_channels (dict): config key -> :data:`ChannelSource` of the channels the neck /
            heads read from the backbone.
        flop_protocol (str): how :mod:`harness.complexity` runs the model for counting:
            ``'classifier'``, ``'detector'`` (mmdet 2.x ``forward_dummy``), ``'segmentor'``.
        toy_scale (float): toy input size relative to the real one.
        toy_schedule (int): toy epochs (epoch-based tasks) or iterations.
    """
    name: str
    title: str
    scope: str
    dataset: str
    input_hw: Tuple[int, int]
    metrics: Tuple[Metric, ...]
    settings: Tuple[Setting, ...]
    head_channels: Mapping[str, ChannelSource] = field(default_factory=dict)
    flop_protocol: str = 'classifier'
    toy_scale: float = 1.0
    toy_schedule: int = 1

    @property
    def main_metric(self) -> Metric:
        return next(m for m in self.metrics if m.main)

    @property
    def table_setting(self) -> Setting:
        return next(s for s in self.settings if s.in_table)

    def metric(self, name: str) -> Optional[Metric]:
        return next((m for m in self.metrics if m.name == name or m.tta_name == name), None)

    def metric_names(self, tta: bool = False) -> Dict[str, Tuple[str, float]]:
        """toolbox key -> (record name, scale), as ``ResultRecordHook`` takes it."""
        return {
            m.key: ((m.tta_name or m.name) if tta else m.name, m.scale)
            for m in self.metrics if not tta or m.tta_name
        }


TASKS: Dict[str, Task] = {}


def register_task(task: Task) -> Task:
    if task.name in TASKS:
        raise ValueError(f'task {task.name!r} is already defined')
    _check_unique(task.settings)
    TASKS[task.name] = task
    return task


def add_setting(task: str, setting: Setting) -> Setting:
    """Add a setting (config template) to a task, e.g. a new detector or segmentor."""
    _check_unique(settings() + [setting])
    TASKS[task] = replace(TASKS[task], settings=TASKS[task].settings + (setting, ))
    return setting


def remove_setting(key: str) -> None:
    """Undo :func:`add_setting` (tests)."""
    task = task_of_setting(key)
    TASKS[task.name] = replace(task, settings=tuple(s for s in task.settings if s.key != key))


def _check_unique(new: List[Setting]) -> None:
    keys = [s.key for s in new]
    dup = {k for k in keys if keys.count(k) > 1}
    if dup:
        raise ValueError(f'setting key(s) defined twice: {", ".join(sorted(dup))}')


def settings() -> List[Setting]:
    return [s for t in TASKS.values() for s in t.settings]


def add_settings_argument(parser: argparse.ArgumentParser, help: str) -> None:
    """The ``--settings KEY ...`` option of the tools (alias ``--templates``), choices: every
    setting of :data:`TASKS`."""
    parser.add_argument(
        '--settings',
        '--templates',
        dest='settings',
        nargs='+',
        choices=[s.key for s in settings()],
        metavar='SETTING',
        help=f'{help}; one or more of: {", ".join(s.key for s in settings())}')


def get_setting(key: str) -> Setting:
    for s in settings():
        if s.key == key:
            return s
    raise KeyError(f'unknown setting {key!r}; known: {", ".join(s.key for s in settings())}')


def task_of_setting(key: str) -> Task:
    for t in TASKS.values():
        if any(s.key == key for s in t.settings):
            return t
    raise KeyError(f'unknown setting {key!r}')


def task_of_scope(scope: Optional[str]) -> Optional[Task]:
    return next((t for t in TASKS.values() if t.scope == scope), None)


def iter_settings(include_extra: bool = True) -> Iterator[Tuple[Task, Setting]]:
    for t in TASKS.values():
        for s in t.settings:
            if include_extra or s.default:
                yield t, s


def config_path(model: str, setting: str, root: Union[str, Path] = 'configs') -> Path:
    """``{root}/{task}/{model}_{suffix}.py``: where the config of ``model`` in a setting lives."""
    s = get_setting(setting)
    return Path(root) / task_of_setting(setting).name / f'{model}_{s.suffix}.py'


def identify(path: Union[str, Path]) -> Tuple[str, Optional[str]]:
    """(model, setting key) of a config path made by :func:`config_path`; (stem, None) for
    any other file."""
    path = Path(path)
    candidates = sorted(settings(), key=lambda s: -len(s.suffix))
    for s in candidates:
        if path.parent.name == task_of_setting(s.key).name and path.stem.endswith('_' + s.suffix):
            return path.stem[:-len(s.suffix) - 1], s.key
    return path.stem, None


def head_channels(setting: str) -> Mapping[str, ChannelSource]:
    s = get_setting(setting)
    return s.head_channels if s.head_channels is not None else task_of_setting(
        setting).head_channels


# The three tasks of the paper's table. Rows of a table: kept as written by yapf: disable.
# yapf: disable
register_task(Task(
    name='imagenet', title='ImageNet', scope='mmpretrain', dataset='ImageNet-1k',
    input_hw=(224, 224),
    metrics=(
        Metric('top1', 'accuracy/top1', 'Top-1', main=True, paper_title='top-1',
               metafile=('Image Classification', 'Top 1 Accuracy')),
        Metric('top5', 'accuracy/top5', 'Top-5', in_table=False,
               metafile=('Image Classification', 'Top 5 Accuracy')),
        Metric('real_top1', 'real/top1', 'ReaL', paper_title='ReaL',
               metafile=('Image Classification', 'ReaL Top 1 Accuracy')),
    ),
    settings=(
        Setting('imagenet', 'in1k', 'imagenet_in1k.py', 'ImageNet-1k', pretrained=None,
                in_table=True),
        # the paper's second table: ImageNet-22k pre-training, then ImageNet-1k / ADE20K
        Setting('imagenet_in22k', 'in22k', 'imagenet_in22k.py', 'ImageNet-22k', pretrained=None,
                default=False, paper_table='in22k'),
        Setting('imagenet_in22k_ft', 'in22k-ft-in1k', 'imagenet_in22k_ft.py',
                'ImageNet-22k -> 1k', pretrained='in22k', default=False, paper_table='in22k'),
    ),
    head_channels={'head.in_channels': 3},
    toy_scale=64 / 224, toy_schedule=3,
))

register_task(Task(
    name='coco', title='COCO', scope='mmdet', dataset='COCO', input_hw=(800, 1280),
    metrics=(
        Metric('ap_box', 'coco/bbox_mAP', 'AP box', scale=100., main=True, paper_title='APbox',
               metafile=('Object Detection', 'box AP')),
        Metric('ap_mask', 'coco/segm_mAP', 'AP mask', scale=100., paper_title='APmask',
               metafile=('Instance Segmentation', 'mask AP')),
    ),
    settings=(
        Setting('coco_maskrcnn', 'maskrcnn', 'coco_maskrcnn_1x.py', 'Mask R-CNN 1x'),
        Setting('coco_cascade', 'cascade_maskrcnn_3x', 'coco_cascade_maskrcnn_3x.py',
                'Cascade Mask R-CNN 3x', in_table=True),
    ),
    head_channels={'neck.in_channels': 'all'},
    flop_protocol='detector', toy_scale=0.25, toy_schedule=12,
))

register_task(Task(
    name='ade20k', title='ADE20K', scope='mmseg', dataset='ADE20K', input_hw=(512, 2048),
    metrics=(
        Metric('miou', 'mIoU', 'mIoU', main=True, paper_title='mIoU',
               metafile=('Semantic Segmentation', 'mIoU'), tta_name='miou_ms',
               tta_metafile='mIoU(ms+flip)'),
    ),
    settings=(
        Setting('ade20k', 'upernet', 'ade20k_upernet_160k.py', 'UperNet 160k', in_table=True),
        Setting('ade20k_in22k', 'upernet_in22k', 'ade20k_upernet_160k.py', 'UperNet 160k (22k)',
                pretrained='in22k', default=False, paper_table='in22k'),
    ),
    head_channels={'decode_head.in_channels': 'all', 'auxiliary_head.in_channels': 2},
    flop_protocol='segmentor', toy_scale=0.25, toy_schedule=16,
))
# yapf: enable
