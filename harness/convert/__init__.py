"""Convert released checkpoints of the official code into this project's key layout.

Two sources:

* ``demystify`` (Atten4Vis/DemystifyLocalViT, :mod:`.demystify`): classification checkpoints
  ``{'model': sd}`` of DW-Conv, D-DW-Conv and I-Dynamic, and its mmdet 2.x / mmseg 0.x
  checkpoints ``{'state_dict': {'backbone.*', 'neck.*', '*_head.*'}}`` (SyncBN out norms
  ``norm0-3``);
* ``swin-official`` (microsoft/Swin-Transformer, :mod:`.swin_official`): classification
  releases ``{'model': sd}``.

The conversions are pure functions on state dicts: no model is built. Besides renaming they
undo one layout difference: the official patch merging concatenates the 2x2 neighbours
position-major (``x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2]``) while mmcv's
``PatchMerging`` unfolds channel-major (for each channel: (0, 0), (0, 1), (1, 0), (1, 1)), so the
columns of ``reduction.weight`` and the 4C entries of ``downsample.norm`` are permuted
(:func:`merge_permutation`). Everything else keeps its layout.

Pass ``target_shapes`` (the shapes of the receiving model's state dict) to also check that the
result fits a given model. Every failure is a :class:`ConversionError` (a
:class:`~harness.errors.ToolError`) with a one-line message that names the offending key.
:func:`load_release` reads a checkpoint file as weights only, its training configuration (yacs
``CfgNode``, argparse ``Namespace``) as plain data.
"""
from typing import Dict, Mapping, Optional, Sequence, Tuple

import torch

from .common import FAMILIES, ConversionError, detect_kind, merge_permutation, model_family
from .demystify import convert_demystify
from .loading import config_note, load_release
from .report import ConversionReport
from .swin_official import convert_swin_official, relative_position_index

__all__ = [
    'ConversionError', 'ConversionReport', 'FAMILIES', 'SOURCES', 'config_note',
    'convert_checkpoint', 'convert_demystify', 'convert_swin_official', 'detect_kind',
    'load_release', 'merge_permutation', 'model_family', 'relative_position_index'
]

#: source name -> its conversion
_CONVERTERS = {'demystify': convert_demystify, 'swin-official': convert_swin_official}
SOURCES = tuple(_CONVERTERS)


def convert_checkpoint(
    checkpoint: Mapping,
    source: str,
    model: str,
    backbone_only: bool = False,
    target_shapes: Optional[Mapping[str, Sequence[int]]] = None
) -> Tuple[Dict[str, torch.Tensor], ConversionReport]:
    """Convert a loaded checkpoint of ``source``'s layout for ``model``.

    Args:
        checkpoint (Mapping): the loaded checkpoint.
        source (str): one of :data:`SOURCES`: ``'demystify'`` (:func:`convert_demystify`) or
            ``'swin-official'`` (:func:`convert_swin_official`), which say what ``model``,
            ``backbone_only`` (default False) and ``target_shapes`` (default None) mean.

    Returns:
        tuple[dict, ConversionReport]: the converted state dict and what was done.
    """
    if source not in _CONVERTERS:
        raise ConversionError(f'unknown source {source!r}; choose from {", ".join(SOURCES)}')
    return _CONVERTERS[source](checkpoint, model, backbone_only, target_shapes)
