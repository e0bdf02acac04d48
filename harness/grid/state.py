"""The state of each run of a grid, from what Slurm and the run's work dir say.

There is no job database: a run's state is its ``result.json`` (done), the job named by the job
file in its work dir (``grid_job.json``, written at submission) as ``squeue`` / ``scontrol``
report it, and its log. A run whose parent failed or is blocked is blocked.
"""
import json
import os
import re
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, Iterable, List, Optional

from backbones.engine import atomic_write
from ..tasks import TASKS
from .plan import Run, format_table
from .slurm import SlurmJob, query_jobs

JOB_FILE = 'grid_job.json'
RESULT_FILE = 'result.json'
#: the states :func:`collect` reports, in the order a run goes through them
STATES = ('pending', 'running', 'done', 'failed', 'blocked')
#: Slurm job states of a job that has not ended
ALIVE = {
    'PENDING', 'CONFIGURING', 'RUNNING', 'COMPLETING', 'REQUEUED', 'REQUEUE_HOLD', 'REQUEUE_FED',
    'RESIZING', 'SUSPENDED', 'STOPPED', 'SIGNALING', 'STAGE_OUT'
}
#: log lines that say why a run failed, most specific first: Slurm's notice of a cancelled /
#: node-failed / timed-out job, a tool's input error, an exception, the launcher's summary, any
#: line with "error"
_ERROR_PATTERNS = [
    re.compile(r'\*\*\* (JOB|STEP) .* (CANCELLED|DUE TO|TIME LIMIT|PREEMPT)'),
    re.compile(r'^\S+\.py: error: '),
    re.compile(r'\b[A-Z]\w*(Error|Exception|Interrupt): '),
    re.compile(r'^\S+\.sh: error: '),
    re.compile(r'(?i)\b(error|killed|out of memory|oom)\b'),
]


@dataclass
class RunState:
    """A run and what is known about it.

    Args:
        run (Run): the run.
        state (str): one of :data:`STATES`.
        detail (str): metric, job id, log path and last error line, or why it is blocked.
        job (dict, optional): the run's job file.
        slurm (SlurmJob, optional): what Slurm says about that job.
    """
    run: Run
    state: str
    detail: str
    job: Optional[dict] = None
    slurm: Optional[SlurmJob] = None

    @property
    def alive(self) -> bool:
        """A job of the run is queued or running (submitting again must not duplicate it)."""
        if self.job is not None and self.job.get('launcher') == 'local':
            return _local_alive(self.job)
        return self.slurm is not None and self.slurm.state in ALIVE


def read_job(work_dir: Path) -> Optional[dict]:
    """The job file of a work dir (None if there is none or it cannot be read)."""
    try:
        data = json.loads((Path(work_dir) / JOB_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_job(work_dir: Path, **fields) -> dict:
    """Record the job of a run in its work dir (atomically): launcher, id, log, ..."""
    data = dict(fields, submitted=datetime.now(timezone.utc).isoformat(timespec='seconds'))
    atomic_write(Path(work_dir) / JOB_FILE, json.dumps(data, indent=1) + '\n')
    return data


def read_result(work_dir: Path) -> Optional[dict]:
    """The result record of a work dir (None if there is none or it cannot be read)."""
    try:
        data = json.loads((Path(work_dir) / RESULT_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def main_metric(run: Run, record: dict) -> str:
    """``top1=81.30``: the task's main metric in a result record."""
    metric = TASKS[run.task].main_metric.name
    value = (record.get('metrics') or {}).get(metric)
    return f'{metric}={value:.2f}' if isinstance(value, (int, float)) else f'{metric}=?'


def last_error_line(log: Path, tail_bytes: int = 200_000) -> str:
    """The line of a log that best says why the run failed: Slurm's cancel / node-failure /
    time-limit notice, a tool's ``error:`` line, an exception, any line with "error"; else the
    last line."""
    try:
        with open(log, 'rb') as f:
            f.seek(max(0, os.path.getsize(log) - tail_bytes))
            lines = [ln.strip() for ln in f.read().decode(errors='replace').splitlines()]
    except OSError:
        return ''
    lines = [ln for ln in lines if ln and not ln.startswith('grid: ')]
    for pattern in _ERROR_PATTERNS:
        for line in reversed(lines):
            if pattern.search(line):
                return line[:300]
    return lines[-1][:300] if lines else '(empty log)'


def _local_alive(job: dict) -> bool:
    if job.get('host') != socket.gethostname() or not job.get('pid'):
        return False
    try:
        os.kill(int(job['pid']), 0)
    except (OSError, ValueError):
        return False
    return True


def collect(runs: Iterable[Run], slurm: Optional[Dict[str, SlurmJob]] = None) -> List[RunState]:
    """The state of every run (parents before children, as planned).

    Args:
        runs (Iterable[Run]): the plan.
        slurm (dict, optional): job id -> :class:`SlurmJob`; default: asked from Slurm for the
            job ids of the job files (nothing when Slurm is not there).

    Returns:
        list[RunState]: one per run, in plan order.
    """
    runs = list(runs)
    jobs = {r.key: read_job(r.work_dir) for r in runs}
    if slurm is None:
        ids = [str(j['job_id']) for j in jobs.values() if j and j.get('launcher') == 'slurm']
        slurm = query_jobs(ids)
    states: Dict[str, RunState] = {}
    for run in runs:
        job = jobs[run.key]
        sj = slurm.get(str(job.get('job_id'))) if job and job.get('launcher') == 'slurm' else None
        parent = states.get(run.parent) if run.parent else None
        states[run.key] = _state(run, job, sj, parent)
    return [states[r.key] for r in runs]


def _state(run: Run, job: Optional[dict], sj: Optional[SlurmJob],
           parent: Optional[RunState]) -> RunState:
    record = read_result(run.work_dir)
    if record is not None:
        return RunState(run, 'done', f'{main_metric(run, record)}  {run.work_dir / RESULT_FILE}',
                        job, sj)
    if job and job.get('launcher') == 'local' and _local_alive(job):
        return RunState(run, 'running', f'local pid {job["pid"]}; log {job.get("log")}', job)
    alive = sj is not None and sj.state in ALIVE
    if alive and sj.state in ('RUNNING', 'COMPLETING'):
        return RunState(
            run, 'running', f'job {sj.job_id} on {sj.nodes or "?"} for {sj.elapsed}; '
            f'log {job.get("log")}', job, sj)
    if parent is not None and parent.state in ('failed', 'blocked'):
        return RunState(run, 'blocked', f'parent {parent.run.key} {parent.state}', job, sj)
    if alive and sj.reason == 'DependencyNeverSatisfied':
        return RunState(run, 'blocked', f'job {sj.job_id} waits for a parent job that failed', job,
                        sj)
    if alive:
        reason = f' ({sj.reason})' if sj.reason and sj.reason != 'None' else ''
        return RunState(run, 'pending', f'job {sj.job_id} {sj.state.lower()}{reason}', job, sj)
    if job is None:
        return RunState(run, 'pending', 'not submitted', job, sj)
    log = Path(job.get('log') or '')
    ended = f'{sj.state}' + (f' exit {sj.exit_code}' if sj.exit_code not in ('', '0:0') else '') \
        if sj is not None else ''
    where = f'{job.get("launcher", "?")} job {job.get("job_id") or job.get("pid", "?")}'
    if log.is_file() and log.stat().st_size:
        return RunState(
            run, 'failed', f'{where}{" " + ended if ended else ""}; log {log}: '
            f'{last_error_line(log)}', job, sj)
    return RunState(
        run, 'failed', f'{where} ended without output{" (" + ended + ")" if ended else ""}; '
        'submit again to rerun it', job, sj)


def format_states(states: List[RunState]) -> str:
    """One line per run: key, state, detail."""
    rows = [[s.run.key, s.state, s.detail] for s in states]
    return '\n'.join(format_table(['run', 'state', 'detail'], rows).splitlines()[2:])


def counts(states: Iterable[RunState]) -> str:
    """``3 done, 1 failed``: how many runs are in each state."""
    states = list(states)
    return ', '.join(f'{sum(s.state == k for s in states)} {k}' for k in STATES
                     if any(s.state == k for s in states))
