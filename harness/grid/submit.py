"""``tools/grid.py submit --launcher slurm``: one ``sbatch`` per run, chained by
``--dependency=afterok:<parent job>``, and a last job that regenerates the leaderboard once all
of them succeeded.

A run whose ``result.json`` exists is skipped; a run with a queued or running job keeps it (a
second submission adds nothing); any other run (never submitted, failed, cancelled, killed with
its node) gets a new job, which resumes from the newest good checkpoint of its work dir. A job
still queued behind a parent job that failed is cancelled and replaced.
"""
import math
import shlex
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

from backbones.engine import atomic_write
from ..errors import ToolError
from .launch import (PARENT_CHECKPOINT, REPO_ROOT, TOOLS, LaunchOptions, grid_lock,
                     leaderboard_command, train_args)
from .plan import Run
from .slurm import SlurmJob, query_jobs, sbatch, scancel
from .state import ALIVE, JOB_FILE, RunState, collect, counts, read_job, write_job

SCRIPT = 'grid_job.sh'
LEADERBOARD_DIR = 'leaderboard'


def job_name(run: Run) -> str:
    """``grid-<config stem>``: the Slurm job name of a run."""
    return f'grid-{Path(run.config).stem}'


def _quote(args: List[str]) -> str:
    """Shell words; the parent checkpoint placeholder becomes ``$PARENT_CKPT``."""
    return ' '.join(shlex.quote(a) for a in args).replace(PARENT_CHECKPOINT, "'\"$PARENT_CKPT\"'")


def resources(run_processes: int, opts: LaunchOptions) -> Dict[str, str]:
    """Tasks, nodes, CPUs and GRES of a run's job (sbatch) and its step (slurm_train.sh)."""
    per_node = min(run_processes, opts.gpus_per_node)
    gres = f'gpu:{per_node}' if opts.gres is None else opts.gres
    return dict(
        GPUS=str(run_processes),
        GPUS_PER_NODE=str(per_node),
        CPUS_PER_TASK=str(opts.cpus_per_task),
        GRES=gres,
        NODES=str(math.ceil(run_processes / per_node)))


def job_script(run: Run, opts: LaunchOptions, parent: Optional[Run]) -> str:
    """The batch script of a run: ``tools/slurm_train.sh`` in the job's allocation, with the
    parent's checkpoint read when the job starts (the parent has finished by then)."""
    res = resources(run.processes, opts)
    lines = [
        '#!/usr/bin/env bash',
        f'# {run.key}: written by tools/grid.py submit (the job id is in {JOB_FILE})',
        'set -uo pipefail',
        f'cd {shlex.quote(str(REPO_ROOT))}',
        f'echo "grid: {run.key}: job ${{SLURM_JOB_ID:-?}} on $(hostname) at $(date -Is)'
        ' (restart ${SLURM_RESTART_COUNT:-0})"',
    ]
    if parent is not None:
        last = shlex.quote(str(Path(parent.work_dir).absolute() / 'last_checkpoint'))
        lines += [
            f'PARENT_CKPT=$(cat {last} 2>/dev/null) || {{',
            f'    echo "grid_job.sh: error: the parent run {parent.key} left no checkpoint '
            f'({last})" >&2; exit 1; }}',
        ]
    env = ' '.join(f'{k}={shlex.quote(v)}' for k, v in res.items() if k != 'NODES')
    env += f' SRUN_ARGS={shlex.quote(opts.srun_args)} PYTHON={shlex.quote(opts.python)}'
    step = [str(TOOLS / 'slurm_train.sh'), opts.partition or '', job_name(run), run.config]
    lines += [
        f'{env} \\',
        '    ' + _quote(step + train_args(run, opts)),
        'rc=$?',
        f'echo "grid: {run.key}: exit code $rc at $(date -Is)"',
        'exit $rc',
    ]
    return '\n'.join(lines) + '\n'


def sbatch_args(run_processes: int, opts: LaunchOptions, name: str, work_dir: Path,
                after: List[str]) -> List[str]:
    """The ``sbatch`` options of a job.

    Args:
        run_processes (int): its tasks (one per GPU).
        opts (LaunchOptions): partition, GRES, CPUs, the user's ``sbatch`` options (last, so
            that they win).
        name (str): job name.
        work_dir (Path): where its log goes (``grid-<job id>.log``).
        after (list[str]): job ids it waits for (``afterok``).

    Returns:
        list[str]: the options.
    """
    res = resources(run_processes, opts)
    args = [
        f'--job-name={name}',
        f'--output={Path(work_dir).absolute()}/grid-%j.log',
        '--open-mode=append',  # a job Slurm requeues keeps one log
        f'--chdir={REPO_ROOT}',
        f'--nodes={res["NODES"]}',
        f'--ntasks={res["GPUS"]}',
        f'--ntasks-per-node={res["GPUS_PER_NODE"]}',
        f'--cpus-per-task={res["CPUS_PER_TASK"]}',
        '--kill-on-invalid-dep=yes',  # a child of a failed parent ends instead of waiting
    ]
    if opts.partition:
        args.append(f'--partition={opts.partition}')
    if res['GRES']:
        args.append(f'--gres={res["GRES"]}')
    if after:
        args.append('--dependency=afterok:' + ':'.join(after))
    return args + list(opts.sbatch_args)


def submit_slurm(runs: List[Run],
                 opts: LaunchOptions,
                 echo: Callable[[str], None] = print) -> Dict[str, str]:
    """Submit the runs that need a job (see the module docstring) and the leaderboard job.

    Args:
        runs (list[Run]): the plan, parents first.
        opts (LaunchOptions): how to submit.
        echo (callable): prints a line per run.

    Returns:
        dict: run key -> id of its queued or running job (new or kept).
    """
    by_key = {r.key: r for r in runs}
    live: Dict[str, str] = {}
    with grid_lock(opts.work_dirs):
        states = {s.run.key: s for s in collect(runs)}
        for run in runs:
            st = states[run.key]
            if st.state == 'done':
                echo(f'{run.key}: done, skipped ({st.detail})')
                continue
            if st.job and st.job.get('launcher') == 'local' and st.alive:
                raise ToolError(f'{run.key} is running under --launcher local (pid '
                                f'{st.job.get("pid")}); wait for it or stop it first')
            after = [live[run.parent]] if run.parent in live else []
            if run.parent and not after and states[run.parent].state != 'done':
                raise ToolError(f'{run.key}: its parent {run.parent} is neither done nor queued')
            if st.alive:
                # still waiting for (or started after) the parent job that is queued now, or
                # the parent has succeeded: keep it
                parent_done = run.parent is not None and states[run.parent].state == 'done'
                same_parent = list(st.job.get('after') or []) == after
                if st.state != 'blocked' and (same_parent or parent_done):
                    live[run.key] = str(st.job['job_id'])
                    echo(f'{run.key}: {st.state}, job {st.job["job_id"]} kept ({st.detail})')
                    continue
                scancel(st.job['job_id'])
                echo(f'{run.key}: cancelled job {st.job["job_id"]} (it waited for a parent '
                     'job that failed or was replaced)')
            live[run.key] = _submit_run(run, opts, by_key.get(run.parent), after)
            resumed = (Path(run.work_dir) / 'last_checkpoint').is_file()
            echo(f'{run.key}: submitted job {live[run.key]}'
                 f'{" after " + after[0] if after else ""} '
                 f'({"resumes from its last checkpoint" if resumed else "starts"}; '
                 f'log {Path(run.work_dir) / ("grid-" + live[run.key] + ".log")})')
        if opts.leaderboard:
            _leaderboard_job(opts, list(live.values()), echo)
    return live


def _submit_run(run: Run, opts: LaunchOptions, parent: Optional[Run], after: List[str]) -> str:
    work_dir = Path(run.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    script = work_dir / SCRIPT
    atomic_write(script, job_script(run, opts, parent))
    job_id = sbatch(sbatch_args(run.processes, opts, job_name(run), work_dir, after), str(script))
    write_job(
        work_dir,
        launcher='slurm',
        job_id=job_id,
        after=after,
        log=str(work_dir.absolute() / f'grid-{job_id}.log'),
        script=str(script.absolute()))
    return job_id


def _leaderboard_job(opts: LaunchOptions, after: List[str], echo: Callable[[str], None]) -> None:
    """A one-CPU job after every queued run that regenerates the leaderboard; with nothing
    queued (every run done), the leaderboard is regenerated now."""
    import subprocess
    folder = Path(opts.work_dirs) / LEADERBOARD_DIR
    folder.mkdir(parents=True, exist_ok=True)
    old = read_job(folder)
    old_live = old and old.get('launcher') == 'slurm' and query_jobs([old['job_id']]).get(
        str(old['job_id']))
    if old_live and old_live.state in ALIVE:
        # it waits for every job queued now (the others have succeeded: a failed one would
        # have ended it)
        if set(after) <= set(old.get('after') or []):
            echo(f'leaderboard: job {old["job_id"]} kept')
            return
        scancel(old['job_id'])
    cmd = leaderboard_command(opts)
    if not after:
        proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
        echo(f'leaderboard: {"written to " + str(folder) if proc.returncode == 0 else "failed"}'
             f'{"" if proc.returncode == 0 else ": " + proc.stderr.strip()[-500:]}')
        return
    script = folder / SCRIPT
    atomic_write(
        script, '#!/usr/bin/env bash\n# written by tools/grid.py submit\nset -euo pipefail\n'
        f'cd {shlex.quote(str(REPO_ROOT))}\n{shlex.join(cmd)}\n')
    one = LaunchOptions(**{**opts.__dict__, 'gres': '', 'cpus_per_task': 1})
    job_id = sbatch(sbatch_args(1, one, 'grid-leaderboard', folder, after), str(script))
    write_job(
        folder,
        launcher='slurm',
        job_id=job_id,
        after=after,
        log=str(folder.absolute() / f'grid-{job_id}.log'))
    echo(f'leaderboard: job {job_id} after {len(after)} job(s)')


def wait(runs: List[Run],
         opts: LaunchOptions,
         poll: float = 30,
         echo: Callable[[str], None] = print) -> List[RunState]:
    """Poll until no job of the grid is queued or running (the leaderboard job included),
    printing each change of state; returns the final states."""
    seen: Dict[str, str] = {}
    folder = Path(opts.work_dirs) / LEADERBOARD_DIR
    while True:
        states = collect(runs)
        for st in states:
            change = f'{st.state} {st.job.get("job_id") if st.job else ""}'
            if seen.get(st.run.key) != change:  # a new state or job, not a longer run time
                seen[st.run.key] = change
                echo(f'{st.run.key}: {st.state}: {st.detail}')
        board = read_job(folder)
        board_job: Optional[SlurmJob] = query_jobs([board['job_id']]).get(str(
            board['job_id'])) if board and board.get('launcher') == 'slurm' else None
        board_alive = (
            board_job is not None and board_job.state in ALIVE
            and board_job.reason != 'DependencyNeverSatisfied')
        # a job that waits for a failed parent never starts (where --kill-on-invalid-dep is
        # not honoured it stays queued): nothing to wait for
        waiting = [st for st in states if st.alive and st.state != 'blocked']
        if not waiting and not board_alive:
            echo(f'grid: {counts(states)}')
            return states
        time.sleep(poll)
