"""The grid tool without a cluster: the DAG derived from the task table, its cost, the job
scripts and sbatch options, the state of each run from (faked) Slurm answers and work dirs, and
the submission logic (skip done, keep queued, resubmit failed, replace jobs stuck behind a
failed parent). tests/test_slurm.py runs the same on a real Slurm."""
import json
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest

from harness.grid import (LaunchOptions, build_plan, calibration_runs, collect, job_script,
                          last_error_line, parent_setting, read_schedule)
from harness.grid import submit as submit_mod
from harness.grid import submit_slurm, train_args
from harness.grid.launch import PARENT_CHECKPOINT, options_for
from harness.grid.plan import logged_s_per_iter
from harness.grid.slurm import SlurmJob
from harness.grid.state import read_job, write_job
from harness.tasks import TASKS

ROOT = Path(__file__).resolve().parents[1]


def plan(tmp_path,
         models=('dwconv_t', ),
         tasks=('imagenet', 'coco', 'ade20k'),
         which='table',
         **kw):
    return build_plan(
        list(models), list(tasks), which, str(tmp_path / 'wd'), read_configs=False, **kw)


# ---------------------------------------------------------------------------------------------
# the DAG


def test_table_plan_chains_dense_runs_to_the_imagenet_run(tmp_path):
    runs = plan(tmp_path, models=('dwconv_t', 'swin_t'))
    keys = [r.key for r in runs]
    table = [t.table_setting.key for t in TASKS.values()]
    assert sorted(keys) == sorted(f'{m}/{s}' for m in ('dwconv_t', 'swin_t') for s in table)
    for run in runs:
        assert run.task == TASKS[run.task].name and run.setting in table
        if run.task == 'imagenet':
            assert run.parent is None
        else:  # initialised from the ImageNet-1k run of the same model, which comes first
            assert run.parent == f'{run.model}/imagenet'
            assert keys.index(run.parent) < keys.index(run.key)
        assert run.work_dir == tmp_path / 'wd' / run.task / Path(run.config).stem
        assert Path(ROOT / run.config).is_file(), run.config


def test_all_settings_add_the_22k_chain_for_b_models_only(tmp_path):
    runs = {r.key: r for r in plan(tmp_path, models=('dwconv_b', 'dwconv_t'), which='all')}
    assert runs['dwconv_b/imagenet_in22k'].parent is None
    assert runs['dwconv_b/imagenet_in22k_ft'].parent == 'dwconv_b/imagenet_in22k'
    assert runs['dwconv_b/ade20k_in22k'].parent == 'dwconv_b/imagenet_in22k'
    assert runs['dwconv_b/coco_maskrcnn'].parent == 'dwconv_b/imagenet'
    assert not [k for k in runs if k.startswith('dwconv_t/') and 'in22k' in k]
    assert parent_setting('imagenet') is None


def test_a_dense_task_alone_still_plans_its_parent(tmp_path):
    runs = plan(tmp_path, tasks=('ade20k', ))
    assert [r.key for r in runs] == ['dwconv_t/imagenet', 'dwconv_t/ade20k']


def test_unknown_model_or_task_is_one_error(tmp_path):
    from harness.errors import ToolError
    with pytest.raises(ToolError, match='unknown model'):
        plan(tmp_path, models=('nope_t', ))
    with pytest.raises(ToolError, match='unknown task'):
        plan(tmp_path, tasks=('mnist', ))


def test_schedules_of_the_real_configs():
    imagenet = read_schedule('configs/imagenet/dwconv_t_in1k.py')
    assert imagenet.by_epoch and imagenet.length == 300 and imagenet.processes == 16
    assert imagenet.iterations == 300 * -(-1_281_167 // (64 * 16))
    coco = read_schedule('configs/coco/dwconv_t_cascade_maskrcnn_3x.py')
    assert coco.by_epoch and coco.length == 36 and coco.processes == 8
    assert coco.iterations == 36 * -(-117_266 // 16)
    ade = read_schedule('configs/ade20k/dwconv_t_upernet.py')
    assert not ade.by_epoch and ade.iterations == 160_000
    # fewer GPUs: more iterations per epoch
    assert read_schedule('configs/coco/dwconv_t_cascade_maskrcnn_3x.py', 4).iterations == \
        36 * -(-117_266 // 8)


def test_cost_is_iterations_times_calibrated_seconds(tmp_path):
    calib = tmp_path / 'calib'
    log = calib / 'imagenet' / 'dwconv_t_in1k' / '20260101_000000' / 'vis_data' / 'scalars.json'
    log.parent.mkdir(parents=True)
    # the first entry (warm-up) is skipped; median of the rest
    log.write_text(''.join(
        json.dumps(dict(lr=1e-3, loss=1.0, time=t, iter=i)) + '\n'
        for i, t in enumerate([9.0, 0.5, 0.7, 0.6])))
    assert logged_s_per_iter(log.parents[2]) == pytest.approx(0.6)
    runs = build_plan(['dwconv_t'], ['imagenet', 'ade20k'],
                      'table',
                      str(tmp_path / 'wd'),
                      calibration=str(calib))
    imagenet, ade = runs
    assert imagenet.s_per_iter == pytest.approx(0.6)
    assert imagenet.cost_s == pytest.approx(imagenet.iterations * 0.6)
    assert ade.s_per_iter is None and ade.cost_s is None


def test_plan_command_prints_the_table(tmp_path):
    proc = subprocess.run([
        sys.executable, 'tools/grid.py', 'plan', '--models', 'dwconv_t', '--tasks', 'imagenet',
        'ade20k', '--work-dirs',
        str(tmp_path / 'wd')
    ],
                          cwd=ROOT,
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:3] == ['run', 'after', 'config']
    row = next(ln for ln in lines if ln.startswith('dwconv_t/ade20k'))
    assert 'dwconv_t/imagenet' in row and 'configs/ade20k/dwconv_t_upernet.py' in row
    assert '160,000' in row and row.rstrip().endswith('unknown')
    assert 'cost unknown (no calibration)' in lines[-1]


def test_calibration_runs_are_short_and_independent(tmp_path):
    runs = build_plan(['dwconv_t'], ['imagenet', 'ade20k'],
                      'table',
                      str(tmp_path / 'wd'),
                      processes=2)
    imagenet, ade = calibration_runs(runs, str(tmp_path / 'calib'), iters=5)
    assert imagenet.parent is None and ade.parent is None
    assert imagenet.work_dir == tmp_path / 'calib' / 'imagenet' / 'dwconv_t_in1k'
    assert 'train_dataloader.dataset.indices=640' in imagenet.cfg_options  # 5 x 64 x 2
    assert 'train_cfg.max_iters=5' in ade.cfg_options
    assert 'model.backbone.init_cfg=None' in ade.cfg_options


# ---------------------------------------------------------------------------------------------
# what a job runs


def test_cfg_options_scoped_to_a_task_or_setting(tmp_path):
    imagenet, ade = plan(tmp_path, tasks=('imagenet', 'ade20k'))
    options = ['a=1', 'imagenet:train_cfg.max_epochs=1', 'ade20k:train_cfg.max_iters=2']
    assert options_for(imagenet, options) == ['a=1', 'train_cfg.max_epochs=1']
    assert options_for(ade, options) == ['a=1', 'train_cfg.max_iters=2']
    from harness.errors import ToolError
    from harness.grid import check_cfg_options
    with pytest.raises(ToolError, match='neither a task'):
        check_cfg_options(['mnist:x=1'])
    with pytest.raises(ToolError, match='KEY=VALUE'):
        check_cfg_options(['justakey'])


def test_train_args_pass_the_parent_checkpoint(tmp_path):
    imagenet, ade = plan(tmp_path, tasks=('imagenet', 'ade20k'))
    toy = LaunchOptions(work_dirs=tmp_path, toy=True, toy_data='data/x', seed=0)
    args = train_args(ade, toy)
    assert args[:3] == ['--work-dir', str(ade.work_dir.absolute()), '--auto-resume']
    assert args[args.index('--toy-pretrained') + 1] == PARENT_CHECKPOINT
    assert args[args.index('--toy-data') + 1] == str(Path('data/x').absolute() / 'ade20k')
    assert '--toy-pretrained' not in train_args(imagenet, toy)
    full = train_args(ade, LaunchOptions(work_dirs=tmp_path, cfg_options=['x=1']))
    assert full[full.index('--cfg-options'):] == [
        '--cfg-options', 'x=1', f'model.backbone.init_cfg.checkpoint={PARENT_CHECKPOINT}'
    ]


def test_job_script_reads_the_parent_checkpoint_when_it_starts(tmp_path):
    imagenet, ade = plan(tmp_path, tasks=('imagenet', 'ade20k'))
    opts = LaunchOptions(work_dirs=tmp_path, partition='gpu', gres='', cpus_per_task=2)
    text = job_script(ade, opts, imagenet)
    assert f'cat {imagenet.work_dir.absolute()}/last_checkpoint' in text
    # the words the shell passes to slurm_train.sh, with the checkpoint known at job start
    command = text.splitlines()[
        text.splitlines().index(next(ln for ln in text.splitlines() if ln.endswith(' \\'))) + 1]
    words = subprocess.run(['bash', '-c', f'printf "%s\\n" {command}'],
                           env=dict(PARENT_CKPT='/a b/epoch_3.pth'),
                           capture_output=True,
                           text=True).stdout.splitlines()
    assert words[-1] == 'model.backbone.init_cfg.checkpoint=/a b/epoch_3.pth'
    assert words[1:4] == ['gpu', 'grid-dwconv_t_upernet', 'configs/ade20k/dwconv_t_upernet.py']
    assert 'GPUS=8 GPUS_PER_NODE=8 CPUS_PER_TASK=2 GRES=' in text
    script = tmp_path / 'job.sh'
    script.write_text(text)
    assert subprocess.run(['bash', '-n', str(script)]).returncode == 0
    # a parent without a checkpoint fails the job with one line, before srun
    proc = subprocess.run(['bash', str(script)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert f'error: the parent run {imagenet.key} left no checkpoint' in proc.stderr


def test_sbatch_options(tmp_path):
    opts = LaunchOptions(work_dirs=tmp_path, sbatch_args=['--qos=high', '--time=1:00:00'])
    args = submit_mod.sbatch_args(16, opts, 'grid-x', tmp_path / 'w', ['12'])
    assert '--ntasks=16' in args and '--ntasks-per-node=8' in args and '--nodes=2' in args
    assert '--gres=gpu:8' in args and '--dependency=afterok:12' in args
    assert '--kill-on-invalid-dep=yes' in args and f'--output={tmp_path}/w/grid-%j.log' in args
    assert not [a for a in args if a.startswith('--partition')]  # the cluster's default
    assert args[-2:] == ['--qos=high', '--time=1:00:00']  # the user's options win
    cpu = submit_mod.sbatch_args(2, LaunchOptions(work_dirs=tmp_path, gres='', partition='p'), 'n',
                                 tmp_path, [])
    assert '--partition=p' in cpu and not [a for a in cpu if a.startswith(('--gres', '--dep'))]


# ---------------------------------------------------------------------------------------------
# states


def finish(run, metric: float) -> None:
    run.work_dir.mkdir(parents=True, exist_ok=True)
    name = TASKS[run.task].main_metric.name
    (run.work_dir / 'result.json').write_text(json.dumps(dict(metrics={name: metric})))


def submitted(run, job_id: str, log: str = '', after=()) -> None:
    run.work_dir.mkdir(parents=True, exist_ok=True)
    path = run.work_dir / f'grid-{job_id}.log'
    if log:
        path.write_text(log)
    write_job(run.work_dir, launcher='slurm', job_id=job_id, after=list(after), log=str(path))


def test_states_from_slurm_and_the_work_dirs(tmp_path):
    runs = {
        r.key: r
        for r in plan(
            tmp_path, models=('dwconv_t', 'swin_t', 'ddwconv_t'), tasks=('imagenet', 'ade20k'))
    }
    finish(runs['dwconv_t/imagenet'], 41.25)
    submitted(runs['dwconv_t/ade20k'], '11')
    submitted(
        runs['swin_t/imagenet'], '12', 'loading\ntrain.py: error: train data root not '
        'found\nsrun: error: vm: task 0: Exited with exit code 2\n')
    submitted(runs['swin_t/ade20k'], '13', after=['12'])
    submitted(runs['ddwconv_t/imagenet'], '14')
    submitted(runs['ddwconv_t/ade20k'], '15', after=['14'])
    slurm = {
        '11': SlurmJob('11', 'RUNNING', 'None', 'vm', '1:02'),
        '12': SlurmJob('12', 'FAILED', 'NonZeroExitCode', 'vm', '0:09', '2:0'),
        '13': SlurmJob('13', 'CANCELLED', 'DependencyNeverSatisfied'),
        '14': SlurmJob('14', 'PENDING', 'Priority'),
        '15': SlurmJob('15', 'PENDING', 'Dependency'),
    }
    states = {s.run.key: s for s in collect(list(runs.values()), slurm)}
    got = {k: s.state for k, s in states.items()}
    assert got == {
        'dwconv_t/imagenet': 'done',
        'dwconv_t/ade20k': 'running',
        'swin_t/imagenet': 'failed',
        'swin_t/ade20k': 'blocked',
        'ddwconv_t/imagenet': 'pending',
        'ddwconv_t/ade20k': 'pending',
    }
    assert states['dwconv_t/imagenet'].detail.startswith('top1=41.25')
    failed = states['swin_t/imagenet'].detail
    assert 'grid-12.log' in failed and 'train.py: error: train data root not found' in failed
    assert states['swin_t/ade20k'].detail == 'parent swin_t/imagenet failed'
    assert 'Dependency' in states['ddwconv_t/ade20k'].detail
    # never submitted: pending; under a failed parent: blocked
    (runs['swin_t/ade20k'].work_dir / 'grid_job.json').unlink()
    (runs['ddwconv_t/ade20k'].work_dir / 'grid_job.json').unlink()
    states = {s.run.key: s for s in collect(list(runs.values()), slurm)}
    assert states['swin_t/ade20k'].state == 'blocked'
    assert states['ddwconv_t/ade20k'].state == 'pending'
    assert states['ddwconv_t/ade20k'].detail == 'not submitted'


def test_last_error_line_prefers_the_cause(tmp_path):
    log = tmp_path / 'x.log'
    log.write_text('Traceback...\nRuntimeError: boom\nsrun: error: task 0: Exited\n')
    assert last_error_line(log) == 'RuntimeError: boom'
    log.write_text('x\nslurmstepd: error: *** JOB 7 ON vm CANCELLED AT 2026 ***\nTerminated\n')
    assert 'CANCELLED' in last_error_line(log)
    log.write_text('all good\ngrid: run: exit code 0\n')
    assert last_error_line(log) == 'all good'


# ---------------------------------------------------------------------------------------------
# submission logic against a fake Slurm


class FakeSlurm:
    """sbatch / squeue / scancel of a cluster that only queues: jobs stay where the test puts
    them."""

    def __init__(self):
        self.jobs: Dict[str, SlurmJob] = {}
        self.submitted: List[List[str]] = []
        self.cancelled: List[str] = []

    def sbatch(self, args, script):
        job_id = str(100 + len(self.submitted))
        self.submitted.append(args)
        reason = 'Dependency' if any(a.startswith('--dependency') for a in args) else 'None'
        self.jobs[job_id] = SlurmJob(job_id, 'PENDING', reason)
        return job_id

    def query(self, ids):
        return {i: self.jobs[i] for i in ids if i in self.jobs}

    def scancel(self, job_id):
        self.cancelled.append(str(job_id))
        self.jobs[str(job_id)] = SlurmJob(str(job_id), 'CANCELLED')


@pytest.fixture
def fake_slurm(monkeypatch):
    from harness.grid import state
    fake = FakeSlurm()
    monkeypatch.setattr(submit_mod, 'sbatch', fake.sbatch)
    monkeypatch.setattr(submit_mod, 'scancel', fake.scancel)
    monkeypatch.setattr(submit_mod, 'query_jobs', fake.query)
    monkeypatch.setattr(state, 'query_jobs', fake.query)
    return fake


def dependency(args: List[str]) -> str:
    return next((a.split(':', 1)[1] for a in args if a.startswith('--dependency')), '')


def test_submit_chains_skips_keeps_and_replaces(tmp_path, fake_slurm):
    runs = plan(tmp_path, models=('dwconv_t', 'swin_t'), tasks=('imagenet', 'ade20k'))
    by_key = {r.key: r for r in runs}
    opts = LaunchOptions(work_dirs=tmp_path / 'wd', toy=True, partition='local', gres='')
    finish(by_key['swin_t/imagenet'], 50.0)
    live = submit_slurm(runs, opts, echo=lambda line: None)
    # 3 runs (swin_t/imagenet is done) + the leaderboard job after all of them
    assert len(fake_slurm.submitted) == 4
    assert dependency(fake_slurm.submitted[1]) == live['dwconv_t/imagenet']  # dwconv_t/ade20k
    assert dependency(fake_slurm.submitted[2]) == ''  # swin_t/ade20k: its parent is done
    assert sorted(dependency(fake_slurm.submitted[3]).split(':')) == sorted(live.values())
    assert read_job(by_key['dwconv_t/ade20k'].work_dir)['job_id'] == live['dwconv_t/ade20k']
    assert (by_key['dwconv_t/ade20k'].work_dir / 'grid_job.sh').is_file()

    # submitted twice: nothing new (the runs and the leaderboard job are queued)
    assert submit_slurm(runs, opts, echo=lambda line: None) == live
    assert len(fake_slurm.submitted) == 4 and not fake_slurm.cancelled

    # dwconv_t/imagenet fails; its child is still queued behind it (Slurm has not cancelled it
    # yet): the parent is resubmitted, the child's stale job cancelled and replaced
    parent, child = live['dwconv_t/imagenet'], live['dwconv_t/ade20k']
    fake_slurm.jobs[parent] = SlurmJob(parent, 'FAILED', 'NonZeroExitCode')
    (by_key['dwconv_t/imagenet'].work_dir / f'grid-{parent}.log').write_text('Error: x\n')
    fake_slurm.jobs[child] = SlurmJob(child, 'PENDING', 'DependencyNeverSatisfied')
    again = submit_slurm(runs, opts, echo=lambda line: None)
    assert again['swin_t/ade20k'] == live['swin_t/ade20k']  # kept
    assert again['dwconv_t/imagenet'] != parent and again['dwconv_t/ade20k'] != child
    assert child in fake_slurm.cancelled
    assert dependency(fake_slurm.submitted[-2]) == again['dwconv_t/imagenet']
    # the old leaderboard job waited for replaced jobs: replaced too
    assert sorted(dependency(fake_slurm.submitted[-1]).split(':')) == sorted(again.values())

    # the parent succeeds, its child runs: a later submission keeps the child (and the
    # leaderboard job, which still waits for it)
    finish(by_key['dwconv_t/imagenet'], 30.0)
    fake_slurm.jobs[again['dwconv_t/imagenet']] = SlurmJob(again['dwconv_t/imagenet'], 'COMPLETED')
    fake_slurm.jobs[again['dwconv_t/ade20k']] = SlurmJob(again['dwconv_t/ade20k'], 'RUNNING')
    count = len(fake_slurm.submitted)
    last = submit_slurm(runs, opts, echo=lambda line: None)
    assert last == {k: v for k, v in again.items() if k != 'dwconv_t/imagenet'}
    assert len(fake_slurm.submitted) == count and again['dwconv_t/ade20k'] not in \
        fake_slurm.cancelled


def test_the_local_launcher_turns_logger_lines_into_progress_lines():
    from harness.grid.local import progress_of
    head = '2026/12/02 08:58:55 - mmengine - INFO - '
    assert progress_of(head + 'Iter(train) [ 2/12]  base_lr: 3.2500e-05 lr: 3.2500e-05  eta: '
                       '0:02:18  time: 13.8234  data_time: 0.0533  loss: 6.5718  loss_rpn_cls: '
                       '0.7082') == 'train [2/12], loss 6.572, run ETA 0:02:18'
    assert progress_of(head + 'Epoch(train)  [3][10/50]  base_lr: 1.0e-03 lr: 1.0e-03  eta: '
                       '0:01:23  time: 0.51  loss: 2.0794') == (
                           'train epoch 3 [10/50], loss 2.079, run ETA 0:01:23')
    assert progress_of(head + 'Iter(val) [ 1/12]    eta: 0:00:45  time: 4.1373') == (
        'val [1/12], run ETA 0:00:45')
    assert progress_of(head + 'Checkpoints will be saved to /w.') is None


def test_the_grid_eta_uses_the_mean_time_of_the_runs_of_each_task(tmp_path):
    from harness.grid.local import GridClock
    runs = build_plan(['dwconv_t', 'swin_t'], ['imagenet', 'coco'], work_dirs=tmp_path)
    by_task: Dict[str, List] = {}
    for run in runs:
        by_task.setdefault(run.task, []).append(run)
    clock = GridClock(runs)
    assert clock.eta() is None  # nothing measured yet
    clock.finished(by_task['imagenet'][0], 100.0)
    # one ImageNet run left at 100 s, two COCO runs at the mean of all (100 s)
    assert clock.eta() == 300.0
    assert clock.eta(current=by_task['imagenet'][1]) == 200.0
    clock.finished(by_task['imagenet'][1], 50.0)
    clock.finished(by_task['coco'][0], 30.0)
    assert clock.eta() == 30.0
