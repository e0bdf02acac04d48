"""Distributed training through tools/dist_train.sh (torchrun; gloo on the CPU) against a
1-process run with the same total batch, distributed testing through tools/dist_test.sh, and
mixed precision (--amp, bf16 on the CPU) for the four backbones. Measured figures and the
tolerances' rationale: docs/faults.md."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest
import torch

from harness.toy import ensure_toy_data

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / 'tools'

#: Per task, a variant of a config of configs/ in which nothing in a training step is random or
#: depends on the number of images per process: Swin-T (only LayerNorms), no drop-path, no
#: dropout, no random augmentation (fixed-size resize, centre crop), no mixup / cutmix, the
#: UperNet heads with GroupNorm instead of (per-process) BN, the detector's anchor and RoI
#: samplers taking every candidate. 2 processes x B images then compute (nearly) the same loss
#: and the same averaged gradient as 1 process x 2B images.
EXACT = {
    'imagenet': ('imagenet/swin_t_in1k.py', """
model = dict(backbone=dict(drop_path_rate=0.0, pad_small_map=True), train_cfg=dict(_delete_=True))
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short', backend='pillow', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]))
"""),
    'coco': ('coco/swin_t_maskrcnn.py', """
model = dict(backbone=dict(drop_path_rate=0.0))
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(512, 512), keep_ratio=False),
    dict(type='PackDetInputs'),
]))
"""),
    'ade20k': ('ade20k/swin_t_upernet.py', """
norm_cfg = dict(type='GN', num_groups=32, requires_grad=True)
model = dict(backbone=dict(drop_path_rate=0.0),
             decode_head=dict(norm_cfg=norm_cfg, dropout_ratio=0.0),
             auxiliary_head=dict(norm_cfg=norm_cfg, dropout_ratio=0.0))
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='Resize', scale=(256, 256), keep_ratio=False),
    dict(type='PackSegInputs'),
]))
"""),
}
# yapf: disable
#: per task: tiny toy data, the options of both runs (the toy schedule made 2 steps; for the
#: detector, samplers that take all anchors / RoIs), the batch per process of the 2-process run
SETUP = {
    'imagenet': dict(sizes=dict(num_classes=4, train_per_class=8, val_per_class=4, img_size=64),
                     options=['train_cfg.max_epochs=2', 'train_cfg.val_interval=2'], batch=8,
                     steps=4),
    'coco': dict(sizes=dict(train_images=4, val_images=2, min_size=64, max_size=96),
                 options=['train_cfg.max_iters=2', 'train_cfg.val_interval=2',
                          'model.train_cfg.rpn.sampler.num=1000000',
                          'model.train_cfg.rcnn.sampler.num=1000000'], batch=2, steps=2),
    'ade20k': dict(sizes=dict(train_images=4, val_images=2, min_size=64, max_size=96),
                   options=['train_cfg.max_iters=2', 'train_cfg.val_interval=2'], batch=2,
                   steps=2),
}
# yapf: enable
#: |2 processes - 1 process| relative, of each logged loss (the mean over the ranks) and of all
#: the weights (norm of the differences / norm of the weights), and the largest difference of one
#: weight, after the last step. imagenet and ade20k: float32 sums in another order, then AdamW
#: (measured 7.8e-8, 2.2e-7, 4.2e-6 on imagenet: a qkv bias, whose key part has a zero gradient
#: up to rounding, which Adam's normalisation turns into steps of up to lr = 1e-3; ade20k 7.1e-8,
#: 1.6e-8, 5.8e-7). coco: the RoI-head losses are normalised per process by its own number of
#: sampled RoIs and positives (as on GPUs; the mask loss differs most): measured over seeds 0-2
#: up to 3.7e-2, 5.6e-4 and 8.5e-5 (AdamW, lr 1e-4, bounds one weight's difference by about 4e-4
#: in 2 steps). See docs/faults.md.
TOLERANCE = {
    'imagenet': dict(loss=1e-5, weights=1e-5, weight=1e-4),
    'ade20k': dict(loss=1e-5, weights=1e-5, weight=1e-4),
    'coco': dict(loss=0.10, weights=2e-3, weight=1e-3),
}


def tool_env() -> Dict[str, str]:
    return dict(
        os.environ,
        OMP_NUM_THREADS='1',
        MKL_NUM_THREADS='1',
        PYTHONUNBUFFERED='1',
        PORT=str(29500 + os.getpid() % 90))


def run_tool(tool: str, config: str, nproc: int, *args: str) -> subprocess.CompletedProcess:
    """``tools/{tool}.py config *args`` in one process, or through ``tools/dist_{tool}.sh`` in
    ``nproc``; for test, the checkpoint is the first of ``args``."""
    if nproc == 1:
        cmd = [sys.executable, str(TOOLS / f'{tool}.py'), config, *args]
    else:
        positional = [config, *args[:1], str(nproc)] if tool == 'test' else [config, str(nproc)]
        cmd = [str(TOOLS / f'dist_{tool}.sh'), *positional, *args[1 if tool == 'test' else 0:]]
    return subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=tool_env())


def losses(work_dir: Path) -> List[float]:
    """The logged training loss of each iteration (the mean over the ranks)."""
    scalars = sorted(work_dir.glob('*/vis_data/scalars.json'))[-1]
    rows = [json.loads(line) for line in scalars.read_text().splitlines() if line.strip()]
    return [row['loss'] for row in rows if 'loss' in row]


def result(work_dir: Path, name: str = 'result.json') -> dict:
    return json.loads((work_dir / name).read_text())


def exact_config(task: str, root: Path) -> Path:
    """The variant of :data:`EXACT`, as ``root/configs/<task>/<model>_<suffix>.py``."""
    rel, body = EXACT[task]
    path = root / 'configs' / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"_base_ = '{ROOT}/configs/{rel}'\n{body}")
    return path


def final_weights(work_dir: Path) -> Dict[str, torch.Tensor]:
    last = (work_dir / 'last_checkpoint').read_text().strip()
    state = torch.load(last, map_location='cpu', weights_only=True)['state_dict']
    return {k: v for k, v in state.items() if v.is_floating_point()}


@pytest.mark.slow
@pytest.mark.parametrize('task', list(EXACT))
def test_two_processes_equal_one_with_the_same_total_batch(task, tmp_path):
    setup, tol = SETUP[task], TOLERANCE[task]
    data = str(ensure_toy_data(task, root=tmp_path / 'toy', **setup['sizes']))
    config = str(exact_config(task, tmp_path))
    runs = {}
    for nproc in (2, 1):
        work_dir = tmp_path / f'np{nproc}'
        options = setup['options'] + [
            f'train_dataloader.batch_size={setup["batch"] * (3 - nproc)}',
            'default_hooks.logger.interval=1'
        ]
        proc = run_tool('train', config, nproc, '--toy', '--toy-data', data, '--work-dir',
                        str(work_dir), '--seed', '0', '--cfg-options', *options)
        assert proc.returncode == 0, proc.stderr[-4000:]
        runs[nproc] = dict(
            losses=losses(work_dir), state=final_weights(work_dir), record=result(work_dir))
    two, one = runs[2], runs[1]
    assert two['record']['world_size'] == 2 and one['record']['world_size'] == 1
    assert len(two['losses']) == len(one['losses']) == setup['steps']
    rel = max(abs(a - b) / abs(b) for a, b in zip(two['losses'], one['losses']))
    keys = list(one['state'])
    diff = torch.stack([(two['state'][k] - one['state'][k]).norm() for k in keys]).norm()
    weights = float(diff / torch.stack([one['state'][k].norm() for k in keys]).norm())
    worst = max(float((two['state'][k] - one['state'][k]).abs().max()) for k in keys)
    print(f'{task}: losses 2 procs {two["losses"]}\n        1 proc  {one["losses"]}\n'
          f'loss: max relative difference {rel:.2e}; weights: relative difference '
          f'{weights:.2e}, largest difference {worst:.2e}; metrics '
          f'{two["record"]["metrics"]} vs {one["record"]["metrics"]}')
    assert rel < tol['loss']
    assert weights < tol['weights'] and worst < tol['weight']
    if task != 'coco':
        assert two['record']['metrics'] == one['record']['metrics']
    if task == 'imagenet':
        # tools/dist_test.sh: evaluating the checkpoint in 2 processes gives the training's
        # validation metrics again
        test_dir = tmp_path / 'test'
        checkpoint = (tmp_path / 'np2' / 'last_checkpoint').read_text().strip()
        proc = run_tool('test', config, 2, checkpoint, '--toy', '--toy-data', data, '--work-dir',
                        str(test_dir))
        assert proc.returncode == 0, proc.stderr[-4000:]
        tested = result(test_dir, 'test_result.json')
        assert tested['world_size'] == 2 and tested['metrics'] == two['record']['metrics']


AMP_DRIVER = r'''
import importlib.util, json, math, sys
import torch
from torch import nn
sys.path.insert(0, 'tools')
spec = importlib.util.spec_from_file_location('train', 'tools/train.py')
train = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train)
from harness.running import build_runner
data, work = sys.argv[1], sys.argv[2]
MIXERS = {'WindowMSA', 'DynamicDWConv', 'IDynamicDWConv'}
# 64-pixel toy images: Swin's last stage (4x4) is smaller than its 7x7 window
EXTRA = {'swin_t': ['model.backbone.pad_small_map=True']}
out = {}
for model in sys.argv[3:]:
    args = train.parse_args([f'configs/imagenet/{model}_in1k.py', '--toy', '--toy-data', data,
                             '--amp', '--work-dir', f'{work}/{model}', '--seed', '0',
                             '--cfg-options', 'train_cfg.max_epochs=1', 'train_cfg.val_begin=2',
                             'train_dataloader.batch_size=4',
                             'train_dataloader.num_batch_per_epoch=1', *EXTRA.get(model, [])])
    runner = build_runner(args, 'train')
    dtypes = {}
    def record(name):
        def hook(module, inputs, output):
            dtypes.setdefault(name, set()).add(str(output.dtype).replace('torch.', ''))
        return hook
    for m in runner.model.modules():
        name = type(m).__name__
        if isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels:
            name = 'depthwise Conv2d'
        if name in MIXERS or name == 'depthwise Conv2d':
            m.register_forward_hook(record(name))
    runner.train()
    opt = runner.optim_wrapper.optimizer
    params = [p for g in opt.param_groups for p in g['params'] if p.requires_grad]
    stepped = sum(1 for p in params if opt.state.get(p, {}).get('exp_avg') is not None)
    out[model] = dict(wrapper=type(runner.optim_wrapper).__name__,
                      loss=float(runner.message_hub.get_scalar('train/loss').current()),
                      dtypes={k: sorted(v) for k, v in dtypes.items()},
                      params=len(params), stepped=stepped,
                      finite=all(bool(torch.isfinite(p).all()) for p in params))
print('RESULTS=' + json.dumps(out))
'''
AMP_MIXER = {
    'swin_t': 'WindowMSA',
    'dwconv_t': 'depthwise Conv2d',
    'ddwconv_t': 'DynamicDWConv',
    'idynamic_t': 'IDynamicDWConv'
}


@pytest.mark.slow
def test_amp_train_step_of_each_backbone_runs_in_bfloat16(tmp_path):
    """One toy training step with --amp per backbone, in one process (one import): the mixer
    computes in bfloat16, every parameter gets a gradient, the loss and weights stay finite."""
    sizes = dict(num_classes=4, train_per_class=2, val_per_class=1, img_size=64)
    data = ensure_toy_data('imagenet', root=tmp_path / 'toy', **sizes)
    proc = subprocess.run(
        [sys.executable, '-c', AMP_DRIVER,
         str(data), str(tmp_path / 'w'), *AMP_MIXER],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=tool_env())
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads(proc.stdout.split('RESULTS=')[-1])
    for model, mixer in AMP_MIXER.items():
        got = results[model]
        print(model, got)
        assert got['wrapper'] == 'CPUAutocastOptimWrapper'
        assert got['dtypes'][mixer] == ['bfloat16'], (model, got['dtypes'])
        assert math.isfinite(got['loss']) and got['finite']
        assert got['stepped'] == got['params'], f'{model}: parameters without a gradient'


def test_cpu_distributed_config_uses_gloo_bn_and_ddp_without_devices(monkeypatch):
    from mmengine.config import Config

    from harness.running import config as launch
    if torch.cuda.is_available():
        pytest.skip('the CPU fallbacks apply without CUDA')
    logged = []
    monkeypatch.setattr(launch, 'print_log', lambda msg, **kw: logged.append(msg))
    cfg = Config(
        dict(
            model=dict(type='X', neck=dict(norm_cfg=dict(type='SyncBN'))),
            sync_bn='torch',
            env_cfg=dict(dist_cfg=dict(backend='nccl', timeout=60))))
    launch.adapt_to_machine(cfg, distributed=True)
    assert cfg.model.neck.norm_cfg.type == 'BN' and 'sync_bn' not in cfg
    assert logged == [
        'SyncBN cannot run without CUDA: using BN (per-process statistics) in each '
        'of the processes'
    ]
    assert cfg.env_cfg.dist_cfg == dict(backend='gloo', timeout=60)
    assert cfg.model_wrapper_cfg.device_ids is None and cfg.model_wrapper_cfg.type == (
        'MMDistributedDataParallel')


def test_launcher_environment_is_checked(monkeypatch):
    from harness.errors import ToolError
    from harness.running.distributed import _slurm_env, init_cpu_distributed
    if torch.cuda.is_available():
        pytest.skip('CUDA runs use mmengine init_dist')
    # a private environment: nothing set here may leak into later tests' processes
    monkeypatch.setattr(os, 'environ', {})
    with pytest.raises(ToolError, match='RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT not set'):
        init_cpu_distributed('pytorch')
    with pytest.raises(ToolError, match='outside a Slurm job step'):
        init_cpu_distributed('slurm')
    with pytest.raises(ToolError, match="launcher 'mpi' needs CUDA"):
        init_cpu_distributed('mpi')
    os.environ.update(SLURM_PROCID='3', SLURM_NTASKS='4', SLURM_LOCALID='1', MASTER_ADDR='node7')
    _slurm_env()
    assert [
        os.environ[k] for k in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT')
    ] == ['3', '4', '1', 'node7', '29500']
