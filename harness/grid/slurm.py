"""The Slurm commands the grid uses: ``sbatch`` to submit, ``squeue`` (and ``sacct`` where the
cluster keeps accounting) to ask about jobs, ``scancel`` to drop a stale job. Scheduling,
dependencies and requeueing are Slurm's."""
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from typing import Dict, List, Sequence

from ..errors import ToolError

#: seconds a Slurm command may take before the grid gives up on it
TIMEOUT = 60


class SlurmError(ToolError):
    """A Slurm command failed (the message has its stderr)."""


@dataclass(frozen=True)
class SlurmJob:
    """What Slurm says about one job.

    Args:
        job_id (str): the job id.
        state (str): ``PENDING``, ``RUNNING``, ``FAILED``, ``CANCELLED``, ``NODE_FAIL``, ...
        reason (str): why it is pending or ended (``Dependency``, ``DependencyNeverSatisfied``).
        nodes (str): its node list.
        elapsed (str): run time so far.
        exit_code (str): ``code:signal`` once ended ('' when unknown).
    """
    job_id: str
    state: str
    reason: str = ''
    nodes: str = ''
    elapsed: str = ''
    exit_code: str = ''


def _run(cmd: List[str], check: bool = True) -> subprocess.CompletedProcess:
    if not shutil.which(cmd[0]):
        raise SlurmError(f'{cmd[0]} not found: this machine has no Slurm client (use '
                         '--launcher local, or run where sbatch works)')
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        raise SlurmError(f'{cmd[0]} did not answer within {TIMEOUT} s')
    if check and proc.returncode != 0:
        msg = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f'exit code ' \
            f'{proc.returncode}'
        raise SlurmError(f'{shlex.join(cmd[:1])} failed: {msg}')
    return proc


def query_jobs(job_ids: Sequence[str]) -> Dict[str, SlurmJob]:
    """What Slurm knows about these jobs: the controller (``squeue -t all``: queued, running and
    recently ended jobs), then accounting (``sacct``) for older ones where the cluster keeps it.
    Jobs neither knows are left out. Raises :class:`SlurmError` when the controller does not
    answer (a run's state would be a guess)."""
    ids = sorted({str(i) for i in job_ids if i}, key=lambda i: (len(i), i))
    if not ids:
        return {}
    proc = _run([
        'squeue', '-h', '-t', 'all', '-j', ','.join(ids), '-O',
        'JobID:|,State:|,Reason:|,NodeList:|,TimeUsed:|'
    ],
                check=False)
    if proc.returncode != 0 and 'Invalid job id' not in proc.stderr:
        raise SlurmError(f'squeue failed: {proc.stderr.strip() or proc.returncode}')
    jobs = {}
    for line in proc.stdout.splitlines():
        parts = [p.strip() for p in line.split('|')]
        if len(parts) >= 5 and parts[0] in ids:
            jobs[parts[0]] = SlurmJob(parts[0], parts[1], parts[2], parts[3], parts[4])
    missing = [i for i in ids if i not in jobs]
    if missing and shutil.which('sacct'):
        acct = _run([
            'sacct', '-n', '-P', '-X', '-j', ','.join(missing), '-o',
            'JobID,State,Reason,NodeList,Elapsed,ExitCode'
        ],
                    check=False)
        for line in acct.stdout.splitlines() if acct.returncode == 0 else []:
            parts = line.split('|')
            if len(parts) >= 6 and parts[0] in missing:
                state = parts[1].split()[0]  # 'CANCELLED by 0'
                jobs[parts[0]] = SlurmJob(parts[0], state, parts[2], parts[3], parts[4], parts[5])
    return jobs


def sbatch(args: List[str], script: str) -> str:
    """Submit a batch script.

    Args:
        args (list[str]): ``sbatch`` options.
        script (str): the batch script.

    Returns:
        str: the job id.
    """
    proc = _run(['sbatch', '--parsable', *args, script])
    job_id = proc.stdout.strip().split(';')[0]
    if not job_id.isdigit():
        raise SlurmError(f'sbatch printed no job id: {proc.stdout.strip()!r}')
    return job_id


def scancel(job_id: str) -> None:
    """Cancel a job (one that has ended already is no error)."""
    _run(['scancel', str(job_id)], check=False)
