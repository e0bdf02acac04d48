"""The layout of Atten4Vis/DemystifyLocalViT: DW-Conv, D-DW-Conv and I-Dynamic.

Classification checkpoints are ``{'model': sd}``; its mmdet 2.x / mmseg 0.x checkpoints
``{'state_dict': {'backbone.*', 'neck.*', '*_head.*'}}`` with SyncBN output norms ``norm0-3``.
Both dynamic kernel generators keep the official order: (C, K, K) per sample for D-DW-Conv,
(G, K, K) per position for I-Dynamic.
"""
import re
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from .common import (DOWNSAMPLE, LN_PARAMS, MLP, STEM, ConversionError, Rule, detect_kind,
                     embed_dims_of, family_title, indices, linear_rules, model_family, norm_rules,
                     stage_depths)
from .report import ConversionReport, KeyMapper

#: top-level prefixes of mmdet 2.x / mmseg 0.x task heads
_TASK_HEADS = ('rpn_head', 'roi_head', 'bbox_head', 'mask_head', 'decode_head', 'auxiliary_head',
               'semantic_head')
_FPN_KEY = re.compile(r'neck\.(lateral_convs|fpn_convs)\.(\d+)\.conv\.(weight|bias)$')

#: the 7x7 mixer of each family
_MIXER: Dict[str, List[Rule]] = {
    'dwconv': [*linear_rules('attn2conv.conv', 'mixer.conv')],
    'ddwconv': [
        ('attn2conv.conv.conv1.weight', 'mixer.conv.reduce.conv.weight', None),
        *norm_rules('attn2conv.conv.bn', 'mixer.conv.reduce.bn'),
        *linear_rules('attn2conv.conv.conv2', 'mixer.conv.kernel_gen'),
        ('attn2conv.conv.bias', 'mixer.conv.bias', None),
    ],
    'idynamic': [
        *linear_rules('attn2conv.conv.conv1.0', 'mixer.conv.reduce.conv'),
        *norm_rules('attn2conv.conv.conv1.1', 'mixer.conv.reduce.bn'),
        *linear_rules('attn2conv.conv.conv2.0', 'mixer.conv.kernel_gen'),
    ],
}

#: a block without its mixer
_BLOCK: List[Rule] = [
    ('attn2conv.conv0.weight', 'pw_in.conv.weight', None),
    *norm_rules('attn2conv.bn0', 'pw_in.bn'),
    *norm_rules('attn2conv.bn', 'mixer.bn'),
    ('attn2conv.conv2.weight', 'pw_out.conv.weight', None),
    *norm_rules('attn2conv.bn2', 'pw_out.bn'),
    *norm_rules('bn', 'mlp_norm'),
    *MLP,
]


def convert_demystify(
    state_dict: Mapping,
    model: str,
    backbone_only: bool = False,
    target_shapes: Optional[Mapping[str, Sequence[int]]] = None
) -> Tuple[Dict[str, torch.Tensor], ConversionReport]:
    """Convert a DemystifyLocalViT checkpoint.

    Classification checkpoints give ``backbone.*`` (+ ``head.fc.*`` unless ``backbone_only``),
    for mmpretrain's ``ImageClassifier``. Dense (mmdet/mmseg) checkpoints give ``backbone.*``
    for a backbone with ``report.backbone_overrides`` (all four outputs, BN-type out norms), plus
    an FPN neck's ``neck.*`` (same names in mmdet 3.x) unless ``backbone_only``; task heads are
    reported as not mapped.

    Args:
        state_dict (Mapping): the loaded checkpoint: ``{'model': ...}``,
            ``{'state_dict': ...}`` or a bare state dict.
        model (str): the zoo name to convert for, e.g. ``'ddwconv_t'``.
        backbone_only (bool): drop the classifier head / neck. Defaults to False.
        target_shapes (Mapping, optional): the receiving model's key -> shape, to check that
            the result fits it exactly. Defaults to None.

    Returns:
        tuple[dict, ConversionReport]: the converted state dict and what was done.
    """
    family = model_family(model)
    if family == 'swin':
        raise ConversionError(f'{model} is a Swin model: use the swin-official conversion')
    kind, sd = detect_kind(state_dict)
    report = ConversionReport('demystify', kind, family, model, backbone_only)
    conv = KeyMapper(sd, report)
    prefix = 'backbone.' if kind == 'dense' else ''
    if kind == 'dense':
        _sort_dense_extras(conv, backbone_only)

    depths = stage_depths(sd, prefix)
    found, probe = _mixer_of_block(sd, f'{prefix}layers.0.blocks.0.')
    if found != family:
        raise ConversionError(f'the checkpoint holds a {family_title(found)} model (key '
                              f'{probe!r}) but {model} is {family_title(family)}')
    report.arch = dict(embed_dims=embed_dims_of(sd, prefix), depths=depths)
    if family == 'idynamic':
        report.arch['kernel_groups'] = _idynamic_groups(sd, prefix, depths)

    conv.apply(STEM, prefix, 'backbone.')
    rules = _BLOCK + _MIXER[family]
    for i, depth in enumerate(depths):
        for j in range(depth):
            conv.apply(rules, f'{prefix}layers.{i}.blocks.{j}.', f'backbone.stages.{i}.blocks.{j}.')
        if i < len(depths) - 1:
            conv.apply(DOWNSAMPLE, f'{prefix}layers.{i}.downsample.',
                       f'backbone.stages.{i}.downsample.')

    if kind == 'classification':
        conv.apply(norm_rules('norm', f'norm{len(depths) - 1}', LN_PARAMS), '', 'backbone.')
        conv.convert_head(backbone_only)
    else:
        _convert_out_norms(conv)
    return conv.finish(model, target_shapes), report


def _mixer_of_block(sd: Mapping[str, torch.Tensor], prefix: str) -> Tuple[str, str]:
    """The family a block's keys belong to, and the key that tells."""
    probes = [('idynamic', 'attn2conv.conv.conv1.0.weight'),
              ('ddwconv', 'attn2conv.conv.conv1.weight'), ('dwconv', 'attn2conv.conv.weight')]
    for family, suffix in probes:
        if prefix + suffix in sd:
            return family, prefix + suffix
    swin = prefix + 'attn.qkv.weight' in sd
    hint = ': it looks like a Swin checkpoint (use swin-official)' if swin else ''
    raise ConversionError(f'no 7x7 mixer under {prefix + "attn2conv.conv"!r}: not a '
                          f'DemystifyLocalViT checkpoint{hint}')


def _idynamic_groups(sd: Mapping[str, torch.Tensor],
                     prefix: str,
                     depths: List[int],
                     kernel_size: int = 7) -> List[int]:
    groups = []
    for i in range(len(depths)):
        key = f'{prefix}layers.{i}.blocks.0.attn2conv.conv.conv2.0.weight'
        if key not in sd:
            raise ConversionError(f'missing key {key!r} in the checkpoint')
        groups.append(int(sd[key].shape[0]) // kernel_size**2)
    return groups


def _convert_out_norms(conv: KeyMapper) -> None:
    """The dense backbone's BN output norms; the backbone must be built to match."""
    outs = indices(conv.sd, r'backbone\.norm(\d+)\.')
    outs = [i for i in outs if f'backbone.norm{i}.weight' in conv.sd]
    if not outs:
        raise ConversionError('dense checkpoint without output norms backbone.norm{i}.*')
    for i in outs:
        conv.apply(norm_rules(f'norm{i}', f'norm{i}'), 'backbone.', 'backbone.')
    conv.report.backbone_overrides = dict(out_indices=tuple(outs), out_norm_cfg=dict(type='SyncBN'))
    conv.report.notes.append('the official dense backbones normalise their outputs with SyncBN '
                             '(out norms default to LN here): build the backbone with the '
                             'settings above')


def _sort_dense_extras(conv: KeyMapper, backbone_only: bool) -> None:
    """Keep an FPN neck (its keys are the same in mmdet 3.x), report everything else."""
    neck = [k for k in conv.sd if k.startswith('neck.')]
    if neck and all(_FPN_KEY.match(k) for k in neck) and not backbone_only:
        lateral = indices(conv.sd, r'neck\.lateral_convs\.(\d+)\.')
        for key in neck:
            conv.keep(key, key)
        in_channels = [
            int(conv.sd[f'neck.lateral_convs.{i}.conv.weight'].shape[1]) for i in lateral
        ]
        out_channels = int(conv.sd['neck.lateral_convs.0.conv.weight'].shape[0])
        conv.report.neck_cfg = dict(
            type='FPN',
            in_channels=in_channels,
            out_channels=out_channels,
            num_outs=len(in_channels) + 1)
    elif neck:
        reason = ('neck: --backbone-only'
                  if backbone_only else 'neck: not a plain FPN, not converted to mmdet 3.x')
        for key in neck:
            conv.skip(key, reason, mapped=backbone_only)
    for key in conv.sd:
        top = key.split('.', 1)[0]
        if top in ('backbone', 'neck'):
            continue
        reason = (f'{top}: mmdet 2.x / mmseg 0.x task head, not converted'
                  if top in _TASK_HEADS else f'{top}: not part of the backbone')
        conv.skip(key, reason, mapped=False)
