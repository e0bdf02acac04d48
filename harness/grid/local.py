"""``tools/grid.py submit --launcher local``: the same DAG on this machine, one run after the
other with ``tools/dist_train.sh``, then the leaderboard. Done runs are skipped, interrupted
ones resume (``--auto-resume``), children of a failed run are blocked."""
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, Dict, List

from .launch import (PARENT_CHECKPOINT, REPO_ROOT, TOOLS, LaunchOptions, grid_lock,
                     leaderboard_command, parent_checkpoint, train_args)
from .plan import Run
from .state import RunState, collect, counts, last_error_line, write_job

LOG = 'grid-local.log'


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
    with grid_lock(opts.work_dirs):
        for i, run in enumerate(runs, 1):
            state = collect([r for r in runs if r.key in (run.key, run.parent)], slurm={})
            st = {s.run.key: s for s in state}[run.key]
            prefix = f'[{i}/{len(runs)}] {run.key}'
            if st.state in ('done', 'blocked'):
                echo(f'{prefix}: {st.state}, skipped ({st.detail})')
                continue
            _train(run, opts, by_key.get(run.parent), prefix, echo)
        states = collect(runs, slurm={})
        echo(f'grid: {counts(states)}')
        if opts.leaderboard and all(s.state == 'done' for s in states):
            proc = subprocess.run(leaderboard_command(opts), cwd=REPO_ROOT)
            echo(f'leaderboard: {"written to " if proc.returncode == 0 else "FAILED for "}'
                 f'{Path(opts.work_dirs) / "leaderboard"}')
    return states


def _train(run: Run, opts: LaunchOptions, parent: Run, prefix: str, echo: Callable[[str],
                                                                                   None]) -> int:
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
        proc = subprocess.run([str(TOOLS / 'dist_train.sh'), run.config,
                               str(run.processes), *args],
                              cwd=REPO_ROOT,
                              env=env,
                              stdout=f,
                              stderr=subprocess.STDOUT)
        f.write(f'grid: {run.key}: exit code {proc.returncode}\n')
    write_job(work_dir, pid=None, exit_code=proc.returncode, **common)
    if proc.returncode == 0:
        echo(f'{prefix}: done in {time.time() - start:.0f} s')
    else:
        echo(f'{prefix}: FAILED (exit {proc.returncode}): {last_error_line(log)}')
    return proc.returncode
