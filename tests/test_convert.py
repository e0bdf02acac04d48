"""Checkpoint conversion (harness/convert/, tools/convert_checkpoint.py).

No released checkpoint is needed: small re-implementations of the SOURCE architectures, written
from their description (official module names, so that their state dicts carry the released
keys; tokens kept as (B, L, C); the official position-major patch merging), are randomised
(parameters and BN statistics), saved in the released layout, converted, and must compute what
our models compute from the converted weights.
"""
import argparse
import importlib.util
import json
import math
import os
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path, PurePosixPath

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import MODELS as MMDET_MODELS
from mmengine.registry import DefaultScope
from mmpretrain.models import ImageClassifier
from yacs import config as yacs_config
from yacs.config import CfgNode

from backbones import build_backbone
from backbones.zoo import get_model_info
from harness.convert import (ConversionError, convert_demystify, convert_swin_official,
                             load_release, merge_permutation, model_family, relative_position_index)
from harness.errors import ToolError, tool_main

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(embed_dims=16, depths=[1, 1, 2, 1])
SMALL_SWIN = dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8])
GROUPS = 4  # I-Dynamic kernel groups of the small models
NUM_CLASSES = 1000  # the classifier config's head
ZOO = {'dwconv': 'dwconv_t', 'ddwconv': 'ddwconv_t', 'idynamic': 'idynamic_t'}
PROG = 'convert_checkpoint.py'

# ---------------------------------------------------------------------------------------------
# the source architectures


def official_merge(x: torch.Tensor, hw: tuple) -> torch.Tensor:
    """(B, H*W, C) -> (B, H/2*W/2, 4C), neighbours concatenated position-major."""
    b, _, c = x.shape
    h, w = hw
    x = F.pad(x.view(b, h, w, c), (0, 0, 0, w % 2, 0, h % 2))
    x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
    return x.reshape(b, -1, 4 * c)


class Mlp(nn.Module):

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class PatchEmbed(nn.Module):
    """4x4 patches; an image whose sides are not multiples of 4 is zero-padded at the bottom /
    right first (the official dense-task code)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj, self.norm = nn.Conv2d(3, dim, 4, 4), nn.LayerNorm(dim)

    def forward(self, x):
        x = self.proj(F.pad(x, (0, -x.shape[-1] % 4, 0, -x.shape[-2] % 4)))
        return self.norm(x.flatten(2).transpose(1, 2)), tuple(x.shape[-2:])


class PatchMerging(nn.Module):

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction, self.norm = nn.Linear(4 * dim, 2 * dim, bias=False), nn.LayerNorm(4 * dim)

    def forward(self, x, hw):
        merged = self.reduction(self.norm(official_merge(x, hw)))
        return merged, ((hw[0] + 1) // 2, (hw[1] + 1) // 2)


class Layer(nn.Module):

    def __init__(self, blocks, downsample) -> None:
        super().__init__()
        self.blocks, self.downsample = nn.ModuleList(blocks), downsample


class DynamicDWConv(nn.Module):
    """Kernels (C, K, K) per sample from the pooled input; batch folded into the groups."""

    def __init__(self, dim: int, k: int = 7) -> None:
        super().__init__()
        self.k = k
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv1 = nn.Conv2d(dim, dim // 4, 1, bias=False)
        self.bn = nn.BatchNorm2d(dim // 4)
        self.conv2 = nn.Conv2d(dim // 4, dim * k * k, 1)
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        b, c, h, w = x.shape
        weight = self.conv2(F.relu(self.bn(self.conv1(self.pool(x)))))
        y = F.conv2d(
            x.reshape(1, b * c, h, w),
            weight.view(b * c, 1, self.k, self.k),
            self.bias.repeat(b),
            padding=self.k // 2,
            groups=b * c)
        return y.view(b, c, h, w)


class IDynamicDWConv(nn.Module):
    """Kernels (G, K, K) per position, each shared by C/G contiguous channels."""

    def __init__(self, dim: int, groups: int, k: int = 7) -> None:
        super().__init__()
        self.k, self.groups = k, groups
        self.conv1 = nn.Sequential(nn.Conv2d(dim, dim // 4, 1), nn.BatchNorm2d(dim // 4), nn.ReLU())
        self.conv2 = nn.Sequential(nn.Conv2d(dim // 4, k * k * groups, 1))

    def forward(self, x):
        b, c, h, w = x.shape
        k, g = self.k, self.groups
        weight = self.conv2(self.conv1(x)).view(b, g, k, k, h, w)
        xp = F.pad(x, [k // 2] * 4).view(b, g, c // g, h + k - 1, w + k - 1)
        out = sum(xp[..., i:i + h, j:j + w] * weight[:, :, i, j].unsqueeze(2) for i in range(k)
                  for j in range(k))
        return out.reshape(b, c, h, w)


class Attn2Conv(nn.Module):
    """1x1 conv, BN, ReLU, 7x7 mixer, BN, ReLU, 1x1 conv, BN, on (B, H, W, C)."""

    def __init__(self, dim: int, mixer: str) -> None:
        super().__init__()
        self.conv0, self.bn0 = nn.Conv2d(dim, dim, 1, bias=False), nn.BatchNorm2d(dim)
        self.conv = {
            'dwconv': lambda: nn.Conv2d(dim, dim, 7, padding=3, groups=dim),
            'ddwconv': lambda: DynamicDWConv(dim),
            'idynamic': lambda: IDynamicDWConv(dim, GROUPS),
        }[mixer]()
        self.bn = nn.BatchNorm2d(dim)
        self.conv2, self.bn2 = nn.Conv2d(dim, dim, 1, bias=False), nn.BatchNorm2d(dim)

    def forward(self, x):
        x = F.relu(self.bn0(self.conv0(x.permute(0, 3, 1, 2))))
        x = F.relu(self.bn(self.conv(x)))
        return self.bn2(self.conv2(x)).permute(0, 2, 3, 1)


class SpatialBlock(nn.Module):

    def __init__(self, dim: int, mixer: str, pad_window: int) -> None:
        super().__init__()
        self.pad_window = pad_window
        self.attn2conv, self.mlp, self.bn = Attn2Conv(dim, mixer), Mlp(dim), nn.BatchNorm2d(dim)

    def forward(self, x, hw):
        b, n, c = x.shape
        h, w = hw
        y = x.view(b, h, w, c)
        if self.pad_window:  # the dense-task code keeps Swin's window grid
            m = self.pad_window
            y = F.pad(y, (0, 0, 0, (m - w % m) % m, 0, (m - h % m) % m))
        x = x + self.attn2conv(y)[:, :h, :w].reshape(b, n, c)
        normed = self.bn(x.view(b, h, w, c).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return x + self.mlp(normed.reshape(b, n, c))


class OfficialDWNet(nn.Module):
    """DemystifyLocalViT's DWNet: classification (final LN + head) or dense (BN out norms)."""

    def __init__(self, mixer: str, embed_dims: int, depths: list, dense: bool = False) -> None:
        super().__init__()
        self.dense = dense
        dims = [embed_dims * 2**i for i in range(len(depths))]
        self.patch_embed = PatchEmbed(embed_dims)
        self.layers = nn.ModuleList(
            Layer([SpatialBlock(d, mixer, 7 if dense else 0) for _ in range(depth)],
                  PatchMerging(d) if i < len(depths) - 1 else None)
            for i, (d, depth) in enumerate(zip(dims, depths)))
        if dense:
            for i, d in enumerate(dims):
                self.add_module(f'norm{i}', nn.BatchNorm2d(d))
        else:
            self.norm, self.head = nn.LayerNorm(dims[-1]), nn.Linear(dims[-1], NUM_CLASSES)

    def forward(self, x):
        x, hw = self.patch_embed(x)
        outs = []
        for i, layer in enumerate(self.layers):
            for block in layer.blocks:
                x = block(x, hw)
            if self.dense:
                fmap = x.transpose(1, 2).reshape(x.shape[0], -1, *hw)
                outs.append(getattr(self, f'norm{i}')(fmap))
            if layer.downsample is not None:
                x, hw = layer.downsample(x, hw)
        if self.dense:
            return outs
        return self.head(self.norm(x).mean(1))


class WindowAttention(nn.Module):

    def __init__(self, dim: int, window: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1)**2, heads))
        # written out here instead of importing the converter's, to check it
        ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing='ij')
        coords = torch.stack([ys.flatten(), xs.flatten()])
        dy, dx = (coords[:, :, None] - coords[:, None, :]).unbind(0)
        self.register_buffer('relative_position_index',
                             (dy + window - 1) * (2 * window - 1) + dx + window - 1)

    def forward(self, x, mask):
        bw, n, c = x.shape
        q, k, v = self.qkv(x).view(bw, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q * (c // self.heads)**-0.5) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.flatten()]
        attn = attn + bias.view(n, n, -1).permute(2, 0, 1)
        if mask is not None:
            attn = (attn.view(-1, mask.shape[0], self.heads, n, n) + mask[:, None]).flatten(0, 1)
        return self.proj((attn.softmax(-1) @ v).transpose(1, 2).reshape(bw, n, c))


def windows_of(x: torch.Tensor, w: int) -> torch.Tensor:
    b, h, wd, c = x.shape
    return x.view(b, h // w, w, wd // w, w, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, w * w, c)


def shift_mask(h: int, w: int, window: int, shift: int) -> torch.Tensor:
    """The attention mask of the shifted windows of an h x w map (multiples of the window)."""
    region = torch.zeros(1, h, w, 1)
    cuts = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    for n, (hs, ws) in enumerate((hs, ws) for hs in cuts for ws in cuts):
        region[:, hs, ws] = n
    ids = windows_of(region, window).squeeze(-1)
    return (ids[:, None, :] != ids[:, :, None]).float() * -100.


class SwinBlock(nn.Module):

    def __init__(self, dim: int, heads: int, resolution: int, shift: bool) -> None:
        super().__init__()
        self.window = min(7, resolution)
        self.shift = self.window // 2 if shift and resolution > 7 else 0
        self.norm1, self.attn = nn.LayerNorm(dim), WindowAttention(dim, self.window, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim), Mlp(dim)
        self.odd = shift  # shifted windows in the dense-task code, whatever the map size
        mask = shift_mask(resolution, resolution, self.window, self.shift) if self.shift else None
        self.register_buffer('attn_mask', mask)

    def forward(self, x, hw, dense: bool = False):
        """``dense``: the official detection code's block: any map size (zero-padded at the
        bottom / right to window multiples after norm1), 7x7 windows, odd blocks shifted by 3
        with the mask of the padded map."""
        b, n, c = x.shape
        h, w = hw
        window, shift, mask = self.window, self.shift, self.attn_mask
        y = self.norm1(x).view(b, h, w, c)
        if dense:
            window, shift = 7, 3 * self.odd
            y = F.pad(y, (0, 0, 0, -w % window, 0, -h % window))
            mask = shift_mask(y.shape[1], y.shape[2], window, shift) if shift else None
        hp, wp = y.shape[1:3]
        if shift:
            y = torch.roll(y, (-shift, -shift), (1, 2))
        y = self.attn(windows_of(y, window), mask)
        y = y.view(b, hp // window, wp // window, window, window, c)
        y = y.permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, c)
        if shift:
            y = torch.roll(y, (shift, shift), (1, 2))
        x = x + y[:, :h, :w].reshape(b, n, c)
        return x + self.mlp(self.norm2(x))


class OfficialSwin(nn.Module):

    def __init__(self, embed_dims: int, depths: list, num_heads: list, img: int = 224) -> None:
        super().__init__()
        dims = [embed_dims * 2**i for i in range(len(depths))]
        self.patch_embed = PatchEmbed(embed_dims)
        self.layers = nn.ModuleList(
            Layer([SwinBlock(d, heads, img // 4 // 2**i, j % 2 == 1) for j in range(depth)],
                  PatchMerging(d) if i < len(depths) - 1 else None)
            for i, (d, depth, heads) in enumerate(zip(dims, depths, num_heads)))
        self.norm, self.head = nn.LayerNorm(dims[-1]), nn.Linear(dims[-1], NUM_CLASSES)

    def features(self, x):
        x, hw = self.patch_embed(x)
        for layer in self.layers:
            for block in layer.blocks:
                x = block(x, hw)
            if layer.downsample is not None:
                x, hw = layer.downsample(x, hw)
        return self.norm(x), hw

    def dense_features(self, x):
        """The stage outputs (B, C, H, W) of the official detection code's forward (any input
        size), before its output norms."""
        x, hw = self.patch_embed(x)
        outs = []
        for layer in self.layers:
            for block in layer.blocks:
                x = block(x, hw, dense=True)
            outs.append(x.transpose(1, 2).reshape(x.shape[0], -1, *hw))
            if layer.downsample is not None:
                x, hw = layer.downsample(x, hw)
        return outs

    def forward(self, x):
        return self.head(self.features(x)[0].mean(1))


def randomise(module: nn.Module, seed: int = 0) -> nn.Module:
    """Every parameter and BN statistic random, at scales that keep activations O(1)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() == 1 and name.endswith('weight'):  # norm scales
                p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
            elif p.dim() == 1:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p[0].numel()))
        for name, b in module.named_buffers():
            if name.endswith('running_mean'):
                b.copy_(torch.randn(b.shape, generator=gen) * 0.1)
            elif name.endswith('running_var'):
                b.copy_(torch.rand(b.shape, generator=gen) + 0.5)
            elif name.endswith('num_batches_tracked'):
                b.fill_(int(torch.randint(1, 1000, (1, ), generator=gen)))
    return module.eval()


# ---------------------------------------------------------------------------------------------
# our side


def our_backbone(family: str, **kwargs) -> nn.Module:
    name = ZOO.get(family, 'swin_t')
    arch = SMALL_SWIN if family == 'swin' else SMALL
    if family == 'idynamic':
        kwargs.setdefault('mixer_cfg', dict(kernel_groups=GROUPS))
    return build_backbone(name, arch=dict(arch), drop_path_rate=0., **kwargs)


def our_classifier(family: str) -> nn.Module:
    backbone = our_backbone(family)
    # the scope, whatever an earlier test left as the default: the classifier builds its parts
    # (data preprocessor, neck, head) from the default scope's registry
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return ImageClassifier(
            backbone=backbone,
            neck=dict(type='GlobalAveragePooling'),
            head=dict(
                type='LinearClsHead',
                num_classes=NUM_CLASSES,
                in_channels=backbone.num_features[-1]))


def overrides(family: str) -> str:
    """``--overrides`` for the small source models."""
    cfg = dict(arch=SMALL_SWIN if family == 'swin' else SMALL, drop_path_rate=0.)
    if family == 'idynamic':
        cfg['mixer_cfg'] = dict(kernel_groups=GROUPS)
    return json.dumps(cfg)


@pytest.fixture(scope='module')
def cli():
    tools = str(ROOT / 'tools')
    if tools not in sys.path:
        sys.path.append(tools)  # for the tool's `import _bootstrap`; last: shadows nothing
    spec = importlib.util.spec_from_file_location('convert_checkpoint',
                                                  ROOT / 'tools' / 'convert_checkpoint.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def argv(src: Path, dst: Path, source: str, model: str, *extra: str) -> list:
    return [str(src), str(dst), '--from', source, '--model', model, *extra]


def run(cli, args: list) -> int:
    """The tool's exit code, as ``python tools/convert_checkpoint.py ARGS`` ends."""
    return tool_main(lambda: cli.main(args), PROG)


def strip(sd: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def load_converted(path: Path) -> dict:
    ckpt = torch.load(path, map_location='cpu', weights_only=True)
    assert set(ckpt) == {'state_dict', 'meta'}
    return ckpt


def assert_close(a: torch.Tensor, b: torch.Tensor) -> None:
    """Equal up to float32 rounding: within 1e-5, relative to the largest value if above 1."""
    assert a.shape == b.shape
    error, scale = (a - b).abs().max().item(), max(1.0, b.abs().max().item())
    assert error < 1e-5 * scale, (error, scale)


# ---------------------------------------------------------------------------------------------
# tests


def test_merge_permutation_maps_official_concat_to_unfold_order():
    x = torch.randn(2, 6, 4, 8)
    official = official_merge(x.flatten(2).transpose(1, 2), (4, 8))  # (B, L, 4C)
    unfolded = F.unfold(x, 2, stride=2).transpose(1, 2)  # mmcv's PatchMerging sampler
    assert torch.equal(unfolded, official[..., merge_permutation(6)])


def test_relative_position_index_is_swin_and_mmpretrain_index():
    from mmpretrain.models.utils.attention import WindowMSA
    ref = WindowAttention(8, 7, 2).relative_position_index
    assert torch.equal(relative_position_index(7), ref)
    assert torch.equal(WindowMSA(8, (7, 7), 2).relative_position_index, ref)


@pytest.mark.parametrize('family', ['dwconv', 'ddwconv', 'idynamic'])
def test_demystify_classification_logits_match(family, cli, tmp_path, capsys):
    ref = randomise(OfficialDWNet(family, **SMALL), seed=1)
    src, dst = tmp_path / 'official.pth', tmp_path / 'out' / 'converted.pth'
    torch.save({'model': ref.state_dict(), 'epoch': 299, 'max_accuracy': 81.3}, src)
    assert run(cli, argv(src, dst, 'demystify', ZOO[family], '--overrides', overrides(family))) == 0
    assert '-> ' + ZOO[family] in capsys.readouterr().out
    ckpt = load_converted(dst)
    assert ckpt['meta']['kind'] == 'classification' and ckpt['meta']['family'] == family
    model = our_classifier(family).eval()
    model.load_state_dict(ckpt['state_dict'], strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert_close(model(x, mode='tensor'), ref(x))


def test_demystify_backbone_only_drops_head_and_matches_features():
    ref = randomise(OfficialDWNet('ddwconv', **SMALL), seed=2)
    sd, report = convert_demystify({'model': ref.state_dict()}, 'ddwconv_t', backbone_only=True)
    assert set(report.dropped) == {'head.weight', 'head.bias'}
    assert 'backbone-only' in report.format()
    assert not any(k.startswith('head.') for k in sd)
    backbone = our_backbone('ddwconv').eval()
    backbone.load_state_dict(strip(sd, 'backbone.'), strict=True)
    x = torch.randn(1, 3, 64, 64)
    ref.head = nn.Identity()  # the official forward then ends with the pooled features
    with torch.no_grad():
        assert_close(backbone(x)[-1].mean((2, 3)), ref(x))


def dense_checkpoint(ref: nn.Module, neck: nn.Module) -> dict:
    sd = {'backbone.' + k: v for k, v in ref.state_dict().items()}
    sd.update({'neck.' + k: v for k, v in neck.state_dict().items()})
    sd.update({
        'rpn_head.rpn_conv.weight': torch.randn(8, 8, 3, 3),
        'roi_head.bbox_head.0.fc_cls.weight': torch.randn(81, 16),
        'roi_head.bbox_head.0.fc_cls.bias': torch.randn(81)
    })
    return {'state_dict': sd, 'meta': {'epoch': 36, 'CLASSES': ('person', 'car')}}


#: an input whose sides are multiples of neither 4 (the patch) nor 7 (the window / kernel):
#: maps of 19x30, 10x15, 5x8 and 3x4, padded at the patch embedding, at every patch merging and,
#: in the blocks, to multiples of 7
ODD_INPUT = (75, 118)


def dense_backbone(family: str, **kwargs) -> nn.Module:
    """Our dense-task backbone for a converted official dense checkpoint: the settings of the
    dense-task configs (out indices, padding to multiples of 7) with BN for the CPU."""
    return our_backbone(
        family,
        out_indices=(0, 1, 2, 3),
        norm_cfg=dict(type='BN'),
        out_norm_cfg=dict(type='BN'),
        pad_to_multiple=7,
        **kwargs)


@pytest.mark.parametrize('family', ['dwconv', 'ddwconv', 'idynamic'])
def test_demystify_dense_backbone_outputs_match(family, cli, tmp_path, capsys):
    ref = randomise(OfficialDWNet(family, dense=True, **SMALL), seed=3)
    fpn_cfg = dict(type='FPN', in_channels=[16, 32, 64, 128], out_channels=8, num_outs=5)
    neck = randomise(MMDET_MODELS.build(fpn_cfg), seed=4)
    src, dst = tmp_path / 'cascade.pth', tmp_path / 'converted.pth'
    torch.save(dense_checkpoint(ref, neck), src)
    assert run(cli, argv(src, dst, 'demystify', ZOO[family], '--overrides', overrides(family))) == 0
    out = capsys.readouterr().out
    assert 'not mapped 1 key (rpn_head' in out and 'not mapped 2 keys (roi_head' in out
    ckpt = load_converted(dst)
    sd = ckpt['state_dict']
    assert ckpt['meta']['family'] == family and ckpt['meta']['kind'] == 'dense'
    assert ckpt['meta']['backbone_overrides']['out_norm_cfg'] == dict(type='SyncBN')
    assert ckpt['meta']['neck_cfg'] == fpn_cfg

    backbone = dense_backbone(family).eval()
    backbone.load_state_dict(strip(sd, 'backbone.'), strict=True)
    ours_neck = MMDET_MODELS.build(fpn_cfg).eval()
    ours_neck.load_state_dict(strip(sd, 'neck.'), strict=True)
    x = torch.randn(2, 3, *ODD_INPUT)
    with torch.no_grad():
        ours, theirs = backbone(x), ref(x)
        assert [tuple(o.shape[-2:]) for o in ours] == [(19, 30), (10, 15), (5, 8), (3, 4)]
        for a, b in zip(ours, theirs, strict=True):
            assert_close(a, b)
        for a, b in zip(ours_neck(ours), neck(theirs), strict=True):
            assert_close(a, b)


def segmentor_cfg(family: str, checkpoint: Path, overrides_: dict) -> dict:
    """The model of ``configs/ade20k/<model>_upernet.py`` with the small backbone initialised
    from ``checkpoint`` through its ``init_cfg`` (as a dense config loads a converted
    checkpoint), narrow heads, BN for the CPU."""
    from mmengine.config import Config

    from harness.models import syncbn_to_bn, to_dict
    model = to_dict(
        Config.fromfile(str(ROOT / 'configs' / 'ade20k' / f'{ZOO[family]}_upernet.py')).model)
    backbone = model['backbone']
    backbone.update(json.loads(overrides(family)), **overrides_)
    backbone['init_cfg'] = dict(type='Pretrained', checkpoint=str(checkpoint), prefix='backbone.')
    model['decode_head'].update(in_channels=[16, 32, 64, 128], channels=8, num_classes=5)
    model['auxiliary_head'].update(in_channels=64, channels=8, num_classes=5)
    return syncbn_to_bn(model)


@pytest.mark.parametrize('family', ['dwconv', 'ddwconv', 'idynamic'])
def test_demystify_segmentor_outputs_match(family, cli, tmp_path, capsys):
    """An official mmseg UperNet checkpoint: the converted backbone, loaded by the ade20k
    config's ``init_cfg`` (with the settings the report names), gives the segmentor the
    official backbone's features, so the same heads give the same segmentation logits."""
    from mmseg.registry import MODELS as MMSEG_MODELS
    ref = randomise(OfficialDWNet(family, dense=True, **SMALL), seed=7)
    ours = MMSEG_MODELS.build(segmentor_cfg(family, tmp_path / 'none.pth', {}))
    # the official heads: mmseg 0.x's UPerHead / FCNHead have the key names of today's
    heads = {
        name: randomise(getattr(ours, name), seed=8 + i)
        for i, name in enumerate(('decode_head', 'auxiliary_head'))
    }
    sd = {'backbone.' + k: v for k, v in ref.state_dict().items()}
    for name, head in heads.items():
        sd.update({f'{name}.{k}': v.clone() for k, v in head.state_dict().items()})
    src, dst = tmp_path / 'upernet.pth', tmp_path / 'converted.pth'
    torch.save({'state_dict': sd, 'meta': {'CLASSES': tuple('abcde')}}, src)
    assert run(cli, argv(src, dst, 'demystify', ZOO[family], '--overrides', overrides(family))) == 0
    out = capsys.readouterr().out
    assert 'not mapped' in out and 'decode_head' in out and 'auxiliary_head' in out
    needs = load_converted(dst)['meta']['backbone_overrides']  # SyncBN -> BN on the CPU
    segmentor = MMSEG_MODELS.build(segmentor_cfg(family, dst, needs))
    segmentor.init_weights()  # loads the converted backbone (and initialises the heads)
    for name in heads:  # the heads are not converted: the official ones, as they are
        getattr(segmentor, name).load_state_dict(heads[name].state_dict(), strict=True)
    segmentor.eval()
    x = torch.randn(2, 3, *ODD_INPUT)
    with torch.no_grad():
        features = ref(x)
        expected = heads['decode_head'](features)
        assert_close(segmentor._forward(x), expected)
        assert_close(
            segmentor.auxiliary_head(segmentor.extract_feat(x)), heads['auxiliary_head'](features))
    assert expected.shape[-2:] == (19, 30)


def test_swin_official_release_initialises_the_dense_backbone(cli, tmp_path, capsys):
    """swin-official converts classification releases only; with ``--backbone-only`` the
    result initialises the dense-task Swin of the COCO config (``init_cfg``, prefix
    ``backbone.``), whose outputs at any input size are those of the official detection code's
    forward with the same weights (the output norms of stages 0-2 are new: fresh LayerNorms)."""
    from mmengine.config import Config

    from backbones.registry import MODELS
    from harness.models import to_dict
    ref = randomise(OfficialSwin(**SMALL_SWIN), seed=9)
    src, dst = tmp_path / 'swin.pth', tmp_path / 'converted.pth'
    torch.save({'model': ref.state_dict()}, src)
    assert run(
        cli,
        argv(src, dst, 'swin-official', 'swin_t', '--overrides', overrides('swin'),
             '--backbone-only')) == 0
    capsys.readouterr()
    cfg = to_dict(Config.fromfile(str(ROOT / 'configs/coco/swin_t_maskrcnn.py')).model.backbone)
    cfg.update(json.loads(overrides('swin')))
    cfg['init_cfg'] = dict(type='Pretrained', checkpoint=str(dst), prefix='backbone.')
    backbone = MODELS.build(cfg)
    backbone.init_weights()
    backbone.eval()
    x = torch.randn(1, 3, 229, 233)  # maps of 58x59, 29x30, 15x15, 8x8: padded everywhere
    with torch.no_grad():
        ours, theirs = backbone(x), ref.dense_features(x)
        assert len(ours) == len(theirs) == 4
        for i, (a, b) in enumerate(zip(ours, theirs)):
            tokens = b.flatten(2).transpose(1, 2)
            normed = ref.norm(tokens) if i == 3 else F.layer_norm(tokens, tokens.shape[-1:])
            assert_close(a, normed.transpose(1, 2).reshape(b.shape))

    # a dense (mmdet) Swin checkpoint is refused with a message saying why
    torch.save({'state_dict': {'backbone.' + k: v for k, v in ref.state_dict().items()}}, src)
    assert run(cli, argv(src, dst, 'swin-official', 'swin_t')) == 2
    assert 'only classification releases' in capsys.readouterr().err


def test_demystify_segmentation_heads_are_reported():
    ref = randomise(OfficialDWNet('dwconv', dense=True, **SMALL))
    sd = {'backbone.' + k: v for k, v in ref.state_dict().items()}
    sd.update({
        'decode_head.conv_seg.weight': torch.randn(150, 8, 1, 1),
        'decode_head.conv_seg.bias': torch.randn(150),
        'auxiliary_head.conv_seg.weight': torch.randn(150, 8, 1, 1)
    })
    out, report = convert_demystify({'state_dict': sd}, 'dwconv_t')
    assert all(k.startswith('backbone.') for k in out) and report.neck_cfg is None
    text = report.format()
    assert 'not mapped 2 keys (decode_head' in text and 'not mapped 1 key (auxiliary_head' in text
    assert report.backbone_overrides['out_indices'] == (0, 1, 2, 3)


@pytest.mark.parametrize('backbone_only', [False, True])
def test_swin_official_logits_match(backbone_only, cli, tmp_path, capsys):
    ref = randomise(OfficialSwin(**SMALL_SWIN), seed=5)
    src, dst = tmp_path / 'swin.pth', tmp_path / 'converted.pth'
    torch.save({'model': ref.state_dict()}, src)
    extra = ['--backbone-only'] * backbone_only
    assert run(cli,
               argv(src, dst, 'swin-official', 'swin_t', '--overrides', overrides('swin'),
                    *extra)) == 0
    out = capsys.readouterr().out
    assert 'attn_mask buffer' in out and 'relative_position_index' in out
    sd = load_converted(dst)['state_dict']
    x = torch.randn(2, 3, 224, 224)
    if backbone_only:
        assert 'head.weight' in out and not any(k.startswith('head.') for k in sd)
        model = our_backbone('swin').eval()
        model.load_state_dict(strip(sd, 'backbone.'), strict=True)
        with torch.no_grad():
            tokens, _ = ref.features(x)
            assert_close(model(x)[-1].flatten(2).transpose(1, 2), tokens)
    else:
        model = our_classifier('swin').eval()
        model.load_state_dict(sd, strict=True)
        with torch.no_grad():
            assert_close(model(x, mode='tensor'), ref(x))


def test_missing_and_extra_keys_are_named(cli, tmp_path, capsys):
    sd = randomise(OfficialDWNet('dwconv', **SMALL)).state_dict()
    missing = dict(sd)
    del missing['layers.2.blocks.1.attn2conv.bn0.running_var']
    with pytest.raises(
            ConversionError,
            match=r"^missing key 'layers\.2\.blocks\.1\.attn2conv\.bn0\.running_var'"):
        convert_demystify({'model': missing}, 'dwconv_t')
    extra = dict(sd, **{'layers.0.blocks.0.attn2conv.gate.weight': torch.zeros(1)})
    with pytest.raises(ConversionError, match=r"unexpected key 'layers\.0\.blocks\.0\.attn2conv"):
        convert_demystify({'model': extra}, 'dwconv_t')
    swin = randomise(OfficialSwin(**SMALL_SWIN)).state_dict()
    swin['absolute_pos_embed'] = torch.zeros(1, 3136, 16)
    with pytest.raises(ConversionError, match="unexpected key 'absolute_pos_embed'"):
        convert_swin_official({'model': swin}, 'swin_t')

    # through the tool: one error line, exit 2, DST untouched
    src, dst = tmp_path / 'broken.pth', tmp_path / 'dst.pth'
    dst.write_bytes(b'keep me')
    torch.save({'model': missing}, src)
    assert run(cli, argv(src, dst, 'demystify', 'dwconv_t', '--overrides',
                         overrides('dwconv'))) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith(f'{PROG}: error: missing key ')
    assert 'layers.2.blocks.1.attn2conv.bn0.running_var' in err
    assert dst.read_bytes() == b'keep me'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['broken.pth', 'dst.pth']


def test_checkpoint_that_does_not_fit_the_model_is_refused(cli, tmp_path, capsys):
    sd = randomise(OfficialDWNet('dwconv', **SMALL)).state_dict()
    with pytest.raises(
            ConversionError, match=r'holds a DW Conv\. model .* ddwconv_t is D-DW Conv\.'):
        convert_demystify({'model': sd}, 'ddwconv_t')
    with pytest.raises(ConversionError, match='swin-official'):
        convert_demystify({'model': sd}, 'swin_t')
    src, dst = tmp_path / 'small.pth', tmp_path / 'dst.pth'
    torch.save({'model': sd}, src)
    # the zoo's dwconv_t is deeper: its extra blocks have no source
    assert run(cli, argv(src, dst, 'demystify', 'dwconv_t')) == 2
    err = capsys.readouterr().err
    assert "error: dwconv_t key 'backbone.stages.0.blocks.1." in err
    assert 'depths [1, 1, 2, 1]' in err
    # same depths, wider model: the first tensor already differs
    wide = '{"arch": {"embed_dims": 32, "depths": [1, 1, 2, 1]}}'
    assert run(cli, argv(src, dst, 'demystify', 'dwconv_t', '--overrides', wide)) == 2
    err = capsys.readouterr().err
    assert "shape mismatch at checkpoint key 'patch_embed.proj.weight'" in err
    assert not dst.exists()


def test_a_submitted_backbone_converts_as_the_paper_class_it_subclasses():
    assert get_model_info('lkconv_t').family == 'lkconv'  # contrib/lkconv: a DWConvNet
    assert model_family('lkconv_t') == 'dwconv' and model_family('idynamic_b') == 'idynamic'
    with pytest.raises(ConversionError, match="unknown model 'nope_t'"):
        model_family('nope_t')


def test_non_weights_checkpoint_is_refused(cli, tmp_path, capsys):
    src, dst = tmp_path / 'pickled.pth', tmp_path / 'dst.pth'
    # a class beside the weights that is not a training configuration
    torch.save({'model': {}, 'data_root': PurePosixPath('data/imagenet')}, src)
    assert run(cli, argv(src, dst, 'demystify', 'dwconv_t')) == 2
    err = capsys.readouterr().err
    assert err.startswith(f'{PROG}: error: ')
    assert 'is refused' in err and 'pathlib.PurePosixPath' in err
    assert err.count('\n') == 1 and not dst.exists()
    torch.save({'weights': torch.zeros(1), 'step': 3}, src)
    assert run(cli, argv(src, dst, 'demystify', 'dwconv_t')) == 2
    assert 'unrecognised checkpoint' in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# training checkpoints: the configuration beside the weights


def official_config() -> CfgNode:
    """A yacs config shaped like DemystifyLocalViT's (nested nodes, lists, a frozen root)."""
    cfg = CfgNode(new_allowed=True)
    cfg.MODEL = CfgNode(
        dict(TYPE='dwnet', NAME='dwnet_tiny_patch4_window7_224', DROP_PATH_RATE=0.2))
    cfg.MODEL.DWNET = CfgNode(dict(EMBED_DIM=16, DEPTHS=[1, 1, 2, 1], CONV_TYPE='v1'))
    cfg.TRAIN = CfgNode(dict(EPOCHS=300, BASE_LR=1e-3, AUTO_RESUME=True))
    cfg.freeze()
    return cfg


def training_checkpoint(sd: dict, **configs) -> dict:
    """What the official training script saves: weights, optimizer state, bookkeeping."""
    state = {0: dict(step=torch.tensor(3.), exp_avg=torch.zeros(2))}
    optimizer = dict(state=state, param_groups=[dict(lr=1e-3, weight_decay=0.05, params=[0])])
    return {'model': sd, 'optimizer': optimizer, 'max_accuracy': 81.3, 'epoch': 299, **configs}


@pytest.mark.parametrize(
    'configs', [
        dict(config=official_config()),
        dict(args=argparse.Namespace(cfg='configs/dwnet_tiny.yaml', batch_size=128, local_rank=0)),
        dict(config=official_config(), args=argparse.Namespace(cfg='a.yaml')),
    ],
    ids=['yacs', 'namespace', 'both'])
def test_training_configuration_is_read_as_data_and_ignored(configs, cli, tmp_path, capsys):
    ref = randomise(OfficialDWNet('dwconv', **SMALL), seed=6)
    src, plain, dst = tmp_path / 'ckpt_epoch_299.pth', tmp_path / 'plain.pth', tmp_path / 'out.pth'
    torch.save(training_checkpoint(ref.state_dict(), **configs), src)

    loaded, found = load_release(str(src))
    titles = {'config': 'yacs CfgNode', 'args': 'argparse Namespace'}
    assert found == {key: titles[key] for key in sorted(configs)}
    for key, obj in configs.items():  # plain data with the same content, nothing of yacs left
        node = loaded[key]
        assert type(node) is OrderedDict and not vars(node)
        expected = json.loads(json.dumps(vars(obj) if key == 'args' else obj))
        assert json.loads(json.dumps(node)) == expected
    if 'config' in configs:
        assert type(loaded['config']['MODEL']['DWNET']) is OrderedDict
        assert loaded['config']['MODEL']['DWNET']['DEPTHS'] == [1, 1, 2, 1]

    assert run(cli, argv(src, dst, 'demystify', 'dwconv_t', '--overrides',
                         overrides('dwconv'))) == 0
    out = capsys.readouterr().out
    ignored = [line for line in out.splitlines() if 'ignored' in line]
    assert len(ignored) == 1 and 'training configuration' in ignored[0]
    assert all(f"'{key}' ({titles[key]})" in ignored[0] for key in configs)
    meta = load_converted(dst)['meta']
    assert ignored[0].strip() in [f'note: {n}' for n in meta['notes']]

    # the weights are those of the same checkpoint without its configuration
    plain_dst = tmp_path / 'plain_out.pth'
    torch.save({'model': ref.state_dict()}, plain)
    assert run(cli,
               argv(plain, plain_dst, 'demystify', 'dwconv_t', '--overrides',
                    overrides('dwconv'))) == 0
    assert 'ignored' not in capsys.readouterr().out
    ours, theirs = load_converted(dst)['state_dict'], load_converted(plain_dst)['state_dict']
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


class Reduce:
    """An object that pickles as ``func(*args)``: what unpickling it would call."""

    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def malicious(marker: Path) -> dict:
    """Name -> (what to save beside the weights, what the error must name: the global that
    loading it would import, or why the allow-listed class is refused)."""
    evil_cfg = CfgNode(new_allowed=True)
    evil_cfg.MODEL = CfgNode(dict(TYPE='dwnet'))
    dict.__setitem__(evil_cfg.MODEL, 'NAME', Reduce(os.system, f'touch {marker}'))  # yacs checks
    return {
        'os.system': (Reduce(os.system, f'touch {marker}'), 'posix.system'),
        # pickled under its Python 2 name, commands.Popen
        'another class': (Reduce(subprocess.Popen, ['touch', str(marker)]), '.Popen'),
        'payload inside a CfgNode': (evil_cfg, 'posix.system'),
        'another name of yacs': (Reduce(yacs_config._assert_with_logging, True,
                                        'x'), 'yacs.config._assert_with_logging'),
        # pickled as a Namespace is, without constructor arguments
        'another class of argparse': (argparse.FileType('w'), 'argparse.FileType'),
        'CfgNode built with arguments': (Reduce(CfgNode, {'A': 1}), 'with constructor arguments'),
    }


@pytest.mark.parametrize('case', list(malicious(Path('x'))))
def test_anything_else_beside_the_weights_is_refused(case, cli, tmp_path, capsys):
    marker = tmp_path / 'pwned'
    payload, message = malicious(marker)[case]
    src, dst = tmp_path / 'evil.pth', tmp_path / 'out' / 'dst.pth'
    sd = randomise(OfficialDWNet('dwconv', **SMALL)).state_dict()
    torch.save(training_checkpoint(sd, config=payload), src)
    assert run(cli, argv(src, dst, 'demystify', 'dwconv_t', '--overrides',
                         overrides('dwconv'))) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith(f'{PROG}: error: checkpoint ')
    assert 'is refused' in err and message in err
    assert not marker.exists() and sorted(p.name for p in tmp_path.iterdir()) == ['evil.pth']
    with pytest.raises(ToolError, match='is refused'):
        load_release(str(src))
    assert not marker.exists()
