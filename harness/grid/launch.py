"""What both launchers share: the options of a submission, the ``tools/train.py`` arguments of
a run, the leaderboard command and the lock that keeps two submissions of one grid apart."""
import contextlib
import fcntl
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, List, Optional

from ..errors import ToolError
from ..tasks import TASKS, get_setting
from .plan import Run

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS = REPO_ROOT / 'tools'
#: stands for the parent's checkpoint in :func:`train_args` until a launcher resolves it
PARENT_CHECKPOINT = '{parent_checkpoint}'
LOCK_FILE = '.grid.lock'


@dataclass
class LaunchOptions:
    """How the runs of a grid are started.

    Args:
        work_dirs (Path): root of the runs' work dirs (the leaderboard reads it).
        toy (bool): toy runs (``--toy``). Defaults to False.
        toy_data (str, optional): folder with one toy dataset per task (``<toy_data>/<task>``).
        seed (int, optional): ``--seed`` of every run.
        deterministic (bool): ``--deterministic``. Defaults to False.
        amp (bool): ``--amp``. Defaults to False.
        cfg_options (list[str]): ``KEY=VALUE`` for every run, or ``TASK:KEY=VALUE`` /
            ``SETTING:KEY=VALUE`` for the runs of one task or setting.
        partition (str, optional): Slurm partition (default: the cluster's default).
        gpus_per_node (int): processes per node. Defaults to 8.
        cpus_per_task (int): CPUs per process. Defaults to 5.
        gres (str, optional): ``--gres`` per node; None: ``gpu:<processes on the node>``;
            '' for none (a CPU partition: the processes use gloo).
        sbatch_args (list[str]): more ``sbatch`` options (account, QoS, time limit, ...).
        srun_args (str): more ``srun`` options for the job step.
        python (str): the interpreter of the runs. Defaults to this one.
        leaderboard (bool): regenerate the leaderboard once every run is done.
    """
    work_dirs: Path
    toy: bool = False
    toy_data: Optional[str] = None
    seed: Optional[int] = None
    deterministic: bool = False
    amp: bool = False
    cfg_options: List[str] = field(default_factory=list)
    partition: Optional[str] = None
    gpus_per_node: int = 8
    cpus_per_task: int = 5
    gres: Optional[str] = None
    sbatch_args: List[str] = field(default_factory=list)
    srun_args: str = ''
    python: str = sys.executable
    leaderboard: bool = True


def check_cfg_options(options: List[str]) -> None:
    """Every option is ``KEY=VALUE``, a scope prefix names a task or a setting."""
    for option in options:
        key = option.split('=', 1)[0]
        if '=' not in option or not key:
            raise ToolError(f'--cfg-options {option!r}: expected KEY=VALUE or TASK:KEY=VALUE')
        if ':' in key:
            scope = key.split(':', 1)[0]
            try:
                get_setting(scope) if scope not in TASKS else None
            except KeyError:
                raise ToolError(f'--cfg-options {option!r}: {scope!r} is neither a task '
                                f'({", ".join(TASKS)}) nor a setting')


def options_for(run: Run, options: List[str]) -> List[str]:
    """The ``--cfg-options`` of one run: the unscoped ones and those scoped to its task or
    setting (prefix dropped)."""
    out = []
    for option in options:
        key = option.split('=', 1)[0]
        if ':' not in key:
            out.append(option)
            continue
        scope, rest = option.split(':', 1)
        if scope in (run.task, run.setting):
            out.append(rest)
    return out


def train_args(run: Run, opts: LaunchOptions) -> List[str]:
    """``tools/train.py`` arguments of a run (after the config): its work dir, ``--auto-resume``
    (a run that was interrupted continues from its newest good checkpoint; a fresh one starts),
    the toy options, and the parent's checkpoint as :data:`PARENT_CHECKPOINT`: ``--toy-
    pretrained`` for a toy run, the backbone's ``init_cfg.checkpoint`` for a full-scale one."""
    args = ['--work-dir', str(Path(run.work_dir).absolute()), '--auto-resume']
    if opts.toy:
        args.append('--toy')
        if opts.toy_data:
            args += ['--toy-data', str(Path(opts.toy_data).absolute() / run.task)]
    if opts.seed is not None:
        args += ['--seed', str(opts.seed)]
    if opts.deterministic:
        args.append('--deterministic')
    if opts.amp:
        args.append('--amp')
    cfg_options = options_for(run, opts.cfg_options) + list(run.cfg_options)
    if run.parent:
        if opts.toy:
            args += ['--toy-pretrained', PARENT_CHECKPOINT]
        else:
            cfg_options.append(f'model.backbone.init_cfg.checkpoint={PARENT_CHECKPOINT}')
    if cfg_options:
        args += ['--cfg-options', *cfg_options]
    return args


def parent_checkpoint(parent_work_dir: Path) -> Optional[str]:
    """The last checkpoint of a finished parent run (its ``last_checkpoint`` file)."""
    last = Path(parent_work_dir) / 'last_checkpoint'
    if not last.is_file():
        return None
    path = Path(last.read_text().strip())
    path = path if path.is_absolute() else REPO_ROOT / path
    return str(path) if path.is_file() else None


def leaderboard_command(opts: LaunchOptions) -> List[str]:
    """``tools/leaderboard.py`` over the grid's work dirs, written to ``<work dirs>/leaderboard``
    (a subprocess: the leaderboard is its own tool)."""
    root = Path(opts.work_dirs).absolute()
    cmd = [
        opts.python,
        str(TOOLS / 'leaderboard.py'), '--work-dirs',
        str(root), '--out',
        str(root / 'leaderboard')
    ]
    return cmd + (['--toy'] if opts.toy else [])


@contextlib.contextmanager
def grid_lock(work_dirs: Path) -> Iterator[None]:
    """Hold ``<work dirs>/.grid.lock`` while submitting: a second submission of the same grid
    waits, then sees the jobs of the first (no duplicates)."""
    Path(work_dirs).mkdir(parents=True, exist_ok=True)
    with open(Path(work_dirs) / LOCK_FILE, 'a') as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f'waiting for another submission of {work_dirs} to finish', file=sys.stderr)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
