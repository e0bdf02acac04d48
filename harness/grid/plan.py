"""The benchmark grid as a DAG of runs, derived from the task table.

Each run is one config (``model`` x setting) trained into its own work dir. A setting that
starts from classification weights (:attr:`harness.tasks.Setting.pretrained`) depends on the
run that trains them: the ImageNet-1k run for COCO / ADE20K, the ImageNet-22k run for the
22k fine-tunes. Parents are always part of the plan. The cost of a run is the number of
iterations of its full-scale schedule times the seconds per iteration measured by a short
calibration run (``tools/grid.py calibrate``), or "unknown".
"""
import json
import math
import statistics
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from ..errors import ToolError
from ..tasks import TASKS, Setting, get_setting, settings, task_of_setting

#: images in the training split of each dataset class of the templates (epoch-based schedules
#: need them to count iterations); a dataset not listed leaves the cost "unknown"
TRAIN_IMAGES = {
    'ImageNet': 1_281_167,
    'ImageNet21k': 14_197_122,
    'CocoDataset': 117_266,  # train2017 without the images that have no annotation
    'ADE20KDataset': 20_210,
}
#: processes of a run when neither --gpus-per-job nor the config (auto_scale_lr) says
DEFAULT_PROCESSES = 8
#: calibration runs whose logged iteration times are skipped (warm-up, data loader start)
WARMUP_ENTRIES = 1


@dataclass(frozen=True)
class Schedule:
    """What a config says about its training schedule.

    Args:
        iterations (int, optional): iterations of the whole schedule at ``processes``
            processes; None when unknown (an epoch-based schedule on an unlisted dataset).
        processes (int): processes the schedule was written for (total batch / batch per
            process), or the ones asked for.
        by_epoch (bool): an epoch-based loop.
        length (int): epochs or iterations of the schedule.
        batch (int): samples per process and iteration.
    """
    iterations: Optional[int]
    processes: int
    by_epoch: bool
    length: int
    batch: int


@dataclass(frozen=True)
class Run:
    """One node of the grid.

    Args:
        model (str): zoo name.
        setting (str): setting key (:mod:`harness.tasks`).
        task (str): the setting's task.
        config (str): config file, relative to the repository root.
        work_dir (Path): where it trains (checkpoints, logs, ``result.json``, job files).
        parent (str, optional): :attr:`key` of the run whose checkpoint initialises it.
        processes (int): processes (GPUs) of its job.
        schedule (Schedule, optional): its full-scale schedule; None if the config could not
            be read.
        s_per_iter (float, optional): measured seconds per iteration (calibration).
        cfg_options (tuple[str]): ``KEY=VALUE`` config overrides of this run only.
    """
    model: str
    setting: str
    task: str
    config: str
    work_dir: Path
    parent: Optional[str]
    processes: int
    schedule: Optional[Schedule] = None
    s_per_iter: Optional[float] = None
    cfg_options: Tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """``model/setting``: the run's name in tables and job names."""
        return f'{self.model}/{self.setting}'

    @property
    def iterations(self) -> Optional[int]:
        return self.schedule.iterations if self.schedule else None

    @property
    def cost_s(self) -> Optional[float]:
        """Wall-clock seconds of the full-scale schedule; None when unknown."""
        if self.iterations is None or self.s_per_iter is None:
            return None
        return self.iterations * self.s_per_iter


def parent_setting(key: str) -> Optional[Setting]:
    """The setting that trains the weights ``key`` starts from: the setting trained from
    scratch whose suffix names them (``pretrained='in1k'`` -> the ``*_in1k`` setting); None for
    a setting trained from scratch or weights no setting trains."""
    source = get_setting(key).pretrained
    if source is None:
        return None
    return next((s for s in settings() if s.pretrained is None and s.suffix == source), None)


def choose_settings(model: str, tasks: Sequence[str], which: str = 'table') -> List[str]:
    """Setting keys of ``model`` on ``tasks``: the table's setting of each task (``'table'``) or
    every setting written for the model (``'all'``: with the 22k ones of the B models), plus
    the settings their weights come from, parents first."""
    from ..configgen import settings_for
    if which not in ('table', 'all'):
        raise ToolError(f'--settings must be table or all, got {which!r}')
    chosen = [
        k for k in settings_for(model)
        if task_of_setting(k).name in tasks and (which == 'all' or get_setting(k).in_table)
    ]
    closed: List[str] = []

    def add(key: str) -> None:
        parent = parent_setting(key)
        if parent is not None:
            add(parent.key)
        if key not in closed:
            closed.append(key)

    for key in chosen:
        add(key)
    order = {s.key: i for i, s in enumerate(settings())}
    return sorted(closed, key=lambda k: (_depth(k), order[k]))


def _depth(key: str) -> int:
    parent = parent_setting(key)
    return 0 if parent is None else 1 + _depth(parent.key)


def build_plan(models: Sequence[str],
               tasks: Sequence[str],
               which: str = 'table',
               work_dirs: Optional[str] = None,
               toy: bool = False,
               processes: Optional[int] = None,
               calibration: Optional[str] = None,
               read_configs: bool = True) -> List['Run']:
    """The runs of the grid, parents before children.

    Args:
        models (Sequence[str]): zoo names.
        tasks (Sequence[str]): task names (:data:`harness.tasks.TASKS`).
        which (str): ``'table'`` (the paper's table) or ``'all'``. Defaults to 'table'.
        work_dirs (str, optional): root of the work dirs (``<root>/<task>/<config stem>``).
            Defaults to what ``tools/train.py`` uses (``work_dirs``, ``work_dirs/toy``).
        toy (bool): toy runs. Defaults to False.
        processes (int, optional): processes per run; default: the config's (total batch of
            its ``auto_scale_lr`` / batch per process), 1 for toy runs.
        calibration (str, optional): work dirs of calibration runs to read s/iter from.
        read_configs (bool): read each setting's config for its schedule (needs the
            toolboxes). Defaults to True.

    Returns:
        list[Run]: in an order where every parent comes before its children.
    """
    from backbones.zoo import get_model_info
    from ..configgen import model_config
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ToolError(f'unknown task(s) {", ".join(unknown)}; known: {", ".join(TASKS)}')
    root = Path(work_dirs) if work_dirs else default_work_dirs(toy)
    schedules: Dict[str, Optional[Schedule]] = {}
    runs = []
    for model in models:
        try:
            get_model_info(model)
        except KeyError as exc:
            raise ToolError(exc.args[0])
        for key in choose_settings(model, tasks, which):
            config = str(model_config(model, key))
            if read_configs and key not in schedules:
                # the templates hold the schedule: one config per setting is enough
                schedules[key] = read_schedule(config, processes or (1 if toy else None))
            schedule = schedules.get(key)
            n = processes or (1 if toy else schedule.processes if schedule else DEFAULT_PROCESSES)
            parent = parent_setting(key)
            work_dir = run_work_dir(root, config)
            runs.append(
                Run(model=model,
                    setting=key,
                    task=task_of_setting(key).name,
                    config=config,
                    work_dir=work_dir,
                    parent=f'{model}/{parent.key}' if parent else None,
                    processes=n,
                    schedule=schedule,
                    s_per_iter=measured_s_per_iter(work_dir, config, calibration)))
    order = {s.key: i for i, s in enumerate(settings())}
    runs.sort(key=lambda r: (_depth(r.setting), order[r.setting], models.index(r.model)))
    return runs


def default_work_dirs(toy: bool) -> Path:
    """The root ``tools/train.py`` puts work dirs under (``work_dirs`` or ``work_dirs/toy``)."""
    from ..running.config import default_work_dir
    return Path(default_work_dir('configs/_task_/_config_.py', toy)).parent.parent


def run_work_dir(root: Path, config: str) -> Path:
    """``<root>/<task folder>/<config stem>``, as ``tools/train.py`` names it."""
    return Path(root) / Path(config).parent.name / Path(config).stem


def read_schedule(config: str, processes: Optional[int] = None) -> Optional[Schedule]:
    """The full-scale schedule of a config; None if it cannot be read."""
    from mmengine.config import Config
    try:
        cfg = Config.fromfile(config)
        train_cfg = dict(cfg.train_cfg)
        loader = cfg.train_dataloader
    except Exception:  # a plan is still a plan without costs
        return None
    batch = int(loader.get('batch_size', 1))
    base = (cfg.get('auto_scale_lr') or {}).get('base_batch_size')
    paper = max(1, int(base) // batch) if base else DEFAULT_PROCESSES
    n = processes or paper
    by_epoch = 'max_epochs' in train_cfg or train_cfg.get('type') == 'EpochBasedTrainLoop'
    if by_epoch:
        epochs = int(train_cfg.get('max_epochs', 1))
        dataset = loader.dataset
        while 'dataset' in dataset:
            dataset = dataset.dataset
        images = TRAIN_IMAGES.get(str(dataset.get('type', '')).split('.')[-1])
        iterations = epochs * math.ceil(images / (batch * n)) if images else None
        return Schedule(iterations, paper, True, epochs, batch)
    iters = int(train_cfg.get('max_iters', 0)) or None
    return Schedule(iters, paper, False, iters or 0, batch)


def measured_s_per_iter(work_dir: Path, config: str, calibration: Optional[str]) -> Optional[float]:
    """Median seconds per iteration logged by the calibration run of ``config`` (under
    ``calibration``), else by the run itself once it has logged some; None if neither."""
    candidates = [run_work_dir(Path(calibration), config)] if calibration else []
    for folder in candidates + [Path(work_dir)]:
        value = logged_s_per_iter(folder)
        if value is not None:
            return value
    return None


def logged_s_per_iter(work_dir: Path) -> Optional[float]:
    """Median of the ``time`` mmengine logged per training iteration in ``work_dir`` (its
    newest ``vis_data/scalars.json``), after the first entry; None without entries."""
    logs = sorted(Path(work_dir).glob('*/vis_data/scalars.json'))
    times: List[float] = []
    for path in reversed(logs):
        for line in path.read_text(errors='replace').splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and 'time' in entry and 'lr' in entry:
                times.append(float(entry['time']))
        if times:
            break
    if len(times) > WARMUP_ENTRIES:
        times = times[WARMUP_ENTRIES:]
    return statistics.median(times) if times else None


def calibration_runs(runs: Iterable[Run], root: str, iters: int, toy: bool = False) -> List[Run]:
    """Short runs that measure seconds per iteration, one per run, in ``root`` (outside the
    grid's work dirs: the leaderboard must not see them), without dependencies or pretrained
    weights: the first ``iters x batch x processes`` images for one epoch (epoch-based
    schedules) or ``iters`` iterations, no validation, a log line per iteration. Toy runs are
    short already and keep their schedule."""
    out = []
    for run in runs:
        options = ['default_hooks.logger.interval=1']
        schedule = run.schedule
        if not toy:
            if schedule is None or schedule.by_epoch:
                batch = schedule.batch if schedule else 1
                options += [
                    'train_cfg.max_epochs=1', 'train_cfg.val_interval=2',
                    f'train_dataloader.dataset.indices={iters * batch * run.processes}'
                ]
            else:
                options += [f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters + 1}']
            if get_setting(run.setting).pretrained:
                options.append('model.backbone.init_cfg=None')
        out.append(
            replace(
                run,
                work_dir=run_work_dir(Path(root), run.config),
                parent=None,
                cfg_options=tuple(options)))
    return out


def format_duration(seconds: float) -> str:
    """``42 min``, ``5.3 h``, ``12.1 d``."""
    if seconds < 3600:
        return f'{seconds / 60:.0f} min'
    if seconds < 3 * 86400:
        return f'{seconds / 3600:.1f} h'
    return f'{seconds / 86400:.1f} d'


def plan_rows(runs: Iterable[Run]) -> Tuple[List[str], List[List[str]]]:
    """Header and rows of the plan table."""
    header = ['run', 'after', 'config', 'work dir', 'procs', 'iterations', 's/iter', 'cost']
    rows = []
    for run in runs:
        cost = run.cost_s
        rows.append([
            run.key, run.parent or '-', run.config,
            str(run.work_dir),
            str(run.processes), f'{run.iterations:,}' if run.iterations else 'unknown',
            f'{run.s_per_iter:.3g}' if run.s_per_iter is not None else 'unknown',
            (f'{format_duration(cost)} ({cost * run.processes / 3600:,.0f} GPU-h)'
             if cost is not None else 'unknown')
        ])
    return header, rows


def format_table(header: List[str], rows: List[List[str]]) -> str:
    """A plain-text table, columns padded to their widest cell."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    lines = [
        '  '.join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip()
        for line in [header, ['-' * w for w in widths]] + rows
    ]
    return '\n'.join(lines)


def format_plan(runs: List[Run]) -> str:
    """The plan table and a total line."""
    header, rows = plan_rows(runs)
    known = [r.cost_s * r.processes for r in runs if r.cost_s is not None]
    total = (f'{len(runs)} runs; known cost {sum(known) / 3600:,.0f} GPU-h over {len(known)} '
             f'of them' if known else f'{len(runs)} runs; cost unknown (no calibration)')
    return format_table(header, rows) + '\n' + total
