"""Faults: a killed run resumes to the same result, a killed rank ends its job, bad input is one
error line that leaves work_dirs/ untouched, outside checkpoints never run pickled code.
docs/faults.md has the table of what these tests try and what happened (measured)."""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / 'tools'
CONFIG = 'configs/imagenet/dwconv_t_in1k.py'
#: 4 classes x 8 training images, batch 16: 2 iterations per epoch; 16 validation images
TINY_IMAGENET = dict(num_classes=4, train_per_class=8, val_per_class=4, img_size=64)
#: 3 epochs, validation only at the end, a log line per iteration
TINY_SCHEDULE = [
    'train_cfg.max_epochs=3', 'train_cfg.val_interval=3', 'default_hooks.logger.interval=1'
]


def tool_env(**extra: str) -> Dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    env.pop('DEMYSTIFY_DEBUG', None)
    env.update(extra)
    return env


def train_cmd(work_dir: Path,
              toy_data: Path,
              *extra: str,
              config: str = CONFIG,
              options: Optional[List[str]] = None) -> List[str]:
    return [
        sys.executable,
        str(TOOLS / 'train.py'), config, '--toy', '--toy-data',
        str(toy_data), '--work-dir',
        str(work_dir), '--seed', '0', '--deterministic', '--cfg-options',
        *(TINY_SCHEDULE if options is None else options), *extra
    ]


def run(cmd: List[str], timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        cmd, cwd=ROOT, env=tool_env(), capture_output=True, text=True, timeout=timeout, **kwargs)


def final_state(work_dir: Path) -> Dict[str, torch.Tensor]:
    last = (work_dir / 'last_checkpoint').read_text().strip()
    return torch.load(last, map_location='cpu', weights_only=True)['state_dict']


def record(work_dir: Path) -> dict:
    return json.loads((work_dir / 'result.json').read_text())


@pytest.fixture(scope='module')
def tiny_imagenet(toy_data) -> Path:
    return toy_data('imagenet', **TINY_IMAGENET)


@pytest.fixture(scope='module')
def uninterrupted(tiny_imagenet, module_tmp) -> Path:
    """The reference: the tiny 3-epoch run, start to end."""
    work_dir = module_tmp('uninterrupted')
    proc = run(train_cmd(work_dir, tiny_imagenet))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work_dir


def wait_for(predicate,
             timeout: float,
             proc: Optional[subprocess.Popen] = None,
             what: str = '') -> float:
    start = time.time()
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f'the run ended (code {proc.returncode}) before {what}')
        if time.time() - start > timeout:
            raise AssertionError(f'timed out waiting for {what}')
        time.sleep(0.05)
    return time.time() - start


def logged(work_dir: Path, text: str) -> bool:
    return any(text in log.read_text(errors='replace') for log in work_dir.glob('*/*.log'))


# ---------------------------------------------------------------------------------------------
# SIGKILL, then --resume / --auto-resume


@pytest.mark.slow
def test_sigkill_mid_training_then_auto_resume_equals_the_uninterrupted_run(
        tiny_imagenet, uninterrupted, tmp_path):
    work_dir = tmp_path / 'killed'
    proc = subprocess.Popen(
        train_cmd(work_dir, tiny_imagenet),
        cwd=ROOT,
        env=tool_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        # in the middle of epoch 2: after the first checkpoint, at its first iteration's log
        wait_for(
            lambda:
            (work_dir / 'epoch_1.pth').is_file() and logged(work_dir, 'Epoch(train) [2][1/2]'), 240,
            proc, 'epoch 2 started')
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (work_dir / 'epoch_3.pth').exists() and not (work_dir / 'result.json').exists()
    # a half-written newer checkpoint, named by last_checkpoint (what a plain torch.save killed
    # mid-write leaves): auto-resume must skip it and take epoch_1.pth
    good = (work_dir / 'epoch_1.pth').read_bytes()
    (work_dir / 'epoch_2.pth').write_bytes(good[:len(good) // 2])
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'epoch_2.pth'))

    resumed = run(train_cmd(work_dir, tiny_imagenet, '--auto-resume'))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    out = resumed.stdout + resumed.stderr
    assert 'auto-resume: skipping checkpoint' in out and 'epoch_2.pth is corrupt' in out
    assert 'resumed epoch: 1, iter: 2' in out

    ref, got = record(uninterrupted), record(work_dir)
    print(f'uninterrupted {ref["raw_metrics"]}; killed + auto-resumed {got["raw_metrics"]}')
    assert got['raw_metrics'] == ref['raw_metrics'], (got['raw_metrics'], ref['raw_metrics'])
    ref_state, got_state = final_state(uninterrupted), final_state(work_dir)
    assert ref_state.keys() == got_state.keys()
    assert all(torch.equal(ref_state[k], got_state[k]) for k in ref_state)


@pytest.mark.slow
def test_resume_from_a_named_checkpoint_equals_the_uninterrupted_run(tiny_imagenet, uninterrupted,
                                                                     tmp_path):
    """--resume PATH: continue from epoch 2 of the reference into a fresh work dir."""
    work_dir = tmp_path / 'resumed'
    proc = run(train_cmd(work_dir, tiny_imagenet, '--resume', str(uninterrupted / 'epoch_2.pth')))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'resumed epoch: 2, iter: 4' in proc.stdout + proc.stderr
    assert record(work_dir)['raw_metrics'] == record(uninterrupted)['raw_metrics']
    ref_state, got_state = final_state(uninterrupted), final_state(work_dir)
    assert all(torch.equal(ref_state[k], got_state[k]) for k in ref_state)


# ---------------------------------------------------------------------------------------------
# A rank killed in a 2-process run


def rank_pids(tag: str) -> Dict[int, int]:
    """{rank: pid} of the worker processes (train.py, not torchrun's agent) whose environment
    holds ``tag``."""
    found = {}
    for entry in Path('/proc').iterdir():
        try:
            environ = (entry / 'environ').read_bytes().decode(errors='replace')
            cmdline = (entry / 'cmdline').read_bytes().decode(errors='replace')
        except OSError:  # not a process, or gone
            continue
        env = dict(kv.split('=', 1) for kv in environ.split('\0') if '=' in kv)
        worker = 'train.py' in cmdline and 'torch.distributed.run' not in cmdline
        if worker and env.get('DEMYSTIFY_TEST_TAG') == tag and 'RANK' in env:
            found[int(env['RANK'])] = int(entry.name)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f'/proc/{pid}/stat').read_text().split(')')[-1].split()[0]
    except OSError:
        return False
    return state != 'Z'


def checkpoints_load(work_dir: Path) -> List[str]:
    names = []
    for path in sorted(work_dir.glob('*.pth')):
        torch.load(path, map_location='cpu', weights_only=True)
        names.append(path.name)
    last = (work_dir / 'last_checkpoint').read_text().strip()
    assert Path(last).name in names
    assert not list(work_dir.glob('.*.tmp'))
    return names


@pytest.mark.slow
def test_killing_one_rank_ends_the_job_quickly_with_a_clear_message(tiny_imagenet, tmp_path):
    work_dir = tmp_path / 'dist'
    tag = f'{os.getpid()}-{time.time()}'
    options = [
        'train_cfg.max_epochs=50', 'train_cfg.val_interval=50', 'env_cfg.dist_cfg.timeout=60'
    ]
    cmd = [str(TOOLS / 'dist_train.sh'), CONFIG, '2', '--toy', '--toy-data', str(tiny_imagenet)]
    cmd += ['--work-dir', str(work_dir), '--cfg-options', *options]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=tool_env(DEMYSTIFY_TEST_TAG=tag, PORT=str(29600 + os.getpid() % 300)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True)
    try:
        wait_for(lambda: (work_dir / 'epoch_1.pth').is_file(), 240, proc, 'the first checkpoint')
        pids = rank_pids(tag)
        assert sorted(pids) == [0, 1]
        killed = time.time()
        os.kill(pids[1], signal.SIGKILL)
        _, stderr = proc.communicate(timeout=120)
        took = time.time() - killed
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    print(f'job ended {took:.1f}s after rank 1 was killed, exit code {proc.returncode}')
    assert proc.returncode != 0
    assert took < 60
    assert not alive(pids[0])
    lines = stderr.strip().splitlines()
    # rank 1's fate once, one summary line, no traceback of torchrun's
    assert lines[-1].startswith('dist_train.sh: error: a process of the job failed')
    assert lines[-2].startswith('dist_train.sh: rank 1: Signal 9 (SIGKILL) received by PID')
    assert 'Traceback' not in stderr
    assert not (work_dir / 'result.json').exists()
    assert 'epoch_1.pth' in checkpoints_load(work_dir)


# ---------------------------------------------------------------------------------------------
# Atomic checkpoint files


def test_a_failed_checkpoint_write_leaves_the_previous_file(tmp_path, monkeypatch):
    from backbones.engine import AtomicLocalBackend
    backend = AtomicLocalBackend()
    target = tmp_path / 'epoch_1.pth'
    backend.put(b'good', target)

    def no_space(fd):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(os, 'fsync', no_space)
    with pytest.raises(OSError, match='No space'):
        backend.put(b'partial', target)
    assert target.read_bytes() == b'good'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['epoch_1.pth']


def test_a_checkpoint_write_killed_midway_leaves_no_file_under_its_name(tmp_path):
    """SIGKILL while the CheckpointHook's backend writes 200 MB: the final name never holds a
    torn file."""
    target = tmp_path / 'epoch_2.pth'
    code = ('import sys, torch\nfrom backbones.engine import AtomicLocalBackend\n'
            'import io\nbuf = io.BytesIO()\ntorch.save({"w": torch.zeros(50_000_000)}, buf)\n'
            'print("ready", flush=True)\n'
            f'AtomicLocalBackend().put(buf.getvalue(), {str(target)!r})\n')
    proc = subprocess.Popen([sys.executable, '-c', code],
                            cwd=ROOT,
                            env=tool_env(),
                            stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == 'ready'
    wait_for(lambda: any(p.name.startswith('.epoch_2.pth.') for p in tmp_path.iterdir()), 60, proc,
             'the temporary file')
    proc.kill()
    proc.wait()
    assert not target.exists()


def test_the_checkpoint_hook_writes_through_the_atomic_backend(tmp_path):
    from mmengine.config import Config

    from harness.running.config import use_atomic_checkpoints
    cfg = Config(dict(default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1))))
    use_atomic_checkpoints(cfg)
    assert cfg.default_hooks.checkpoint.backend_args == dict(backend='atomic_local')
    remote = Config(
        dict(default_hooks=dict(checkpoint=dict(type='CheckpointHook', out_dir='s3://bucket/x'))))
    use_atomic_checkpoints(remote)
    assert 'backend_args' not in remote.default_hooks.checkpoint


# ---------------------------------------------------------------------------------------------
# Bad input: one error line, exit code 2, nothing in the work dir touched

DRIVER = r'''
import contextlib, importlib.util, io, json, sys
sys.path.insert(0, 'tools')
from harness.errors import tool_main
def load(name):
    spec = importlib.util.spec_from_file_location(name, f'tools/{name}.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
tools = {'train.py': load('train'), 'test.py': load('test')}
out = {}
for name, (tool, argv) in json.loads(sys.argv[1]).items():
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = tool_main(lambda: tools[tool].main(argv), tool)
    out[name] = dict(code=code, stderr=err.getvalue())
print('RESULTS=' + json.dumps(out))
'''


def snapshot(folder: Path) -> Dict[str, str]:
    return {
        str(p.relative_to(folder)):
        hashlib.sha256(p.read_bytes()).hexdigest() + str(p.stat().st_mtime_ns)
        for p in sorted(folder.rglob('*'))
    }


def save_model(cfg_path: str, toy_data: Path, dst: Path) -> Path:
    from harness.models import build_task_model
    from harness.running import load_config
    from harness.toy.adapt import toy_config
    cfg = toy_config(load_config(cfg_path), 'imagenet', data_root=str(toy_data))
    torch.save({'state_dict': build_task_model(cfg.model.to_dict(), 'imagenet').state_dict()}, dst)
    return dst


@pytest.mark.slow
def test_bad_input_is_one_error_line_and_leaves_the_work_dir_alone(tiny_imagenet, toy_data,
                                                                   tmp_path):
    good = save_model(CONFIG, tiny_imagenet, tmp_path / 'dwconv_t.pth')
    other = save_model('configs/imagenet/idynamic_t_in1k.py', tiny_imagenet,
                       tmp_path / 'idynamic_t.pth')
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(good.read_bytes()[:good.stat().st_size // 3])
    corrupt = tmp_path / 'corrupt.pth'
    corrupt.write_bytes(b'this is not a checkpoint\n' * 100)
    marker = tmp_path / 'pwned'
    evil = tmp_path / 'evil.pth'

    class Evil:

        def __reduce__(self):
            return (os.system, (f'touch {marker}', ))

    torch.save({'state_dict': {}, 'x': Evil()}, evil)
    coco = tmp_path / 'coco'  # a copy: an image of it is removed
    shutil.copytree(toy_data('coco', train_images=2, val_images=1, min_size=64, max_size=96), coco)
    ann = json.loads((coco / 'annotations' / 'instances_train2017.json').read_text())
    (coco / 'train2017' / ann['images'][1]['file_name']).unlink()

    # a work dir with a finished run of another architecture in it
    work = tmp_path / 'work'
    work.mkdir()
    (work / 'epoch_1.pth').write_bytes(other.read_bytes())
    (work / 'last_checkpoint').write_text(str(work / 'epoch_1.pth'))
    (work / 'result.json').write_text('{"metrics": {"top1": 50.0}}')
    (work / 'dwconv_t_in1k.py').write_text('# the dumped config of that run\n')
    before = snapshot(work)

    toy = ['--toy', '--toy-data', str(tiny_imagenet), '--work-dir', str(work)]
    train = lambda *a: ['train.py', [CONFIG, *toy, *a]]  # noqa: E731
    test = lambda ckpt, *a: ['test.py', [CONFIG, str(ckpt), *toy, *a]]  # noqa: E731
    cases = {
        'unknown model': (['train.py', ['configs/imagenet/dwconf_t_in1k.py', '--toy']],
                          "config file not found: configs/imagenet/dwconf_t_in1k.py (no model "
                          "'dwconf_t' here; models: "),
        'unknown backbone type':
        (train('--cfg-options', 'model.backbone.type=DWConvNett'),
         "cannot be built: KeyError: 'DWConvNett is not in the mmpretrain::model registry"),
        'typo in a model key': (train('--cfg-options',
                                      'model.backbone.drop_path_rat=0.1'), 'drop_path_rat'),
        'typo in a schedule key': (train('--cfg-options', 'train_cfg.max_epoch=1'),
                                   "config key train_cfg.max_epoch: EpochBasedTrainLoop has no "
                                   "argument 'max_epoch' (did you mean 'max_epochs'?)"),
        'typo in an optimizer key': (train('--cfg-options', 'optim_wrapper.optimizer.lrr=0.1'),
                                     "AdamW has no argument 'lrr' (did you mean 'lr'?)"),
        'typo in a pipeline key': (train('--cfg-options',
                                         'train_dataloader.dataset.pipeline.1.scalee=32'),
                                   "pipeline[1].scalee: RandomResizedCrop has no argument"),
        'typo in a top-level key': (train('--cfg-options', 'trian_cfg.max_epochs=1'),
                                    "--cfg-options trian_cfg.max_epochs: the config has no key "
                                    "'trian_cfg' (did you mean 'train_cfg'?)"),
        'missing data root': (['train.py',
                               [CONFIG, '--work-dir',
                                str(work)]], "train data root not found: 'data/imagenet'"),
        'missing toy data folder':
        (['train.py', [CONFIG, '--toy', '--toy-data', '/nonexistent', '--work-dir',
                       str(work)]], '--toy-data folder not found: /nonexistent'),
        'coco json naming missing images': ([
            'train.py',
            [
                'configs/coco/dwconv_t_maskrcnn.py', '--toy', '--toy-data',
                str(coco), '--work-dir',
                str(work)
            ]
        ], 'annotations/instances_train2017.json do not exist (first: train2017/'),
        'truncated checkpoint (test)': (test(truncated), 'is corrupt or truncated'),
        'corrupt checkpoint (test)': (test(corrupt), 'corrupt.pth is corrupt'),
        'truncated checkpoint (resume)': (train('--resume',
                                                str(truncated)), 'is corrupt or truncated'),
        'missing checkpoint (test)': (test(tmp_path / 'nope.pth'), 'checkpoint not found'),
        'checkpoint of another architecture (test)': (test(other), 'does not fit the model'),
        'checkpoint of another architecture (resume)':
        (train('--resume', str(other)), 'does not fit the model'),
        'work dir of another architecture (auto-resume)':
        (train('--auto-resume'), 'does not fit the model'),
        'malicious pickle (test)': (test(evil), 'is refused: loading it would import posix.system'),
        'malicious pickle (resume)': (train('--resume', str(evil)), 'would import posix.system'),
    }
    start = time.time()
    proc = run([
        sys.executable, '-c', DRIVER,
        json.dumps({
            name: case
            for name, (case, _) in cases.items()
        })
    ])
    took = time.time() - start
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.split('RESULTS=')[-1])
    print(f'{len(cases)} bad-input cases in one process: {took:.1f}s')
    for name, (_, expected) in cases.items():
        got = results[name]
        lines = [ln for ln in got['stderr'].splitlines() if ln.strip()]
        tool = cases[name][0][0]
        print(f'{name}: exit {got["code"]}: {lines[-1] if lines else ""}')
        assert got['code'] == 2, (name, got)
        assert len(lines) == 1 and lines[0].startswith(f'{tool}: error: '), (name, lines)
        assert expected in lines[0], (name, lines[0])
    assert not marker.exists()
    assert snapshot(work) == before


def test_the_exit_code_and_error_line_come_through_a_real_process(tmp_path):
    proc = run([
        sys.executable,
        str(TOOLS / 'test.py'), CONFIG,
        str(tmp_path / 'missing.pth'), '--work-dir',
        str(tmp_path / 'w')
    ])
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "test.py: error: test data root not found: 'data/imagenet' (set the dataset's "
        "data_root, or use --toy for the built-in toy data)"
    ]
    assert not (tmp_path / 'w').exists()


def test_bad_ngpus_is_refused_by_the_launcher_scripts():
    for script, args in (('dist_train.sh', [CONFIG,
                                            'two']), ('dist_test.sh', [CONFIG, 'x.pth', '0'])):
        proc = run([str(TOOLS / script), *args])
        assert proc.returncode == 2
        assert 'NGPUS must be a positive integer' in proc.stderr


@pytest.mark.parametrize('script,args', [
    ('dist_train.sh', [CONFIG, '2']),
    ('dist_test.sh', [CONFIG, '{ckpt}', '2']),
    ('slurm_train.sh', ['local', 'job', CONFIG, '{work}']),
    ('slurm_test.sh', ['local', 'job', CONFIG, '{ckpt}']),
])
def test_launchers_check_the_inputs_once_before_starting_processes(script, args, tmp_path):
    """A missing data root: one error line and exit 2 from
    one check, before torchrun / srun start (a fake ``srun`` on PATH records any call; torchrun
    would make its log folder); too few arguments: the usage line."""
    bin_dir, work = tmp_path / 'bin', tmp_path / 'work'
    bin_dir.mkdir()
    (bin_dir / 'srun').write_text(f'#!/bin/sh\ntouch {tmp_path}/srun_called\n')
    (bin_dir / 'srun').chmod(0o755)
    env = dict(os.environ, PATH=f'{bin_dir}:{os.environ["PATH"]}')
    words = [a.format(ckpt=tmp_path / 'missing.pth', work=work) for a in args]
    if script.startswith('dist'):
        words += ['--work-dir', str(work)]
    proc = subprocess.run([str(TOOLS / script), *words],
                          cwd=ROOT,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=300)
    expected = 'data root not found'
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [proc.stderr.strip()], proc.stderr
    assert proc.stderr.startswith(f'{script}: error: ') and expected in proc.stderr, proc.stderr
    assert not (tmp_path / 'srun_called').exists() and not (work / 'torchrun').exists()
    assert not work.exists() or not any(work.iterdir())

    short = subprocess.run([str(TOOLS / script), words[0]],
                           cwd=ROOT,
                           env=env,
                           capture_output=True,
                           text=True,
                           timeout=60)
    assert short.returncode == 2 and short.stderr.startswith(f'usage: {script} '), short.stderr


def test_the_config_key_check_accepts_the_configs_of_the_repository():
    """No false alarm: the configs of two models, every template (and the --amp variants), for
    training and testing (all 54 configs were checked by hand: see docs/faults.md)."""
    import glob

    from harness.running import check_config_keys, load_config, task_of, use_amp
    paths = sorted(
        glob.glob(str(ROOT / 'configs' / '*' / 'swin_t_*.py')) +
        glob.glob(str(ROOT / 'configs' / '*' / 'idynamic_b_*.py')))
    assert paths
    for path in paths:
        cfg = load_config(path)
        task = task_of(cfg)
        check_config_keys(cfg, task, 'train')
        check_config_keys(cfg, task, 'test')
        use_amp(cfg)
        check_config_keys(cfg, task, 'train')
