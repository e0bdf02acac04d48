"""Convert released checkpoints of the official code into this project's key layout.

Two sources:

* ``demystify`` (Atten4Vis/DemystifyLocalViT): classification checkpoints ``{'model': sd}`` of
  DW-Conv, D-DW-Conv and I-Dynamic, and its mmdet 2.x / mmseg 0.x checkpoints
  ``{'state_dict': {'backbone.*', 'neck.*', '*_head.*'}}`` (SyncBN out norms ``norm0-3``);
* ``swin-official`` (microsoft/Swin-Transformer): classification releases ``{'model': sd}``.

The conversions are pure functions on state dicts: no model is built. Besides renaming they
undo one layout difference: the official patch merging concatenates the 2x2 neighbours
position-major (``x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2]``) while mmcv's
``PatchMerging`` unfolds channel-major (for each channel: (0, 0), (0, 1), (1, 0), (1, 1)), so the
columns of ``reduction.weight`` and the 4C entries of ``downsample.norm`` are permuted.
Everything else keeps its layout: both dynamic kernel generators are read in the official order
((C, K, K) per sample for D-DW-Conv, (G, K, K) per position for I-Dynamic).

Pass ``target_shapes`` (the shapes of the receiving model's state dict) to also check that the
result fits a given model. Every failure is a :class:`ConversionError` with a one-line message
that names the offending key.
"""
import math
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

__all__ = [
    'ConversionError', 'ConversionReport', 'convert_checkpoint', 'convert_demystify',
    'convert_swin_official', 'detect_kind', 'model_family', 'SOURCES'
]

SOURCES = ('demystify', 'swin-official')

#: family -> (display name, backbone class name)
FAMILIES = {
    'dwconv': ('DW-Conv', 'DWConvNet'),
    'ddwconv': ('D-DW-Conv', 'DynamicDWConvNet'),
    'idynamic': ('I-Dynamic', 'IDynamicNet'),
    'swin': ('Swin', 'SwinNet'),
}

_BN = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')
_LN = ('weight', 'bias')
#: top-level prefixes of mmdet 2.x / mmseg 0.x task heads
_TASK_HEADS = ('rpn_head', 'roi_head', 'bbox_head', 'mask_head', 'decode_head', 'auxiliary_head',
               'semantic_head')
_FPN_KEY = re.compile(r'neck\.(lateral_convs|fpn_convs)\.(\d+)\.conv\.(weight|bias)$')

Transform = Optional[Callable[[torch.Tensor], torch.Tensor]]
#: (source suffix, target suffix, transform)
Rule = Tuple[str, str, Transform]


class ConversionError(ValueError):
    """The checkpoint does not fit the requested conversion or model (one-line message)."""


@dataclass
class ConversionReport:
    """What a conversion did. Key dicts map a key to its reason; ``format()`` groups them."""
    source: str
    kind: str  # 'classification' or 'dense'
    family: str
    model: str
    backbone_only: bool
    arch: dict = field(default_factory=dict)
    converted: int = 0
    #: source key -> why it is not in the result although it could have been (by choice)
    dropped: Dict[str, str] = field(default_factory=dict)
    #: source key -> why it could not be converted
    unmapped: Dict[str, str] = field(default_factory=dict)
    #: result key -> how it was made without a source tensor
    recomputed: Dict[str, str] = field(default_factory=dict)
    #: backbone settings the result needs beyond the zoo config (dense checkpoints)
    backbone_overrides: dict = field(default_factory=dict)
    #: config of a kept neck (dense checkpoints with an FPN), for building and checking it
    neck_cfg: Optional[dict] = None
    notes: List[str] = field(default_factory=list)

    def format(self, examples: int = 4) -> str:
        display = FAMILIES.get(self.family, (self.family, ))[0]
        arch = ', '.join(f'{k} {v}' for k, v in self.arch.items())
        lines = [
            f'{self.source} {self.kind} checkpoint ({display}; {arch}) -> {self.model}'
            f'{" (backbone only)" if self.backbone_only else ""}: '
            f'{self.converted} tensors converted'
        ]
        for title, keys in (('dropped', self.dropped), ('not mapped', self.unmapped),
                            ('recomputed', self.recomputed)):
            for reason, group in _group_by_reason(keys).items():
                shown = ', '.join(group[:examples]) + (', ...' if len(group) > examples else '')
                lines.append(f'  {title} {len(group)} key{"s" * (len(group) != 1)} '
                             f'({reason}): {shown}')
        if self.backbone_overrides:
            lines.append(f'  backbone needs: {self.backbone_overrides}')
        if self.neck_cfg:
            lines.append(f'  kept neck: {self.neck_cfg}')
        lines += [f'  note: {n}' for n in self.notes]
        return '\n'.join(lines)

    def summary(self) -> dict:
        """A plain-types summary (for checkpoint ``meta``)."""
        counts = {
            title: {
                reason: len(keys)
                for reason, keys in _group_by_reason(getattr(self, title)).items()
            }
            for title in ('dropped', 'unmapped', 'recomputed')
        }
        return dict(
            source=self.source,
            kind=self.kind,
            family=self.family,
            model=self.model,
            backbone_only=self.backbone_only,
            arch=dict(self.arch),
            converted=self.converted,
            backbone_overrides=dict(self.backbone_overrides),
            neck_cfg=dict(self.neck_cfg) if self.neck_cfg else None,
            notes=list(self.notes),
            **counts)


def _group_by_reason(keys: Mapping[str, str]) -> Dict[str, List[str]]:
    groups: Dict[str, List[str]] = OrderedDict()
    for key, reason in keys.items():
        groups.setdefault(reason, []).append(key)
    return groups


def _first(keys: Sequence[str]) -> str:
    more = f' (and {len(keys) - 1} more)' if len(keys) > 1 else ''
    return f'{keys[0]!r}{more}'


# ---------------------------------------------------------------------------------------------
# checkpoint formats


def model_family(model: str) -> str:
    """'dwconv' / 'ddwconv' / 'idynamic' / 'swin' for a zoo name (or a family name)."""
    if model in FAMILIES:
        return model
    from .registry import MODELS
    from .zoo import get_backbone_cfg
    try:
        type_name = get_backbone_cfg(model)['type']
    except KeyError as e:
        raise ConversionError(e.args[0]) from None
    cls = MODELS.get(type_name)
    bases = [c.__name__ for c in getattr(cls, '__mro__', ())] or [type_name]
    for family, (_, class_name) in FAMILIES.items():
        if class_name in bases:
            return family
    raise ConversionError(f'model {model!r} ({type_name}) is none of '
                          f'{", ".join(c for _, c in FAMILIES.values())}: nothing to convert to')


def detect_kind(checkpoint: Mapping) -> Tuple[str, Dict[str, torch.Tensor]]:
    """('classification' | 'dense', state dict) of a loaded checkpoint.

    ``{'model': sd}`` is a classification checkpoint of the official code; ``{'state_dict': sd}``
    with ``backbone.*`` keys one of its mmdet / mmseg checkpoints. A bare state dict is
    classified by whether its keys start with ``backbone.``.
    """
    if not isinstance(checkpoint, Mapping):
        raise ConversionError(f'the checkpoint is a {type(checkpoint).__name__}, not a dict')
    if isinstance(checkpoint.get('model'), Mapping):
        kind, sd = 'classification', checkpoint['model']
    elif isinstance(checkpoint.get('state_dict'), Mapping):
        kind, sd = 'dense', checkpoint['state_dict']
        if not any(k.startswith('backbone.') for k in sd):
            raise ConversionError("the checkpoint's state_dict has no 'backbone.*' keys: not an "
                                  'mmdet/mmseg checkpoint of the official code')
    elif checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        sd = checkpoint
        kind = 'dense' if any(k.startswith('backbone.') for k in sd) else 'classification'
    else:
        raise ConversionError("unrecognised checkpoint: expected {'model': state_dict} or "
                              "{'state_dict': {'backbone.*': ...}}, got the keys "
                              f'{sorted(map(str, checkpoint))[:6]}')
    for key, value in sd.items():
        if not isinstance(value, torch.Tensor):
            raise ConversionError(f'the value at key {key!r} is a {type(value).__name__}, '
                                  'not a tensor')
    sd = dict(sd)
    if sd and all(k.startswith('module.') for k in sd):  # saved from a DDP wrapper
        sd = {k[len('module.'):]: v for k, v in sd.items()}
    return kind, sd


# ---------------------------------------------------------------------------------------------
# layout transforms


def merge_permutation(channels: int) -> torch.Tensor:
    """Indices into the official 4C patch-merging layout, in mmcv's unfold order.

    mmcv: slot ``c * 4 + 2 * row + col``; official: slot ``p * C + c`` with the neighbour
    position ``p = row + 2 * col`` ((0, 0), (1, 0), (0, 1), (1, 1)).
    """
    c = torch.arange(channels).view(channels, 1, 1)
    row = torch.arange(2).view(1, 2, 1)
    col = torch.arange(2).view(1, 1, 2)
    return ((row + 2 * col) * channels + c).reshape(-1)


def _permute_merge_columns(weight: torch.Tensor) -> torch.Tensor:
    if weight.dim() != 2 or weight.shape[1] % 4:
        raise ConversionError(f'patch-merging reduction of shape {tuple(weight.shape)} is not '
                              '(2C, 4C)')
    return weight[:, merge_permutation(weight.shape[1] // 4)].contiguous()


def _permute_merge_norm(vector: torch.Tensor) -> torch.Tensor:
    if vector.dim() != 1 or vector.shape[0] % 4:
        raise ConversionError(f'patch-merging norm of shape {tuple(vector.shape)} is not (4C,)')
    return vector[merge_permutation(vector.shape[0] // 4)].contiguous()


def relative_position_index(window: int) -> torch.Tensor:
    """Swin's (window^2, window^2) index into the (2 * window - 1)^2-row bias table."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window),
                                        indexing='ij')).flatten(1)
    rel = coords[:, :, None] - coords[:, None, :] + (window - 1)
    return rel[0] * (2 * window - 1) + rel[1]


# ---------------------------------------------------------------------------------------------
# rule tables: (source suffix, target suffix, transform)


def _norm(src: str, dst: str, params: Sequence[str] = _BN) -> List[Rule]:
    return [(f'{src}.{p}', f'{dst}.{p}', None) for p in params]


def _linear(src: str, dst: str, bias: bool = True) -> List[Rule]:
    params = ('weight', 'bias') if bias else ('weight', )
    return [(f'{src}.{p}', f'{dst}.{p}', None) for p in params]


_DW_MIXER: Dict[str, List[Rule]] = {
    'dwconv': [*_linear('attn2conv.conv', 'mixer.conv')],
    'ddwconv': [
        ('attn2conv.conv.conv1.weight', 'mixer.conv.reduce.conv.weight', None),
        *_norm('attn2conv.conv.bn', 'mixer.conv.reduce.bn'),
        *_linear('attn2conv.conv.conv2', 'mixer.conv.kernel_gen'),
        ('attn2conv.conv.bias', 'mixer.conv.bias', None),
    ],
    'idynamic': [
        *_linear('attn2conv.conv.conv1.0', 'mixer.conv.reduce.conv'),
        *_norm('attn2conv.conv.conv1.1', 'mixer.conv.reduce.bn'),
        *_linear('attn2conv.conv.conv2.0', 'mixer.conv.kernel_gen'),
    ],
}

_DW_BLOCK: List[Rule] = [
    ('attn2conv.conv0.weight', 'pw_in.conv.weight', None),
    *_norm('attn2conv.bn0', 'pw_in.bn'),
    *_norm('attn2conv.bn', 'mixer.bn'),
    ('attn2conv.conv2.weight', 'pw_out.conv.weight', None),
    *_norm('attn2conv.bn2', 'pw_out.bn'),
    *_norm('bn', 'mlp_norm'),
    *_linear('mlp.fc1', 'ffn.layers.0.0'),
    *_linear('mlp.fc2', 'ffn.layers.1'),
]

_SWIN_BLOCK: List[Rule] = [
    *_norm('norm1', 'norm1', _LN),
    *_linear('attn.qkv', 'attn.w_msa.qkv'),
    *_linear('attn.proj', 'attn.w_msa.proj'),
    ('attn.relative_position_bias_table', 'attn.w_msa.relative_position_bias_table', None),
    *_norm('norm2', 'norm2', _LN),
    *_linear('mlp.fc1', 'ffn.layers.0.0'),
    *_linear('mlp.fc2', 'ffn.layers.1'),
]

_STEM: List[Rule] = _linear('patch_embed.proj', 'patch_embed.projection') + _norm(
    'patch_embed.norm', 'patch_embed.norm', _LN)

_DOWNSAMPLE: List[Rule] = [
    ('reduction.weight', 'reduction.weight', _permute_merge_columns),
    ('norm.weight', 'norm.weight', _permute_merge_norm),
    ('norm.bias', 'norm.bias', _permute_merge_norm),
]


def _mixer_of_block(sd: Mapping[str, torch.Tensor], prefix: str) -> Tuple[str, str]:
    """The family a DW block's keys belong to, and the key that tells."""
    probes = [('idynamic', 'attn2conv.conv.conv1.0.weight'),
              ('ddwconv', 'attn2conv.conv.conv1.weight'), ('dwconv', 'attn2conv.conv.weight')]
    for family, suffix in probes:
        if prefix + suffix in sd:
            return family, prefix + suffix
    swin = prefix + 'attn.qkv.weight' in sd
    hint = ': it looks like a Swin checkpoint (use swin-official)' if swin else ''
    raise ConversionError(f'no 7x7 mixer under {prefix + "attn2conv.conv"!r}: not a '
                          f'DemystifyLocalViT checkpoint{hint}')


class _Converter:
    """Applies rule tables to one source state dict and tracks every key's fate."""

    def __init__(self, sd: Dict[str, torch.Tensor], report: ConversionReport) -> None:
        self.sd = sd
        self.report = report
        self.out: Dict[str, torch.Tensor] = OrderedDict()
        self.origin: Dict[str, str] = {}  # result key -> source key
        self.consumed: set = set()
        self.missing: List[str] = []

    def apply(self, rules: Sequence[Rule], src_prefix: str, dst_prefix: str) -> None:
        for src, dst, transform in rules:
            src_key, dst_key = src_prefix + src, dst_prefix + dst
            if src_key not in self.sd:
                if src.endswith('num_batches_tracked'):  # harmless: only counts BN updates
                    self.out[dst_key] = torch.tensor(0, dtype=torch.long)
                    self.report.recomputed[dst_key] = 'BN num_batches_tracked absent: set to 0'
                else:
                    self.missing.append(src_key)
                continue
            value = self.sd[src_key]
            self.out[dst_key] = transform(value) if transform is not None else value
            self.origin[dst_key] = src_key
            self.consumed.add(src_key)

    def put(self, dst_key: str, value: torch.Tensor, reason: str) -> None:
        self.out[dst_key] = value
        self.report.recomputed[dst_key] = reason

    def skip(self, src_key: str, reason: str, mapped: bool = True) -> None:
        """Leave ``src_key`` out of the result: dropped by choice, or not mappable."""
        (self.report.dropped if mapped else self.report.unmapped)[src_key] = reason
        self.consumed.add(src_key)

    def finish(self, model: str) -> Dict[str, torch.Tensor]:
        if self.missing:
            raise ConversionError(f'missing key {_first(self.missing)} in the checkpoint: it '
                                  f'does not fit {model}')
        extra = [k for k in self.sd if k not in self.consumed]
        if extra:
            raise ConversionError(f'unexpected key {_first(extra)} in the checkpoint: no '
                                  f'counterpart in {model}')
        self.report.converted = len(self.origin)
        return self.out


def _indices(sd: Mapping[str, torch.Tensor], pattern: str) -> List[int]:
    regex = re.compile(pattern)
    found = {int(m.group(1)) for m in map(regex.match, sd) if m}
    return list(range(max(found) + 1)) if found else []


def _depths(sd: Mapping[str, torch.Tensor], prefix: str) -> List[int]:
    layers = _indices(sd, re.escape(prefix) + r'layers\.(\d+)\.')
    if not layers:
        raise ConversionError(f'no {prefix}layers.* keys: not a checkpoint of the official code')
    blocks = [re.escape(f'{prefix}layers.{i}.blocks.') + r'(\d+)\.' for i in layers]
    return [len(_indices(sd, pattern)) for pattern in blocks]


def _embed_dims(sd: Mapping[str, torch.Tensor], prefix: str) -> int:
    key = prefix + 'patch_embed.proj.weight'
    if key not in sd:
        raise ConversionError(f'missing key {key!r} in the checkpoint')
    return int(sd[key].shape[0])


def _check_target(conv: _Converter, target_shapes: Optional[Mapping[str, Sequence[int]]],
                  model: str) -> None:
    if target_shapes is None:
        return
    arch = ', '.join(f'{k} {v}' for k, v in conv.report.arch.items())
    produced = [k for k in conv.out if k not in target_shapes]
    if produced:
        src = conv.origin.get(produced[0], 'recomputed')
        raise ConversionError(f'checkpoint key {src!r} -> {_first(produced)} has no counterpart '
                              f'in {model} (checkpoint: {arch})')
    absent = [k for k in target_shapes if k not in conv.out]
    if absent:
        raise ConversionError(f'{model} key {_first(absent)} has no source in the checkpoint '
                              f'(checkpoint: {arch})')
    for key, value in conv.out.items():
        want = tuple(target_shapes[key])
        if tuple(value.shape) != want:
            src = conv.origin.get(key, 'recomputed')
            raise ConversionError(f'shape mismatch at checkpoint key {src!r} -> {key!r}: '
                                  f'checkpoint {tuple(value.shape)} vs {model} {want}')


# ---------------------------------------------------------------------------------------------
# DemystifyLocalViT


def convert_demystify(
    state_dict: Mapping,
    model: str,
    backbone_only: bool = False,
    target_shapes: Optional[Mapping[str, Sequence[int]]] = None
) -> Tuple[Dict[str, torch.Tensor], ConversionReport]:
    """Convert a DemystifyLocalViT checkpoint (the loaded object: ``{'model': ...}``,
    ``{'state_dict': ...}`` or a bare state dict) for ``model`` (a zoo name).

    Classification checkpoints give ``backbone.*`` (+ ``head.fc.*`` unless ``backbone_only``),
    for mmpretrain's ``ImageClassifier``. Dense (mmdet/mmseg) checkpoints give ``backbone.*``
    for a backbone with ``report.backbone_overrides`` (all four outputs, BN-type out norms), plus
    an FPN neck's ``neck.*`` (same names in mmdet 3.x) unless ``backbone_only``; task heads are
    reported as not mapped.
    """
    family = model_family(model)
    if family == 'swin':
        raise ConversionError(f'{model} is a Swin model: use the swin-official conversion')
    kind, sd = detect_kind(state_dict)
    report = ConversionReport('demystify', kind, family, model, backbone_only)
    conv = _Converter(sd, report)
    prefix = 'backbone.' if kind == 'dense' else ''
    if kind == 'dense':
        _sort_dense_extras(conv, backbone_only)

    depths = _depths(sd, prefix)
    found, probe = _mixer_of_block(sd, f'{prefix}layers.0.blocks.0.')
    if found != family:
        raise ConversionError(f'the checkpoint holds a {FAMILIES[found][0]} model (key '
                              f'{probe!r}) but {model} is {FAMILIES[family][0]}')
    report.arch = dict(embed_dims=_embed_dims(sd, prefix), depths=depths)
    if family == 'idynamic':
        report.arch['kernel_groups'] = _idynamic_groups(sd, prefix, depths)

    conv.apply(_STEM, prefix, 'backbone.')
    rules = _DW_BLOCK + _DW_MIXER[family]
    for i, depth in enumerate(depths):
        for j in range(depth):
            conv.apply(rules, f'{prefix}layers.{i}.blocks.{j}.', f'backbone.stages.{i}.blocks.{j}.')
        if i < len(depths) - 1:
            conv.apply(_DOWNSAMPLE, f'{prefix}layers.{i}.downsample.',
                       f'backbone.stages.{i}.downsample.')

    last = len(depths) - 1
    if kind == 'classification':
        conv.apply(_norm('norm', f'norm{last}', _LN), '', 'backbone.')
        _convert_head(conv, backbone_only)
    else:
        outs = _indices(sd, r'backbone\.norm(\d+)\.')
        outs = [i for i in outs if f'backbone.norm{i}.weight' in sd]
        if not outs:
            raise ConversionError('dense checkpoint without output norms backbone.norm{i}.*')
        for i in outs:
            conv.apply(_norm(f'norm{i}', f'norm{i}'), 'backbone.', 'backbone.')
        report.backbone_overrides = dict(out_indices=tuple(outs), out_norm_cfg=dict(type='SyncBN'))
        report.notes.append('the official dense backbones normalise their outputs with SyncBN '
                            '(out norms default to LN here): build the backbone with the '
                            'settings above')
    out = conv.finish(model)
    _check_target(conv, target_shapes, model)
    return out, report


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


def _convert_head(conv: _Converter, backbone_only: bool) -> None:
    head = [k for k in conv.sd if k.startswith('head.')]
    if backbone_only:
        for key in head:
            conv.skip(key, 'classifier head: --backbone-only')
    else:
        conv.apply(_linear('head', 'head.fc'), '', '')


def _sort_dense_extras(conv: _Converter, backbone_only: bool) -> None:
    """Keep an FPN neck (its keys are the same in mmdet 3.x), report everything else."""
    neck = [k for k in conv.sd if k.startswith('neck.')]
    if neck and all(_FPN_KEY.match(k) for k in neck) and not backbone_only:
        lateral = _indices(conv.sd, r'neck\.lateral_convs\.(\d+)\.')
        for key in neck:
            conv.out[key] = conv.sd[key]
            conv.origin[key] = key
            conv.consumed.add(key)
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


# ---------------------------------------------------------------------------------------------
# Swin Transformer (official releases)


def convert_swin_official(
    state_dict: Mapping,
    model: str = 'swin_t',
    backbone_only: bool = False,
    target_shapes: Optional[Mapping[str, Sequence[int]]] = None
) -> Tuple[Dict[str, torch.Tensor], ConversionReport]:
    """Convert an official Swin Transformer classification release (``{'model': ...}``) for
    mmpretrain's ``SwinTransformer`` (our ``SwinNet``) in ``ImageClassifier``.

    ``relative_position_index`` is rebuilt from the window size (it must equal the source's),
    ``attn_mask`` buffers are dropped: the model makes its masks at run time.
    """
    family = model_family(model)
    if family != 'swin':
        raise ConversionError(f'{model} is not a Swin model: use the demystify conversion')
    kind, sd = detect_kind(state_dict)
    if kind != 'classification':
        raise ConversionError('swin-official: only classification releases ({"model": ...}) '
                              'are supported, this one has backbone.* keys')
    report = ConversionReport('swin-official', kind, family, model, backbone_only)
    conv = _Converter(sd, report)
    depths = _depths(sd, '')
    heads = []
    for i in range(len(depths)):
        key = f'layers.{i}.blocks.0.attn.relative_position_bias_table'
        if key not in sd:
            hint = (': it looks like a DemystifyLocalViT checkpoint (use demystify)'
                    if f'layers.{i}.blocks.0.attn2conv.conv0.weight' in sd else '')
            raise ConversionError(f'missing key {key!r} in the checkpoint{hint}')
        heads.append(int(sd[key].shape[1]))
    report.arch = dict(embed_dims=_embed_dims(sd, ''), depths=depths, num_heads=heads)

    conv.apply(_STEM, '', 'backbone.')
    for i, depth in enumerate(depths):
        for j in range(depth):
            src, dst = f'layers.{i}.blocks.{j}.', f'backbone.stages.{i}.blocks.{j}.'
            conv.apply(_SWIN_BLOCK, src, dst)
            _swin_buffers(conv, src, dst)
        if i < len(depths) - 1:
            conv.apply(_DOWNSAMPLE, f'layers.{i}.downsample.', f'backbone.stages.{i}.downsample.')
    conv.apply(_norm('norm', f'norm{len(depths) - 1}', _LN), '', 'backbone.')
    _convert_head(conv, backbone_only)
    out = conv.finish(model)
    _check_target(conv, target_shapes, model)
    return out, report


def _swin_buffers(conv: _Converter, src: str, dst: str) -> None:
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


# ---------------------------------------------------------------------------------------------


def convert_checkpoint(
    checkpoint: Mapping,
    source: str,
    model: str,
    backbone_only: bool = False,
    target_shapes: Optional[Mapping[str, Sequence[int]]] = None
) -> Tuple[Dict[str, torch.Tensor], ConversionReport]:
    """Dispatch on ``source`` (one of :data:`SOURCES`)."""
    if source == 'demystify':
        return convert_demystify(checkpoint, model, backbone_only, target_shapes)
    if source == 'swin-official':
        return convert_swin_official(checkpoint, model, backbone_only, target_shapes)
    raise ConversionError(f'unknown source {source!r}; choose from {", ".join(SOURCES)}')
