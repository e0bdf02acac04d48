"""What both source layouts share: the error type, the model families, the checkpoint formats,
the rule tables and the one layout transform (patch merging).

A rule is ``(source suffix, target suffix, transform)``: the tensor under ``src_prefix +
source suffix`` goes to ``dst_prefix + target suffix``, through ``transform`` if not None.
"""
import re
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from backbones.registry import MODELS
from backbones.zoo import get_model_info
from ..errors import ToolError

#: the families with an official release layout (dwconv, ddwconv, idynamic: DemystifyLocalViT;
#: swin: microsoft/Swin-Transformer)
FAMILIES = ('swin', 'dwconv', 'ddwconv', 'idynamic')

BN_PARAMS = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')
LN_PARAMS = ('weight', 'bias')

Transform = Optional[Callable[[torch.Tensor], torch.Tensor]]
#: (source suffix, target suffix, transform)
Rule = Tuple[str, str, Transform]


class ConversionError(ToolError, ValueError):
    """The checkpoint does not fit the requested conversion or model.

    Its message is one line that names the offending key; as a
    :class:`~harness.errors.ToolError` it ends a tool with one ``error:`` line and exit code 2.
    """


def first_key(keys: Sequence[str]) -> str:
    """``"'a.b' (and 3 more)"``: the first of ``keys`` and how many follow."""
    more = f' (and {len(keys) - 1} more)' if len(keys) > 1 else ''
    return f'{keys[0]!r}{more}'


# ---------------------------------------------------------------------------------------------
# model families


def family_title(family: str) -> str:
    """The display title of a paper family (``'dwconv'`` -> ``'DW Conv.'``), from the zoo
    record of its T-size model; the family name itself for any other."""
    try:
        return get_model_info(f'{family}_t').family_title
    except KeyError:
        return family


def model_family(model: str) -> str:
    """The family whose release layout fits ``model``.

    Args:
        model (str): a zoo name (e.g. ``'dwconv_t'``) or a family name.

    Returns:
        str: one of :data:`FAMILIES`: the zoo record's family, or else the paper family whose
        registered backbone class the model's class subclasses (a submitted backbone).
    """
    if model in FAMILIES:
        return model
    try:
        info = get_model_info(model)
    except KeyError as e:
        raise ConversionError(e.args[0]) from None
    if info.family in FAMILIES:
        return info.family
    type_name = info.backbone['type']
    cls = MODELS.get(type_name)
    bases = [c.__name__ for c in getattr(cls, '__mro__', ())] or [type_name]
    paper_types = {family: get_model_info(f'{family}_t').backbone['type'] for family in FAMILIES}
    for family, paper_type in paper_types.items():
        if paper_type in bases:
            return family
    raise ConversionError(f'model {model!r} ({type_name}) is none of '
                          f'{", ".join(paper_types.values())}: nothing to convert to')


# ---------------------------------------------------------------------------------------------
# checkpoint formats


def detect_kind(checkpoint: Mapping) -> Tuple[str, Dict[str, torch.Tensor]]:
    """The kind and the state dict of a loaded checkpoint.

    ``{'model': sd}`` is a classification checkpoint of the official code; ``{'state_dict': sd}``
    with ``backbone.*`` keys one of its mmdet / mmseg checkpoints. A bare state dict is
    classified by whether its keys start with ``backbone.``. Other top-level entries (epoch,
    optimizer, configuration) are ignored; a ``module.`` prefix of every key (DDP) is removed.

    Args:
        checkpoint (Mapping): the loaded checkpoint.

    Returns:
        tuple[str, dict]: ``'classification'`` or ``'dense'``, and the state dict.
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


def indices(sd: Mapping[str, torch.Tensor], pattern: str) -> List[int]:
    """``0 .. max(i)`` where ``pattern``'s group 1 matches a key's start as the number ``i``."""
    regex = re.compile(pattern)
    found = {int(m.group(1)) for m in map(regex.match, sd) if m}
    return list(range(max(found) + 1)) if found else []


def stage_depths(sd: Mapping[str, torch.Tensor], prefix: str) -> List[int]:
    """The number of blocks of each ``{prefix}layers.{i}`` of the official layout."""
    layers = indices(sd, re.escape(prefix) + r'layers\.(\d+)\.')
    if not layers:
        raise ConversionError(f'no {prefix}layers.* keys: not a checkpoint of the official code')
    blocks = [re.escape(f'{prefix}layers.{i}.blocks.') + r'(\d+)\.' for i in layers]
    return [len(indices(sd, pattern)) for pattern in blocks]


def embed_dims_of(sd: Mapping[str, torch.Tensor], prefix: str) -> int:
    """The stem's output channels."""
    key = prefix + 'patch_embed.proj.weight'
    if key not in sd:
        raise ConversionError(f'missing key {key!r} in the checkpoint')
    return int(sd[key].shape[0])


# ---------------------------------------------------------------------------------------------
# layout transforms


def merge_permutation(channels: int) -> torch.Tensor:
    """Indices into the official 4C patch-merging layout, in mmcv's unfold order.

    mmcv: slot ``c * 4 + 2 * row + col``; official: slot ``p * C + c`` with the neighbour
    position ``p = row + 2 * col`` ((0, 0), (1, 0), (0, 1), (1, 1)).

    Args:
        channels (int): C, the channels before merging.

    Returns:
        torch.Tensor: the 4C indices.
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


# ---------------------------------------------------------------------------------------------
# rule tables


def norm_rules(src: str, dst: str, params: Sequence[str] = BN_PARAMS) -> List[Rule]:
    """Rules for a norm layer's ``params`` (BatchNorm's by default)."""
    return [(f'{src}.{p}', f'{dst}.{p}', None) for p in params]


def linear_rules(src: str, dst: str, bias: bool = True) -> List[Rule]:
    """Rules for a linear or convolution layer's weight (and bias)."""
    params = ('weight', 'bias') if bias else ('weight', )
    return [(f'{src}.{p}', f'{dst}.{p}', None) for p in params]


#: the patch-embedding stem (conv + LN), same in both layouts
STEM: List[Rule] = linear_rules('patch_embed.proj', 'patch_embed.projection') + norm_rules(
    'patch_embed.norm', 'patch_embed.norm', LN_PARAMS)

#: patch merging: the official position-major 4C layout to mmcv's channel-major one
DOWNSAMPLE: List[Rule] = [
    ('reduction.weight', 'reduction.weight', _permute_merge_columns),
    ('norm.weight', 'norm.weight', _permute_merge_norm),
    ('norm.bias', 'norm.bias', _permute_merge_norm),
]

#: the two-layer MLP of a block, same in both layouts
MLP: List[Rule] = [
    *linear_rules('mlp.fc1', 'ffn.layers.0.0'), *linear_rules('mlp.fc2', 'ffn.layers.1')
]
