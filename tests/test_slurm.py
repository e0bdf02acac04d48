"""On a real Slurm (tools/local_slurm.sh, through the ``slurm_cluster`` fixture of conftest.py):
tools/slurm_train.sh / slurm_test.sh against dist_train.sh, and the grid of tools/grid.py --
submitted, chained, collected into the leaderboard -- with its faults: a parent that fails, a
job cancelled mid-run, a node that goes down, a second submission. Smallest toy settings: tiny
datasets, 1 process per grid run, a few iterations. Figures in docs/faults.md."""
import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Dict, List

import pytest
import torch

from harness.toy import ensure_toy_data

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / 'tools'
CONFIG = 'configs/imagenet/dwconv_t_in1k.py'
MODELS = ['dwconv_t', 'swin_t']
TASKS = ['imagenet', 'ade20k']
SIZES = {
    'imagenet': dict(num_classes=4, train_per_class=8, val_per_class=4, img_size=64),
    'ade20k': dict(train_images=4, val_images=2, min_size=64, max_size=96),
}
#: ImageNet: the toy schedule, 3 epochs of 2 iterations (a checkpoint each), validation at the
#: end; ADE20K: 2 iterations; a log line per iteration
OPTIONS = [
    'default_hooks.logger.interval=1', 'ade20k:train_cfg.max_iters=2',
    'ade20k:train_cfg.val_interval=2'
]

pytestmark = pytest.mark.slow


def env() -> Dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONUNBUFFERED='1')


def grid(command: str,
         work_dirs: Path,
         toy_data: Path,
         *extra: str,
         models=MODELS,
         tasks=TASKS,
         options=OPTIONS,
         timeout: float = 600) -> subprocess.CompletedProcess:
    args = [
        sys.executable,
        str(TOOLS / 'grid.py'), command, '--models', *models, '--tasks', *tasks, '--toy',
        '--work-dirs',
        str(work_dirs), '--gpus-per-job', '1'
    ]
    if command in ('submit', 'calibrate'):
        args += [
            '--launcher', 'slurm', '--partition', 'local', '--gres', '', '--cpus-per-task', '1',
            '--poll', '1', '--toy-data',
            str(toy_data), '--seed', '0', '--deterministic', *extra, '--cfg-options', *options
        ]
    else:
        args += list(extra)
    return subprocess.run(
        args, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=timeout)


def squeue(*fields: str) -> List[List[str]]:
    out = subprocess.run(['squeue', '-h', '-O', ','.join(f'{f}:|' for f in fields)],
                         capture_output=True,
                         text=True,
                         check=True).stdout
    return [[p.strip() for p in line.split('|')[:len(fields)]] for line in out.splitlines()]


def wait_for(predicate, timeout: float, what: str) -> float:
    start = time.time()
    while not predicate():
        if time.time() - start > timeout:
            raise AssertionError(f'timed out after {timeout} s waiting for {what}')
        time.sleep(0.1)
    return time.time() - start


def record(work_dir: Path) -> dict:
    return json.loads((work_dir / 'result.json').read_text())


def job_of(work_dir: Path) -> str:
    return json.loads((work_dir / 'grid_job.json').read_text())['job_id']


def status_lines(work_dirs: Path, toy_data: Path, **kw) -> Dict[str, str]:
    proc = grid('status', work_dirs, toy_data, **kw)
    lines = {}
    for line in proc.stdout.splitlines():
        if '/' in line.split(' ', 1)[0]:
            key, rest = line.split(None, 1)
            lines[key] = rest
    lines['_exit'] = str(proc.returncode)
    return lines


@pytest.fixture(scope='module')
def toy_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('toy')
    for task in TASKS:
        ensure_toy_data(task, root, **SIZES[task])
    return root


def test_the_node_has_the_processors_of_the_machine(slurm_cluster):
    """tools/local_slurm.sh gives its node the processors this process may use, whatever
    OMP_NUM_THREADS says (the cluster is started with 1; nproc takes it for the processor count:
    under a one-thread test worker the node had 1 CPU, and a 2-task job waited forever)."""
    cpus = subprocess.run(['sinfo', '-h', '-N', '-o', '%c'],
                          capture_output=True,
                          text=True,
                          check=True).stdout.split()
    assert cpus == [str(len(os.sched_getaffinity(0)))], cpus


# ---------------------------------------------------------------------------------------------
# slurm_train.sh / slurm_test.sh


def test_slurm_train_writes_the_record_of_dist_train_and_slurm_test_agrees(
        slurm_cluster, toy_data, tmp_path):
    args = [
        '--toy', '--toy-data',
        str(toy_data / 'imagenet'), '--seed', '0', '--deterministic', '--cfg-options',
        'train_cfg.max_epochs=1', 'train_cfg.val_interval=1'
    ]
    step = dict(env(), GPUS='2', GPUS_PER_NODE='2', GRES='', CPUS_PER_TASK='1')
    start = time.time()
    slurm = subprocess.run([
        str(TOOLS / 'slurm_train.sh'), 'local', 'toy-train', CONFIG,
        str(tmp_path / 'slurm'), *args
    ],
                           cwd=ROOT,
                           env=step,
                           capture_output=True,
                           text=True,
                           timeout=600)
    took = time.time() - start
    assert slurm.returncode == 0, slurm.stderr[-3000:]
    torchrun = subprocess.run([
        str(TOOLS / 'dist_train.sh'), CONFIG, '2', '--work-dir',
        str(tmp_path / 'torchrun'), *args
    ],
                              cwd=ROOT,
                              env=dict(env(), PORT=str(29700 + os.getpid() % 200)),
                              capture_output=True,
                              text=True,
                              timeout=600)
    assert torchrun.returncode == 0, torchrun.stderr[-3000:]
    got, ref = record(tmp_path / 'slurm'), record(tmp_path / 'torchrun')
    print(f'slurm_train.sh 2 processes: {took:.0f} s; {got["raw_metrics"]}; torchrun '
          f'{ref["raw_metrics"]}')
    assert got['world_size'] == 2
    differs = {k for k in got if got[k] != ref[k]}
    assert differs <= {'date', 'work_dir', 'checkpoint'}, {k: (got[k], ref[k]) for k in differs}

    ckpt = (tmp_path / 'slurm' / 'last_checkpoint').read_text().strip()
    test = subprocess.run([
        str(TOOLS / 'slurm_test.sh'), 'local', 'toy-test', CONFIG, ckpt, '--toy', '--toy-data',
        str(toy_data / 'imagenet'), '--work-dir',
        str(tmp_path / 'test')
    ],
                          cwd=ROOT,
                          env=step,
                          capture_output=True,
                          text=True,
                          timeout=600)
    assert test.returncode == 0, test.stderr[-3000:]
    tested = json.loads((tmp_path / 'test' / 'test_result.json').read_text())
    assert tested['world_size'] == 2 and tested['checkpoint'] == ckpt
    for name, value in got['metrics'].items():
        assert tested['metrics'][name] == pytest.approx(value, abs=1e-6), name


# ---------------------------------------------------------------------------------------------
# the grid


@pytest.fixture(scope='module')
def full_grid(slurm_cluster, toy_data, module_tmp) -> dict:
    """2 models x (ImageNet -> ADE20K) submitted twice, then waited for; its ImageNet runs are
    the uninterrupted references of the fault tests."""
    work_dirs = module_tmp('grid')
    start = time.time()
    first = grid('submit', work_dirs, toy_data)
    assert first.returncode == 0, first.stderr[-3000:]
    jobs = {j[0]: j for j in squeue('JobID', 'Name', 'Dependency')}
    # submitted twice: the second submission keeps every job
    second = grid('submit', work_dirs, toy_data)
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stdout.count(' kept') == len(MODELS) * len(TASKS) + 1, second.stdout
    assert 'submitted job' not in second.stdout
    again = {j[0]: j for j in squeue('JobID', 'Name', 'Dependency')}
    assert set(again) <= set(jobs), (jobs, again)
    names = [line[1] for line in again.values()]
    assert len(names) == len(set(names))  # one job per run
    done = grid('submit', work_dirs, toy_data, '--wait')
    took = time.time() - start
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    print(f'grid of {len(MODELS)} models x {len(TASKS)} tasks: {took:.0f} s\n{done.stdout}')
    return dict(work_dirs=work_dirs, jobs=jobs, took=took, first=first.stdout)


def test_the_grid_is_chained_and_collected_into_the_leaderboard(full_grid, toy_data):
    work_dirs, jobs = full_grid['work_dirs'], full_grid['jobs']
    for model in MODELS:
        parent = work_dirs / 'imagenet' / f'{model}_in1k'
        child = work_dirs / 'ade20k' / f'{model}_upernet'
        # the child's job waited for the parent's: afterok dependency, started after it ended
        assert jobs[job_of(child)][2].startswith(f'afterok:{job_of(parent)}'), jobs
        started = (child / f'grid-{job_of(child)}.log').read_text().splitlines()[0]
        assert started.startswith(f'grid: {model}/ade20k: job {job_of(child)} on ')
        start = datetime.fromisoformat(started.split(' at ')[1].split(' ')[0]).timestamp()
        assert start >= os.path.getmtime(parent / 'result.json') - 1
        # and was initialised from the parent's last checkpoint
        ckpt = (parent / 'last_checkpoint').read_text().strip()
        assert any(f'backbone initialised from {ckpt}' in log.read_text()
                   for log in child.rglob('*.log'))
        assert record(parent)['model'] == model and record(child)['task'] == 'ade20k'
    lines = status_lines(work_dirs, toy_data)
    assert lines.pop('_exit') == '0'
    assert len(lines) == 4 and all(v.startswith('done') for v in lines.values()), lines
    assert 'top1=' in lines['dwconv_t/imagenet'] and 'miou=' in lines['swin_t/ade20k']
    board = (work_dirs / 'leaderboard' / 'leaderboard.md').read_text()
    from backbones.zoo import display_name
    assert all(display_name(m) in board for m in MODELS), board


def test_a_failed_parent_blocks_its_children(slurm_cluster, toy_data, tmp_path):
    work_dirs = tmp_path / 'grid'
    bad = OPTIONS + ['imagenet:optim_wrapper.optimizer.lr=-1']  # fails once training starts
    proc = grid('submit', work_dirs, toy_data, '--wait', models=['dwconv_t'], options=bad)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = status_lines(work_dirs, toy_data, models=['dwconv_t'])
    print(lines)
    assert lines['_exit'] == '1'
    parent = work_dirs / 'imagenet' / 'dwconv_t_in1k'
    failed = lines['dwconv_t/imagenet']
    assert failed.startswith('failed')
    assert f'grid-{job_of(parent)}.log' in failed and 'Invalid learning rate' in failed
    blocked = lines['dwconv_t/ade20k']
    assert blocked.split()[0] == 'blocked' and 'parent dwconv_t/imagenet failed' in blocked
    child = work_dirs / 'ade20k' / 'dwconv_t_upernet'
    assert not list(child.glob('grid-*.log'))  # its job never started
    out = subprocess.run(['scontrol', '-o', 'show', 'job',
                          job_of(child)],
                         capture_output=True,
                         text=True).stdout
    assert 'JobState=CANCELLED' in out and 'Reason=DependencyNeverSatisfied' in out
    assert not (work_dirs / 'leaderboard' / 'leaderboard.md').exists()


def interrupted_then_resubmitted(work_dirs: Path, toy_data: Path, interrupt, *extra: str):
    """Submit the ImageNet run of dwconv_t, interrupt its job in epoch 2 (``interrupt(job)``),
    check what is left, submit again and wait. Returns (work dir, seconds to resume)."""
    run = work_dirs / 'imagenet' / 'dwconv_t_in1k'
    one = dict(models=['dwconv_t'], tasks=['imagenet'])
    proc = grid('submit', work_dirs, toy_data, '--no-leaderboard', *extra, **one)
    assert proc.returncode == 0, proc.stderr[-3000:]
    job = job_of(run)
    # in epoch 2: the first checkpoint is complete (last_checkpoint is written after it)
    wait_for(lambda: (run / 'last_checkpoint').is_file(), 300, 'the first checkpoint')
    interrupt(job)
    wait_for(lambda: not [j for j in squeue('JobID', 'State') if j[0] == job], 120,
             'the job to end')
    assert not (run / 'result.json').exists() and not (run / 'epoch_3.pth').exists()
    state = status_lines(work_dirs, toy_data, **one)['dwconv_t/imagenet']
    assert state.startswith('failed') and f'grid-{job}.log' in state, state
    # a resumable work dir: its checkpoints load
    assert list(run.glob('epoch_*.pth'))
    for path in run.glob('epoch_*.pth'):
        torch.load(path, map_location='cpu', weights_only=True)
    start = time.time()
    again = grid('submit', work_dirs, toy_data, '--no-leaderboard', '--wait', *extra, **one)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert 'resumes from its last checkpoint' in again.stdout
    log = (run / f'grid-{job_of(run)}.log').read_text()
    assert 'auto-resume: resuming from' in log, log[-3000:]
    return run, state, time.time() - start


def test_scancel_then_submit_again_resumes_to_the_uninterrupted_result(
        full_grid, toy_data, tmp_path):
    run, state, took = interrupted_then_resubmitted(
        tmp_path, toy_data, lambda job: subprocess.run(['scancel', job], check=True))
    assert 'CANCELLED' in state
    ref = record(full_grid['work_dirs'] / 'imagenet' / 'dwconv_t_in1k')
    got = record(run)
    print(f'scancel: {state}; resumed in {took:.0f} s: {got["raw_metrics"]} (uninterrupted '
          f'{ref["raw_metrics"]})')
    assert got['raw_metrics'] == ref['raw_metrics'] and got['config_hash'] == ref['config_hash']


def test_a_node_failure_then_submit_again_resumes_to_the_uninterrupted_result(
        full_grid, slurm_cluster, toy_data, tmp_path):
    node = slurm_cluster['node']

    def down(job):
        subprocess.run(['scontrol', 'update', f'nodename={node}', 'state=down', 'reason=test'],
                       check=True)
        wait_for(lambda: not [j for j in squeue('JobID') if j[0] == job], 120, 'the job to end')
        # back up (slurmd may have re-registered it already: then this is refused)
        subprocess.run(['scontrol', 'update', f'nodename={node}', 'state=resume'],
                       capture_output=True)
        wait_for(
            lambda: subprocess.run(['sinfo', '-h', '-N', '-o', '%T'],
                                   capture_output=True,
                                   text=True).stdout.strip() == 'idle', 60, 'the node')

    try:
        # --no-requeue: the job ends with the node (by default Slurm requeues it by itself,
        # after a delay; its script then resumes the same way)
        run, state, took = interrupted_then_resubmitted(tmp_path, toy_data, down,
                                                        '--sbatch-args=--no-requeue')
    finally:
        subprocess.run(['scontrol', 'update', f'nodename={node}', 'state=resume'],
                       capture_output=True)
    assert 'NODE FAILURE' in state or 'NODE_FAIL' in state, state
    ref = record(full_grid['work_dirs'] / 'imagenet' / 'dwconv_t_in1k')
    got = record(run)
    print(f'node down: {state}; resumed in {took:.0f} s: {got["raw_metrics"]}')
    assert got['raw_metrics'] == ref['raw_metrics'] and got['config_hash'] == ref['config_hash']


def test_the_local_launcher_runs_the_same_dag_to_the_same_metrics(full_grid, toy_data, tmp_path):
    """``--launcher local``: the DAG of one model, one run after the other with dist_train.sh
    on this machine, then the leaderboard; the metrics are those of the Slurm grid."""
    one = dict(models=['dwconv_t'])
    proc = grid('submit', tmp_path, toy_data, '--launcher', 'local', **one)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not (tmp_path / 'imagenet' / 'dwconv_t_in1k' / 'grid_job.sh').exists()  # no sbatch
    for task, stem in [('imagenet', 'dwconv_t_in1k'), ('ade20k', 'dwconv_t_upernet')]:
        got = record(tmp_path / task / stem)
        ref = record(full_grid['work_dirs'] / task / stem)
        assert (tmp_path / task / stem / 'grid-local.log').is_file()
        assert got['raw_metrics'] == ref['raw_metrics'], (task, got, ref)
    assert (tmp_path / 'leaderboard' / 'leaderboard.md').is_file()
    assert status_lines(tmp_path, toy_data, **one)['_exit'] == '0'
    # again: nothing to do
    again = grid('submit', tmp_path, toy_data, '--launcher', 'local', **one)
    assert again.returncode == 0 and again.stdout.count('done, skipped') == 2, again.stdout
