"""End to end on the built-in toy data, through the real command lines: ``tools/train.py
CONFIG --toy`` then ``tools/test.py CONFIG CKPT --toy`` for each task, with the toy schedule the
README's demo uses. The loss falls, the metrics come from the real evaluators (mmpretrain
Accuracy + ReaL, mmdet CocoMetric through pycocotools, mmseg IoUMetric) and land in the result
records; the classifier is well above chance."""
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODEL = 'dwconv_t'
CONFIGS = {
    'imagenet': f'configs/imagenet/{MODEL}_in1k.py',
    'coco': f'configs/coco/{MODEL}_cascade_maskrcnn_3x.py',
    'ade20k': f'configs/ade20k/{MODEL}_upernet.py',
}
METRICS = {'imagenet': ('top1', 'real_top1'), 'coco': ('ap_box', 'ap_mask'), 'ade20k': ('miou', )}


def run_tool(args: List[str], timeout: float = 900) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', '2'))
    proc = subprocess.run([sys.executable, *args],
                          cwd=ROOT,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def logged_losses(work_dir: Path) -> List[float]:
    """Training losses as mmengine's visualizer backend logged them (vis_data/scalars.json)."""
    scalars = sorted(work_dir.glob('*/vis_data/scalars.json'))
    assert scalars, f'no scalars.json under {work_dir}'
    losses = []
    for line in scalars[-1].read_text().splitlines():
        entry = json.loads(line)
        if 'loss' in entry and 'lr' in entry:
            losses.append(entry['loss'])
    return losses


@pytest.fixture(scope='module')
def toy_imagenet_checkpoint(tmp_path_factory) -> Path:
    """The toy ImageNet run: dense toy runs start from its checkpoint, as full-scale ones do."""
    work_dir = tmp_path_factory.mktemp('imagenet')
    run_tool([
        'tools/train.py', CONFIGS['imagenet'], '--toy', '--seed', '0', '--work-dir',
        str(work_dir)
    ])
    return work_dir


@pytest.mark.slow
@pytest.mark.parametrize('task', list(CONFIGS))
def test_toy_train_then_test(task, toy_imagenet_checkpoint, tmp_path):
    if task == 'imagenet':
        work_dir = toy_imagenet_checkpoint
    else:
        work_dir = tmp_path / 'train'
        ckpt = (toy_imagenet_checkpoint / 'last_checkpoint').read_text().strip()
        run_tool([
            'tools/train.py', CONFIGS[task], '--toy', '--seed', '0', '--work-dir',
            str(work_dir), '--toy-pretrained', ckpt
        ])

    record = json.loads((work_dir / 'result.json').read_text())
    assert record['model'] == MODEL and record['task'] == task and record['toy'] is True
    metrics = record['metrics']
    for name in METRICS[task]:
        assert isinstance(metrics.get(name), float), (name, metrics)
    assert record['params_m'] > 0 and record['gflops'] > 0  # full-scale setting, not toy

    losses = logged_losses(work_dir)
    assert len(losses) >= 4, losses
    head, tail = losses[:len(losses) // 4], losses[-(len(losses) // 4):]
    assert sum(tail) / len(tail) < 0.98 * sum(head) / len(head), losses

    if task == 'imagenet':
        classes = len((ROOT / 'data/toy/imagenet/meta/classes.txt').read_text().splitlines())
        chance = 100.0 / classes
        assert metrics['top1'] > 2 * chance, metrics  # well above chance
        assert metrics['real_top1'] > 2 * chance, metrics
    else:
        assert 0.0 <= min(metrics[m] for m in METRICS[task])

    # the trained checkpoint evaluates again through tools/test.py with the same numbers
    ckpt = (work_dir / 'last_checkpoint').read_text().strip()
    test_dir = tmp_path / 'test'
    run_tool(['tools/test.py', CONFIGS[task], ckpt, '--toy', '--work-dir', str(test_dir)])
    tested = json.loads((test_dir / 'test_result.json').read_text())
    assert tested['checkpoint'] == ckpt
    for name in METRICS[task]:
        assert tested['metrics'][name] == pytest.approx(metrics[name], abs=1e-6), name
