"""Architecture tests: registries, shapes, strides, gradients, and that every variant is what its
name says (the official code's dynamic variant silently built a static convolution)."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import MODELS as MMDET_MODELS
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
from mmseg.registry import MODELS as MMSEG_MODELS

from backbones import (MODEL_NAMES, DynamicDWConv, IDynamicDWConv, build_backbone, get_backbone_cfg,
                       get_properties)
from harness.complexity import count
from backbones.dwnet import DWNet
from backbones.ops import idynamic as idynamic_module
from backbones.ops import idynamic_dwconv, shape_only

TINY = dict(embed_dims=16, depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8])
DW_FAMILY = ['DWConvNet', 'DynamicDWConvNet', 'IDynamicNet']


def tiny(type_name: str, **kwargs) -> nn.Module:
    mixer = dict(kernel_groups=4) if type_name == 'IDynamicNet' else None
    return MMPRETRAIN_MODELS.build(
        dict(type=type_name, arch=TINY, out_indices=(0, 1, 2, 3), mixer_cfg=mixer, **kwargs))


@pytest.mark.parametrize(
    'registry', [MMPRETRAIN_MODELS, MMDET_MODELS, MMSEG_MODELS],
    ids=['mmpretrain', 'mmdet', 'mmseg'])
@pytest.mark.parametrize('name', MODEL_NAMES)
def test_zoo_model_builds_in_every_registry_with_shapes_and_strides(registry, name):
    cfg = get_backbone_cfg(name)
    cfg.update(out_indices=(0, 1, 2, 3))
    if cfg['type'] == 'SwinNet':
        cfg.update(pad_small_map=True)  # dense-task setting for a 64x96 input
    model = registry.build(cfg).eval()
    embed = 96 if name.endswith('_t') else 128
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 96))
    assert [tuple(o.shape) for o in outs] == [(1, embed * 2**i, 64 // (4 * 2**i), 96 // (4 * 2**i))
                                              for i in range(4)]


@pytest.mark.parametrize('name', MODEL_NAMES)
def test_depths_widths_and_mixer_match_the_paper(name):
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


@pytest.mark.parametrize('type_name', DW_FAMILY + ['SwinNet'])
def test_gradients_reach_every_parameter(type_name):
    if type_name == 'SwinNet':
        model = MMPRETRAIN_MODELS.build(
            dict(
                type='SwinNet',
                arch=TINY,
                out_indices=(0, 1, 2, 3),
                window_size=4,
                pad_small_map=True))
    else:
        model = tiny(type_name)
    model.train()
    outs = model(torch.randn(2, 3, 64, 64))
    sum(o.pow(2).mean() for o in outs).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert no_grad == []


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


def test_properties_follow_the_paper_table():
    props = {n.split('_')[0]: get_properties(n).as_dict() for n in MODEL_NAMES}
    assert all(p['sparse_connectivity'] for p in props.values())
    assert [props[f]['dynamic_weights'] for f in ('swin', 'dwconv', 'ddwconv', 'idynamic')] == \
        [True, False, True, True]
    assert [
        props[f]['weight_sharing_across_positions']
        for f in ('swin', 'dwconv', 'ddwconv', 'idynamic')
    ] == [False, True, True, False]


@pytest.mark.parametrize('type_name', DW_FAMILY)
def test_frozen_stages_and_norm_eval(type_name):
    model = tiny(type_name, frozen_stages=1, norm_eval=True).train()
    frozen = [model.patch_embed, model.stages[0], model.stages[1], model.norm0, model.norm1]
    assert all(not p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.requires_grad for p in model.stages[2].parameters())
    assert all(not m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert model.stages[2].training  # only norms are put in eval mode by norm_eval


@pytest.mark.parametrize('type_name', DW_FAMILY)
def test_with_cp_gives_the_same_outputs_and_gradients(type_name):
    x = torch.randn(2, 3, 32, 32)
    results = []
    for with_cp in (False, True):
        torch.manual_seed(0)
        model = tiny(type_name, with_cp=with_cp).train()
        out = sum(o.sum() for o in model(x.clone().requires_grad_()))
        out.backward()
        results.append((out.detach(), model.patch_embed.projection.weight.grad.clone()))
    torch.testing.assert_close(results[0], results[1])


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
