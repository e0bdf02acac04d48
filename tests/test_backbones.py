"""Architecture tests: registries, shapes, strides, gradients, and that every variant is what its
name says (the official code's dynamic variant silently built a static convolution)."""
import re
from pathlib import Path
from typing import Dict, List, Sequence

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks import DropPath
from mmdet.registry import MODELS as MMDET_MODELS
from mmengine.utils.dl_utils.parrots_wrapper import _BatchNorm
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
from mmseg.registry import MODELS as MMSEG_MODELS

from backbones import (MODEL_NAMES, DynamicDWConv, IDynamicDWConv, build_backbone, get_backbone_cfg,
                       get_properties)
from backbones.dwnet import DWNet
from backbones.ops import idynamic as idynamic_module
from backbones.ops import idynamic_dwconv, shape_only
from backbones.registry import MODELS
from backbones.zoo import get_model_info
from harness.complexity import count

ROOT = Path(__file__).resolve().parents[1]
#: small models: one thread is as fast on an idle machine and far faster on a busy one
pytestmark = pytest.mark.usefixtures('one_thread')
TINY = dict(embed_dims=16, depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8])
DW_FAMILY = ['DWConvNet', 'DynamicDWConvNet', 'IDynamicNet']
TYPES = DW_FAMILY + ['SwinNet']
REGISTRIES = {'mmpretrain': MMPRETRAIN_MODELS, 'mmdet': MMDET_MODELS, 'mmseg': MMSEG_MODELS}


def tiny(type_name: str, **kwargs) -> nn.Module:
    """A small backbone of ``type_name`` with its four outputs (Swin with a 4x4 window and the
    dense tasks' padding of small maps)."""
    cfg = dict(type=type_name, arch=TINY, out_indices=(0, 1, 2, 3), **kwargs)
    if type_name == 'SwinNet':
        cfg.update(window_size=4, pad_small_map=True)
    else:
        cfg.setdefault('mixer_cfg', dict(kernel_groups=4) if type_name == 'IDynamicNet' else None)
    return MMPRETRAIN_MODELS.build(cfg)


def projection_loss(outs: Sequence[torch.Tensor], seed: int = 1) -> torch.Tensor:
    """A fixed random linear function of the outputs. Unlike a norm of the outputs, it does not
    stay (nearly) constant when the outputs are normalised, so every layer gets a gradient that
    is far from zero and that tells a right backward from a wrong one."""
    gen = torch.Generator().manual_seed(seed)
    return sum((o * torch.randn(o.shape, generator=gen, dtype=o.dtype)).sum() for o in outs)


def blocks(model: nn.Module) -> List[nn.Module]:
    """The blocks of every stage (DWNet's and mmpretrain's Swin's stages both have .blocks)."""
    return [b for s in model.stages for b in s.blocks]


def mode_dependent(module: nn.Module) -> bool:
    """Layers that compute differently in train and eval mode."""
    return isinstance(module, (_BatchNorm, nn.Dropout, DropPath))


@pytest.mark.parametrize('name', MODEL_NAMES)
def test_zoo_model_builds_in_every_registry_with_shapes_and_strides(name, meta_weights):
    cfg = get_backbone_cfg(name)
    cfg.update(out_indices=(0, 1, 2, 3))
    if cfg['type'] == 'SwinNet':
        cfg.update(pad_small_map=True)  # dense-task setting for a 64x96 input
    structures = {}
    for scope, registry in REGISTRIES.items():  # the same class from every toolbox's registry
        with meta_weights():
            model = registry.build(cfg)
        assert type(model) is MODELS.get(cfg['type']), scope
        structures[scope] = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert structures['mmdet'] == structures['mmpretrain'] == structures['mmseg']

    # once with weights: the maps it computes (in train mode without drop-path: an untrained
    # D-DW-Conv overflows in eval mode, see the README)
    model = MMPRETRAIN_MODELS.build(dict(cfg, drop_path_rate=0.)).train()
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == structures['mmpretrain']
    embed = 96 if name.endswith('_t') else 128
    with torch.no_grad():
        outs = model(torch.randn(2, 3, 64, 96))
    assert [tuple(o.shape) for o in outs] == [(2, embed * 2**i, 64 // (4 * 2**i), 96 // (4 * 2**i))
                                              for i in range(4)]
    assert all(torch.isfinite(o).all() for o in outs)


@pytest.mark.parametrize('name', MODEL_NAMES)
def test_depths_widths_and_mixer_match_the_paper(name, meta_weights):
    with meta_weights():  # structure only
        model = build_backbone(name)
    depth = [2, 2, 6, 2] if name.endswith('_t') else [2, 2, 18, 2]
    stages = model.stages
    assert [len(s.blocks) for s in stages] == depth
    if isinstance(model, DWNet):
        mixers = [b.mixer.conv for s in stages for b in s.blocks]
        expected = {
            'dwconv': nn.Conv2d,
            'ddwconv': DynamicDWConv,
            'idynamic': IDynamicDWConv
        }[name.split('_')[0]]
        assert all(type(m) is expected for m in mixers)
        assert all(m.kernel_size == (7, 7) and m.groups == m.in_channels for m in mixers)
        if expected is nn.Conv2d:
            assert all(m.bias is not None for m in mixers)
        else:  # a dynamic mixer owns no static 7x7 kernel
            assert not any(p.dim() == 4 and p.shape[-2:] == (7, 7) for p in model.parameters())
        if expected is IDynamicDWConv:
            assert {m.kernel_groups for m in mixers} == {32}


@pytest.mark.parametrize('type_name', TYPES)
def test_gradients_reach_every_parameter_and_are_the_derivatives(type_name):
    """Every parameter gets a gradient (DistributedDataParallel fails on unused ones), and the
    gradients are the derivatives of what forward computes: for the parameters of each stage
    (and the stem, and the output norms), the gradient along a random direction equals a
    central finite difference of the loss (float64). A detached branch or a wrong backward of
    a custom op fails this; a check that gradients are non-zero would not see it."""
    model = tiny(type_name, drop_path_rate=0.).double().train()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    projection_loss(model(x)).backward()
    groups: Dict[str, List[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        assert param.grad is not None, f'{name} gets no gradient'
        parts = name.split('.')
        key = '.'.join(parts[:2]) if parts[0] == 'stages' else re.sub(r'\d+$', '', parts[0])
        groups.setdefault(key, []).append(param)
    assert sorted(groups) == ['norm', 'patch_embed'] + [f'stages.{i}' for i in range(4)]
    gen = torch.Generator().manual_seed(2)
    eps = 1e-8  # small: an untrained D-DW-Conv's loss is steep (measured: 1e-6 is 45% off)
    wrong = {}
    with torch.no_grad():
        for key, params in groups.items():
            directions = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]
            analytic = sum(float((p.grad * d).sum()) for p, d in zip(params, directions))
            losses = []
            for step in (eps, -2 * eps, eps):  # up, down, back to where they were
                for p, d in zip(params, directions):
                    p.add_(d, alpha=step)
                if len(losses) < 2:
                    losses.append(projection_loss(model(x)))
            numeric = float((losses[0] - losses[1]) / (2 * eps))
            if abs(numeric - analytic) > 1e-4 * abs(analytic) + 1e-3:
                wrong[key] = (analytic, numeric)
    assert wrong == {}


def test_ddwconv_gives_each_sample_its_own_kernels():
    torch.manual_seed(1)
    mixer = DynamicDWConv(8, 8, 7, groups=8).eval()
    nn.init.normal_(mixer.bias)
    x = torch.randn(3, 8, 11, 13)
    batch = mixer(x)
    one_by_one = torch.cat([mixer(x[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(batch, one_by_one, rtol=1e-5, atol=1e-5)
    kernels = mixer.kernel_gen(mixer.reduce(mixer.pool(x))).view(3, 8, 7, 7)
    assert not torch.allclose(kernels[0], kernels[1])  # per-sample, not shared
    for i in range(3):  # ... and a plain depth-wise conv of each sample with its kernels
        ref = F.conv2d(x[i:i + 1], kernels[i].unsqueeze(1), mixer.bias, padding=3, groups=8)
        torch.testing.assert_close(batch[i:i + 1], ref, rtol=1e-5, atol=1e-5)


def unfold_idynamic(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """y[b,c,h,w] = sum_ij W[b, c // (C/G), i, j, h, w] * x[b, c, h+i-3, w+j-3], zero padded."""
    b, c, h, w = x.shape
    g, k = weight.shape[1], weight.shape[2]
    cols = F.unfold(x, k, padding=k // 2).view(b, g, c // g, k * k, h, w)
    return (cols * weight.view(b, g, 1, k * k, h, w)).sum(3).view(b, c, h, w)


def test_idynamic_mixer_equals_unfold_reference_with_position_dependent_kernels():
    mixer = IDynamicDWConv(16, 16, 7, groups=16, kernel_groups=4).eval()
    x = torch.randn(2, 16, 9, 12)
    weight = mixer.kernel_gen(mixer.reduce(x)).view(2, 4, 7, 7, 9, 12)
    assert not torch.allclose(weight[..., 0, 0], weight[..., 4, 5])  # inhomogeneous
    torch.testing.assert_close(mixer(x), unfold_idynamic(x, weight), rtol=1e-4, atol=1e-5)


def test_idynamic_kernel_groups_per_stage_is_the_paper_table_setting():
    model = build_backbone('idynamic_t', mixer_cfg=dict(kernel_groups=[3, 6, 12, 24]))
    groups = [s.blocks[0].mixer.conv.kernel_groups for s in model.stages]
    assert groups == [3, 6, 12, 24]
    with pytest.raises(ValueError, match='entries for 4 stages'):
        build_backbone('idynamic_t', mixer_cfg=dict(kernel_groups=[3, 6]))


#: the paper's Table 1, per family: sparse connectivity, weight sharing across channels, weight
#: sharing across positions, dynamic weights
PAPER_PROPERTIES = {
    'swin': (True, True, False, True),
    'dwconv': (True, False, True, False),
    'ddwconv': (True, False, True, True),
    'idynamic': (True, True, False, True),
}
PROPERTY_FIELDS = ('sparse_connectivity', 'weight_sharing_across_channels',
                   'weight_sharing_across_positions', 'dynamic_weights')


def readme_property_table() -> Dict[str, tuple]:
    """The four property columns of the README's model table, per zoo family
    (``| `swin_{t,b}` | ... | ✓ | ✓ | ✗ | ✓ |``)."""
    rows = {}
    for line in (ROOT / 'README.md').read_text().splitlines():
        match = re.match(r'\| `(\w+)_\{t,b\}` \|', line)
        if match:
            marks = [c.strip() for c in line.strip().strip('|').split('|')[-4:]]
            assert set(marks) <= {'✓', '✗'}, line
            rows[match.group(1)] = tuple(m == '✓' for m in marks)
    return rows


@pytest.mark.parametrize('name', MODEL_NAMES)
def test_properties_follow_the_paper_table_and_the_readme(name):
    props = get_properties(name).as_dict()
    assert tuple(props) == PROPERTY_FIELDS
    family = get_model_info(name).family
    assert tuple(props.values()) == PAPER_PROPERTIES[family]
    assert readme_property_table()[family] == PAPER_PROPERTIES[family]


@pytest.mark.parametrize('type_name', TYPES)
def test_frozen_stages_freeze_the_stem_stages_and_their_outputs(type_name):
    model = tiny(type_name, frozen_stages=1, drop_path_rate=0.5)
    assert model.train() is model
    frozen = [model.patch_embed, model.stages[0], model.stages[1], model.norm0, model.norm1]
    trainable = [model.stages[2], model.stages[3], model.norm2, model.norm3]
    assert all(not p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.requires_grad for m in trainable for p in m.parameters())
    # drop-path, dropout and BatchNorm statistics do not run in the frozen part, only after it
    assert not any(m.training for f in frozen for m in f.modules() if mode_dependent(m))
    assert any(m.training for t in trainable for m in t.modules() if mode_dependent(m))
    bns = {n: m.running_mean.clone() for n, m in model.named_modules() if isinstance(m, _BatchNorm)}
    x = torch.randn(2, 3, 64, 64)
    first, second = model(x), model(x)
    assert [o.requires_grad for o in first] == [False, False, True, True]
    torch.testing.assert_close(first[:2], second[:2], rtol=0, atol=0)  # no random drop-path
    assert not torch.equal(first[3], second[3])  # ... which runs after the frozen stages
    modules = dict(model.named_modules())
    moved = {n for n, v in bns.items() if not torch.equal(modules[n].running_mean, v)}
    assert not any(n.startswith(('stages.0.', 'stages.1.')) for n in moved)
    assert bool(moved) == bool(bns)  # Swin has no BatchNorm; the others' later stages do train


@pytest.mark.parametrize('type_name', TYPES)
def test_norm_eval_keeps_batchnorm_in_eval_mode_and_the_rest_training(type_name):
    model = tiny(type_name, norm_eval=True)
    assert model.train() is model
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    if type_name == 'SwinNet':
        assert bns == []  # LayerNorms only: norm_eval is accepted and has nothing to keep
    else:
        assert bns and not any(m.training for m in bns)
    assert model.training and all(b.training for b in blocks(model))
    stats = [(m.running_mean.clone(), m.running_var.clone()) for m in bns]
    model(torch.randn(2, 3, 64, 64))
    for m, (mean, var) in zip(bns, stats):
        assert torch.equal(m.running_mean, mean) and torch.equal(m.running_var, var)
    plain = tiny(type_name, norm_eval=False).train()
    assert all(m.training for m in plain.modules() if isinstance(m, _BatchNorm))


@pytest.mark.parametrize('type_name', TYPES)
def test_with_cp_recomputes_every_block_with_the_same_outputs_and_gradients(type_name):
    """Gradient checkpointing gives the outputs and gradients of the plain model (drop-path on:
    the recomputation must replay its random draws), and it runs: each block computes again in
    backward (a hook on its first layer counts the calls; a later one may not be reached, as
    the recomputation stops once it has what backward needs)."""
    x = torch.randn(2, 3, 32, 32)
    runs = {}
    for with_cp in (False, True):
        torch.manual_seed(0)
        model = tiny(type_name, with_cp=with_cp, drop_path_rate=0.3).train()
        calls = [0] * len(blocks(model))
        for i, block in enumerate(blocks(model)):
            first = block.pw_in if type_name in DW_FAMILY else block.norm1
            first.register_forward_pre_hook(lambda *_, i=i: calls.__setitem__(i, calls[i] + 1))
        torch.manual_seed(1)
        inputs = x.clone().requires_grad_()
        outs = model(inputs)
        forward_calls = list(calls)
        projection_loss(outs).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        runs[with_cp] = ([o.detach() for o in outs], grads, inputs.grad, forward_calls, calls)
    plain, checkpointed = runs[False], runs[True]
    torch.testing.assert_close(checkpointed[0], plain[0], rtol=0, atol=0)
    assert checkpointed[1].keys() == plain[1].keys()
    torch.testing.assert_close(checkpointed[1], plain[1], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(checkpointed[2], plain[2], rtol=1e-6, atol=1e-7)
    n = len(plain[3])
    assert plain[3] == plain[4] == [1] * n  # without: once each, in forward
    assert checkpointed[3] == [1] * n and checkpointed[4] == [2] * n  # with: again in backward


def test_pad_to_multiple_changes_only_maps_that_are_not_multiples():
    torch.manual_seed(0)
    plain = tiny('DWConvNet').eval()
    for m in plain.modules():  # trained-like BN: padded zeros become non-zero after pw_in
        if isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.bias)
            nn.init.normal_(m.running_mean)
    padded = tiny('DWConvNet', pad_to_multiple=7).eval()
    padded.load_state_dict(plain.state_dict())
    with torch.no_grad():
        x = torch.randn(1, 3, 56, 56)
        a, b = plain(x), padded(x)  # 14x14, 7x7 ... are multiples of 7: identical
    torch.testing.assert_close(a[0], b[0])
    with torch.no_grad():
        x = torch.randn(1, 3, 40, 40)  # 10x10 is not
        assert not torch.allclose(plain(x)[0], padded(x)[0])


def test_bad_arguments_give_clear_errors():
    with pytest.raises(ValueError, match='unknown arch'):
        MMPRETRAIN_MODELS.build(dict(type='DWConvNet', arch='huge'))
    with pytest.raises(ValueError, match='out of range'):
        build_backbone('dwconv_t', out_indices=(4, ))
    with pytest.raises(KeyError, match='unknown model'):
        build_backbone('resnet_t')


def test_flop_count_of_idynamic_does_not_depend_on_computing_it():
    """FLOP counting traces I-Dynamic in shape-only mode (fast at 1280x800); the count must be
    the one of the computing trace, and the mode must not leak out of the counter."""
    model = build_backbone(
        'idynamic_t',
        arch=dict(embed_dims=32, depths=[1, 1, 1, 1]),
        mixer_cfg=dict(kernel_groups=4)).eval()
    x = torch.randn(1, 3, 64, 96)
    counted = count(model, (x, ))
    with torch.no_grad():
        reference = model(x)
    assert idynamic_module._SHAPE_ONLY[0] is False
    with torch.no_grad():  # traced with the real computation
        assert count(model, (x, ), shape_only_ops=False).flops == counted.flops
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference)  # computing again after counting
    w = torch.randn(1, 4, 7, 7, 8, 8)
    xs = torch.randn(1, 8, 8, 8)
    with shape_only():
        assert idynamic_dwconv(xs, w).shape == xs.shape
    torch.testing.assert_close(idynamic_dwconv(xs, w), idynamic_dwconv(xs, w, impl='unfold'))
