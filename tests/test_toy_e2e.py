"""End to end on toy data (generated under the session's temporary folder), through the real
command lines, for every backbone family: ``tools/train.py CONFIG --toy`` on ImageNet, then on
COCO and ADE20K starting from that toy ImageNet checkpoint (as the README's demo does), and
``tools/test.py CONFIG CKPT --toy`` on one model's checkpoints. The loss falls, the metrics come
from the real evaluators (mmpretrain Accuracy + ReaL, mmdet CocoMetric through pycocotools,
mmseg IoUMetric), land in the result records, and clear floors that an untrained model misses
(:data:`FLOORS`)."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, List

import pytest
from filelock import FileLock

ROOT = Path(__file__).resolve().parent.parent
FAMILIES = ('swin_t', 'dwconv_t', 'ddwconv_t', 'idynamic_t')
CONFIGS = {
    'imagenet': 'configs/imagenet/{model}_in1k.py',
    'coco': 'configs/coco/{model}_maskrcnn.py',
    'ade20k': 'configs/ade20k/{model}_upernet.py',
}
METRICS = {'imagenet': ('top1', 'real_top1'), 'coco': ('ap_box', 'ap_mask'), 'ade20k': ('miou', )}
#: toy datasets smaller than the demo's where it costs time: half the ImageNet training images
#: (the toy schedule's 3 epochs are then 75 iterations), fewer validation images
SIZES = {
    'imagenet': dict(train_per_class=50, val_per_class=10),
    'coco': dict(val_images=12),
    'ade20k': dict(val_images=8),
}
#: ``--cfg-options`` of the runs (none: the toy schedules of ``tools/train.py --toy``, 12 COCO
#: and 16 ADE20K iterations, are the cheapest tried that clear :data:`FLOORS`)
OPTIONS: Dict[str, List[str]] = {'imagenet': [], 'coco': [], 'ade20k': []}
#: Lowest metrics of a trained toy run, above what an untrained one reaches, per task (per model
#: where one differs from ``default``). Measured (seed 0, these sizes; swin_t / dwconv_t /
#: ddwconv_t / idynamic_t), box AP, mask AP, mIoU: 3.5 / 6.8 / 2.0 / 5.0, 2.5 / 5.7 / 1.1 / 3.9,
#: 47.5 / 41.0 / 30.1 / 50.5 on one machine (2 threads); on CI's, D-DW-Conv reached box / mask AP
#: 1.2 / 0.2; on a third machine with one thread a run (as under pytest-xdist): 12.3 / 11.5 / 0.1 /
#: 10.7, 10.4 / 0.5 / 0.1 / 3.2, 41.0 / 44.4 / 32.4 / 32.7 (D-DW-Conv: 0.2 / 0.0 after 24
#: iterations). Runs are seeded, but float results differ across CPUs and thread counts, and 12
#: iterations from a toy checkpoint amplify that: D-DW-Conv's toy detector is at the noise level,
#: so it has no COCO floor of its own and counts in :data:`COCO_MEAN_FLOORS`. Untrained (lr 0, the
#: rest as here): dwconv_t box and mask AP 0.0, mIoU 0.0 (2 threads); box AP 0.0 / 0.1 / 0.0 / 0.1
#: for the four (one thread, mean 0.05); not starting from the toy ImageNet checkpoint (random
#: backbone, 12 iterations): box and mask AP 0.0.
FLOORS = {
    'coco': dict(default=dict(ap_box=0.5, ap_mask=0.1), ddwconv_t={}),
    'ade20k': dict(default=dict(miou=15.0)),
}
#: Means of the four models' COCO metrics (measured 4.3 / 3.3, 8.7 / 3.6 above; untrained 0.0)
COCO_MEAN_FLOORS = dict(ap_box=2.0, ap_mask=1.0)
#: ImageNet top-1 and ReaL floors in multiples of chance (100 / classes): each family's, and
#: their mean over the four families. Measured top-1 / ReaL (seed 0) in multiples of chance
#: (12.5 %): swin_t 1.9 / 2.3, dwconv_t 2.9 / 3.5, ddwconv_t 2.0 / 2.2, idynamic_t 2.4 / 3.0 on
#: one machine; swin_t 1.8 / 2.1 and ddwconv_t 1.5 / 1.7 on CI's. A classifier at chance
#: (untrained: chance) reaches the mean floor with probability < 1e-3 (320 predictions, mean
#: 40 right, sd 5.9, floor 60); one that predicts a single class stays at chance.
FAMILY_CHANCE_MULTIPLE = 1.2
MEAN_CHANCE_MULTIPLE = 1.5
#: the model whose checkpoints tools/test.py evaluates again
RETEST = 'dwconv_t'


def run_tool(args: List[str], timeout: float = 1800) -> subprocess.CompletedProcess:
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


def chance_of(imagenet: Path) -> float:
    """Top-1 of a classifier at chance on the toy ImageNet, in percent."""
    return 100.0 / len((imagenet / 'meta' / 'classes.txt').read_text().splitlines())


def data_of(toy_data: Callable[..., Path], task: str) -> Path:
    return toy_data(task, **SIZES[task])


def train(task: str, model: str, work_dir: Path, data: Path, *extra: str) -> dict:
    """A toy training run; its result record."""
    options = OPTIONS[task]
    run_tool([
        'tools/train.py', CONFIGS[task].format(model=model), '--toy', '--toy-data',
        str(data), '--work-dir',
        str(work_dir), *extra, *(['--cfg-options', *options] if options else [])
    ])
    return json.loads((work_dir / 'result.json').read_text())


@pytest.fixture(scope='module')
def toy_run(toy_data, workers_tmp) -> Callable[[str, str], Path]:
    """``toy_run(task, model)``: the work folder of the model's toy run of the task, made once.
    The dense runs start from the model's toy ImageNet checkpoint, as full-scale ones start
    from the ImageNet checkpoint. Under pytest-xdist the workers share the runs (each model's
    tests are one test class, on one worker; the means over the four models are checked on any): a
    lock per run makes a worker that needs a run another worker is making wait for it. The
    dense runs keep their checkpoints only for :data:`RETEST` (a few hundred MB each)."""
    folder = workers_tmp('e2e_toy_runs')

    def get(task: str, model: str) -> Path:
        work_dir = folder / f'{task}_{model}'
        with FileLock(str(folder / f'{task}_{model}.lock')):
            if not (work_dir / 'result.json').is_file():
                shutil.rmtree(work_dir, ignore_errors=True)  # a run that failed part-way
                extra = []
                if task != 'imagenet':
                    pretrained = get('imagenet', model) / 'last_checkpoint'
                    extra = ['--toy-pretrained', pretrained.read_text().strip()]
                train(task, model, work_dir, data_of(toy_data, task), *extra)
                if task != 'imagenet' and model != RETEST:
                    for ckpt in work_dir.glob('*.pth'):
                        ckpt.unlink()
        return work_dir

    return get


class _ToyRunsOfOneModel:
    """The toy runs of :attr:`model`: a test class per model, so that pytest-xdist (``--dist
    loadscope``) can run the four models on different workers."""
    model = ''

    @pytest.mark.slow
    @pytest.mark.timeout(1800)  # up to 2 toy trainings and a test run: minutes, more when busy
    @pytest.mark.parametrize('task', list(CONFIGS))
    def test_toy_train_then_test(self, task, toy_run, toy_data, tmp_path):
        model = self.model
        data = data_of(toy_data, task)
        work_dir = toy_run(task, model)
        record = json.loads((work_dir / 'result.json').read_text())
        assert record['model'] == model and record['task'] == task and record['toy'] is True
        assert record['seed'] == 0  # toy runs are seeded
        metrics = record['metrics']
        print(f'{task} {model}: {metrics}')
        for name in METRICS[task]:
            assert isinstance(metrics.get(name), float), (name, metrics)
        assert record['params_m'] > 0 and record['gflops'] > 0  # full-scale setting, not toy

        losses = logged_losses(work_dir)
        assert len(losses) >= 4, losses
        head, tail = losses[:len(losses) // 4], losses[-(len(losses) // 4):]
        assert sum(tail) / len(tail) < 0.98 * sum(head) / len(head), losses

        if task == 'imagenet':
            floors = {name: FAMILY_CHANCE_MULTIPLE * chance_of(data) for name in METRICS[task]}
        else:
            floors = FLOORS[task].get(model, FLOORS[task]['default'])
        assert all(metrics[name] >= floor for name, floor in floors.items()), (metrics, floors)

        if model != RETEST:
            return
        # the trained checkpoint evaluates again through tools/test.py with the same numbers
        ckpt = (work_dir / 'last_checkpoint').read_text().strip()
        test_dir = tmp_path / 'test'
        run_tool([
            'tools/test.py', CONFIGS[task].format(model=model), ckpt, '--toy', '--toy-data',
            str(data), '--work-dir',
            str(test_dir)
        ])
        tested = json.loads((test_dir / 'test_result.json').read_text())
        assert tested['checkpoint'] == ckpt
        for name in METRICS[task]:
            assert tested['metrics'][name] == pytest.approx(metrics[name], abs=1e-6), name


class TestSwinT(_ToyRunsOfOneModel):
    model = 'swin_t'


class TestDWConvT(_ToyRunsOfOneModel):
    model = 'dwconv_t'


class TestDDWConvT(_ToyRunsOfOneModel):
    model = 'ddwconv_t'


class TestIDynamicT(_ToyRunsOfOneModel):
    model = 'idynamic_t'


def assert_family_means(toy_run: Callable[[str, str], Path], task: str,
                        floors: Dict[str, float]) -> None:
    """Each metric of ``floors``, averaged over the four families' toy runs of ``task``, clears
    its floor."""
    metrics = [
        json.loads((toy_run(task, m) / 'result.json').read_text())['metrics'] for m in FAMILIES
    ]
    for name, floor in floors.items():
        mean = sum(m[name] for m in metrics) / len(metrics)
        assert mean >= floor, (task, name, mean, floor, [m[name] for m in metrics])


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_families_learn_on_average(toy_run, toy_data):
    """The four toy ImageNet runs above (made once) clear the mean floor together."""
    floor = MEAN_CHANCE_MULTIPLE * chance_of(data_of(toy_data, 'imagenet'))
    assert_family_means(toy_run, 'imagenet', {name: floor for name in METRICS['imagenet']})


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_families_detect_on_average(toy_run):
    """The four toy COCO runs above (made once) clear :data:`COCO_MEAN_FLOORS` together, D-DW
    Conv's included (it has no floor of its own)."""
    assert_family_means(toy_run, 'coco', COCO_MEAN_FLOORS)
