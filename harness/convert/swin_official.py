"""The layout of microsoft/Swin-Transformer's classification releases (``{'model': sd}``), for
mmpretrain's ``SwinTransformer`` (our ``SwinNet``) in an ``ImageClassifier``."""
import math
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from .common import (DOWNSAMPLE, LN_PARAMS, MLP, STEM, ConversionError, Rule, detect_kind,
                     embed_dims_of, linear_rules, model_family, norm_rules, stage_depths)
from .report import ConversionReport, KeyMapper

_BLOCK: List[Rule] = [
    *norm_rules('norm1', 'norm1', LN_PARAMS),
    *linear_rules('attn.qkv', 'attn.w_msa.qkv'),
    *linear_rules('attn.proj', 'attn.w_msa.proj'),
    ('attn.relative_position_bias_table', 'attn.w_msa.relative_position_bias_table', None),
    *norm_rules('norm2', 'norm2', LN_PARAMS),
    *MLP,
]


def relative_position_index(window: int) -> torch.Tensor:
    """Swin's index into the relative position bias table.

    Args:
        window (int): the window side.

    Returns:
        torch.Tensor: (window^2, window^2) indices into the (2 * window - 1)^2 table rows.
    """
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window),
                                        indexing='ij')).flatten(1)
    rel = coords[:, :, None] - coords[:, None, :] + (window - 1)
    return rel[0] * (2 * window - 1) + rel[1]


def convert_swin_official(
    state_dict: Mapping,
    model: str = 'swin_t',
    backbone_only: bool = False,
    target_shapes: Optional[Mapping[str, Sequence[int]]] = None
) -> Tuple[Dict[str, torch.Tensor], ConversionReport]:
    """Convert an official Swin Transformer classification release.

    ``relative_position_index`` is rebuilt from the window size (it must equal the source's),
    ``attn_mask`` buffers are dropped: the model makes its masks at run time.

    Args:
        state_dict (Mapping): the loaded checkpoint, ``{'model': ...}`` or a bare state dict.
        model (str): the zoo name to convert for. Defaults to ``'swin_t'``.
        backbone_only (bool): drop the classifier head. Defaults to False.
        target_shapes (Mapping, optional): the receiving model's key -> shape, to check that
            the result fits it exactly. Defaults to None.

    Returns:
        tuple[dict, ConversionReport]: the converted state dict and what was done.
    """
    family = model_family(model)
    if family != 'swin':
        raise ConversionError(f'{model} is not a Swin model: use the demystify conversion')
    kind, sd = detect_kind(state_dict)
    if kind != 'classification':
        raise ConversionError('swin-official: only classification releases ({"model": ...}) '
                              'are supported, this one has backbone.* keys')
    report = ConversionReport('swin-official', kind, family, model, backbone_only)
    conv = KeyMapper(sd, report)
    depths = stage_depths(sd, '')
    heads = []
    for i in range(len(depths)):
        key = f'layers.{i}.blocks.0.attn.relative_position_bias_table'
        if key not in sd:
            hint = (': it looks like a DemystifyLocalViT checkpoint (use demystify)'
                    if f'layers.{i}.blocks.0.attn2conv.conv0.weight' in sd else '')
            raise ConversionError(f'missing key {key!r} in the checkpoint{hint}')
        heads.append(int(sd[key].shape[1]))
    report.arch = dict(embed_dims=embed_dims_of(sd, ''), depths=depths, num_heads=heads)

    conv.apply(STEM, '', 'backbone.')
    for i, depth in enumerate(depths):
        for j in range(depth):
            src, dst = f'layers.{i}.blocks.{j}.', f'backbone.stages.{i}.blocks.{j}.'
            conv.apply(_BLOCK, src, dst)
            _swin_buffers(conv, src, dst)
        if i < len(depths) - 1:
            conv.apply(DOWNSAMPLE, f'layers.{i}.downsample.', f'backbone.stages.{i}.downsample.')
    conv.apply(norm_rules('norm', f'norm{len(depths) - 1}', LN_PARAMS), '', 'backbone.')
    conv.convert_head(backbone_only)
    return conv.finish(model, target_shapes), report


def _swin_buffers(conv: KeyMapper, src: str, dst: str) -> None:
    """The index buffer, rebuilt (and checked against the source's); masks dropped."""
    table = conv.sd.get(src + 'attn.relative_position_bias_table')
    if table is None:
        return  # reported as missing by the rules
    window = (math.isqrt(table.shape[0]) + 1) // 2
    if (2 * window - 1)**2 != table.shape[0]:
        raise ConversionError(f'{src}attn.relative_position_bias_table has {table.shape[0]} '
                              'rows: not (2 * window - 1)^2')
    index = relative_position_index(window)
    src_key = src + 'attn.relative_position_index'
    how = 'absent from the checkpoint'
    if src_key in conv.sd:
        if not torch.equal(conv.sd[src_key].long(), index):
            raise ConversionError(f'{src_key} is not the standard Swin index for window '
                                  f'{window}')
        conv.consumed.add(src_key)
        how = "equal to the checkpoint's"
    conv.put(dst + 'attn.w_msa.relative_position_index', index,
             f'relative_position_index buffer: Swin index for window {window}, {how}')
    if src + 'attn_mask' in conv.sd:
        conv.skip(src + 'attn_mask', 'attn_mask buffer: the model makes its masks at run time')
