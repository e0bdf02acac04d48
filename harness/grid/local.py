"""``tools/grid.py submit --launcher local``: the same DAG on this machine, one run after the
other with ``tools/dist_train.sh``, then the leaderboard. Done runs are skipped, interrupted
ones resume (``--auto-resume``), children of a failed run are blocked. Each run's output goes
to its log; the console gets one line per run and, while it trains, a progress line from
mmengine's logger lines (iteration / total, loss, the run's ETA and the grid's)."""
import os
import re
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

from ..progress import format_seconds
from .launch import (PARENT_CHECKPOINT, REPO_ROOT, TOOLS, LaunchOptions, grid_lock,
                     leaderboard_command, parent_checkpoint, train_args)
from .plan import Run
from .state import RunState, collect, counts, last_error_line, write_job

LOG = 'grid-local.log'
#: mmengine's logger lines: ``Epoch(train)  [1][10/50]  ... eta: 0:01:23 ... loss: 2.0794`` and
#: ``Iter(train) [ 4/12] ...``; validation lines alike
_LOGGER_LINE = re.compile(
    r'\b(?:Epoch|Iter)\((train|val|test)\)\s+(?:\[(\d+)\])?\[\s*(\d+)/\s*(\d+)\]')
_FIELD = re.compile(r'\b(eta|loss): (\S+)')


def progress_of(line: str) -> Optional[str]:
    """``'train epoch 1 [10/50], loss 2.079, run ETA 0:01:23'`` for a logger line of mmengine's
    progress, else None."""
    found = _LOGGER_LINE.search(line)
    if not found:
        return None
    mode, epoch, i, n = found.groups()
    fields = dict(_FIELD.findall(line[found.end():]))
    text = f'{mode} ' + (f'epoch {epoch} ' if epoch else '') + f'[{i}/{n}]'
    if 'loss' in fields:
        text += f', loss {float(fields["loss"]):.3f}'
    if 'eta' in fields:
        text += f', run ETA {fields["eta"]}'
    return text


class GridClock:
    """The grid's ETA: the runs still to train, each at the mean time of the runs of its task
    trained so far (of any task before that)."""

    def __init__(self, runs: List[Run]) -> None:
        self.pending = {r.key: r.task for r in runs}
        self.took: Dict[str, List[float]] = {}

    def finished(self, run: Run, seconds: Optional[float]) -> None:
        self.pending.pop(run.key, None)
        if seconds is not None:
            self.took.setdefault(run.task, []).append(seconds)

    def eta(self, current: Optional[Run] = None) -> Optional[float]:
        """Seconds left for the pending runs other than ``current``; None before any run
        finished."""
        every = [t for times in self.took.values() for t in times]
        if not every:
            return None
        total = 0.0
        for key, task in self.pending.items():
            if current is None or key != current.key:
                times = self.took.get(task) or every
                total += sum(times) / len(times)
        return total


def free_port() -> int:
    """A TCP port nobody listens on now (torchrun's rendezvous; other runs may use 29500)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run_local(runs: List[Run],
              opts: LaunchOptions,
              echo: Callable[[str], None] = print) -> List[RunState]:
    """Train the runs in plan order on this machine.

    Args:
        runs (list[Run]): the plan, parents first.
        opts (LaunchOptions): the run options (the Slurm ones are ignored).
        echo (callable): prints a line per run.

    Returns:
        list[RunState]: the state of every run at the end.
    """
    by_key = {r.key: r for r in runs}
    clock = GridClock(runs)
    with grid_lock(opts.work_dirs):
        for i, run in enumerate(runs, 1):
            state = collect([r for r in runs if r.key in (run.key, run.parent)], slurm={})
            st = {s.run.key: s for s in state}[run.key]
            prefix = f'[{i}/{len(runs)}] {run.key}'
            if st.state in ('done', 'blocked'):
                echo(f'{prefix}: {st.state}, skipped ({st.detail})')
                clock.finished(run, None)
                continue
            start = time.time()
            _train(run, opts, by_key.get(run.parent), prefix, echo, clock)
            clock.finished(run, time.time() - start)
        states = collect(runs, slurm={})
        echo(f'grid: {counts(states)}')
        if opts.leaderboard and all(s.state == 'done' for s in states):
            proc = subprocess.run(leaderboard_command(opts), cwd=REPO_ROOT)
            echo(f'leaderboard: {"written to " if proc.returncode == 0 else "FAILED for "}'
                 f'{Path(opts.work_dirs) / "leaderboard"}')
    return states


def _train(run: Run, opts: LaunchOptions, parent: Optional[Run], prefix: str,
           echo: Callable[[str], None], clock: GridClock) -> int:
    work_dir = Path(run.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    log = work_dir.absolute() / LOG
    args = train_args(run, opts)
    if parent is not None:
        ckpt = parent_checkpoint(parent.work_dir)
        if ckpt is None:
            echo(f'{prefix}: FAILED: the parent run {parent.key} left no checkpoint')
            return 1
        args = [a.replace(PARENT_CHECKPOINT, ckpt) for a in args]
    resumed = (work_dir / 'last_checkpoint').is_file()
    echo(f'{prefix}: {"resuming" if resumed else "training"} ({run.processes} process'
         f'{"es" if run.processes > 1 else ""}; log {log})')
    common = dict(launcher='local', log=str(log), host=socket.gethostname())
    write_job(work_dir, pid=os.getpid(), **common)
    env: Dict[str, str] = dict(os.environ, PYTHON=opts.python, PORT=str(free_port()))
    start = time.time()
    with open(log, 'a') as f:
        f.write(f'grid: {run.key}: local run at {time.strftime("%Y-%m-%dT%H:%M:%S")}\n')
        f.flush()
        proc = subprocess.Popen(
            [str(TOOLS / 'dist_train.sh'), run.config,
             str(run.processes), *args],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors='replace')
        assert proc.stdout is not None
        for line in proc.stdout:
            f.write(line)
            f.flush()
            progress = progress_of(line)
            if progress:
                left = clock.eta(current=run)
                grid = '' if left is None else f'; grid ETA ~{format_seconds(left)} after it'
                echo(f'{prefix}: {progress}{grid}')
        proc.wait()
        f.write(f'grid: {run.key}: exit code {proc.returncode}\n')
    write_job(work_dir, pid=None, exit_code=proc.returncode, **common)
    if proc.returncode == 0:
        echo(f'{prefix}: done in {time.time() - start:.0f} s')
    else:
        echo(f'{prefix}: FAILED (exit {proc.returncode}): {last_error_line(log)}')
    return proc.returncode
