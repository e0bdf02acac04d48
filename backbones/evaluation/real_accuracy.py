"""ImageNet-ReaL top-1 accuracy ("Are we done with ImageNet?", Beyer et al. 2020).

The ReaL label file ``real.json`` is a JSON list with one entry per ImageNet
validation image, in the order of the ``ILSVRC2012_val_%08d`` numbers (entry
``i`` belongs to image number ``i + 1``).  Each entry is the list of class
indices that the re-assessment judged correct for that image; it may hold
several classes, or none when no ImageNet class applies.

Protocol: a prediction is correct when its top-1 class is in the image's
list; images with an empty list are left out of both numerator and
denominator.
"""
from __future__ import annotations
import json
import math
import os.path as osp
import re
from typing import Any, List, Optional, Sequence

import torch
from mmengine import fileio
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger
from mmengine.registry import METRICS

_VAL_NAME = re.compile(r'ILSVRC2012_val_(\d+)')


def load_real_labels(real_file: str) -> List[List[int]]:
    """Read and validate a ReaL ``real.json``; clear errors if missing or malformed."""
    if not fileio.exists(real_file):
        raise FileNotFoundError(
            f'ReaL label file not found: {real_file!r}. ReaLAccuracy needs the ImageNet-ReaL '
            "'real.json' (a JSON list with one list of class indices per validation image, in "
            'ILSVRC2012_val_ number order); the toy ImageNet has it at <root>/imagenet/real.json')
    try:
        labels = json.loads(fileio.get_text(real_file))
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f'ReaL label file {real_file!r} is not valid JSON: {e}') from e
    if not isinstance(labels, list) or not labels:
        raise ValueError(f'ReaL label file {real_file!r} must hold a non-empty JSON list of '
                         f'label lists, got {type(labels).__name__}')
    for i, entry in enumerate(labels):
        if not isinstance(entry, list) or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in entry):
            raise ValueError(f'ReaL label file {real_file!r}: entry {i} (image '
                             f'ILSVRC2012_val_{i + 1:08d}) is not a list of class indices: '
                             f'{entry!r}'[:300])
    return labels


def _top1(data_sample: Any) -> int:
    """The top-1 class of an mmpretrain prediction (``pred_score`` or ``pred_label``)."""
    if 'pred_score' in data_sample:
        score = data_sample.get('pred_score')
        return int(torch.as_tensor(score).reshape(-1).argmax())
    if 'pred_label' in data_sample:
        return int(torch.as_tensor(data_sample.get('pred_label')).reshape(-1)[0])
    raise KeyError('ReaLAccuracy needs "pred_score" or "pred_label" in the data samples')


@METRICS.register_module()
class ReaLAccuracy(BaseMetric):
    """Top-1 accuracy against the ImageNet-ReaL labels.

    Each data sample is matched to its ``real.json`` entry through the number
    in its ``img_path`` file name (``ILSVRC2012_val_00000042.JPEG`` is entry
    41), which is robust to any dataset order, subset or sharding.  Only when
    the file name carries no such number does it fall back to ``sample_idx``
    (the index in the dataset), which is right only when the dataset lists the
    validation images in number order starting at 1 (as the toy ImageNet's
    ``meta/val.txt`` and the official ``val.txt`` do).

    Args:
        real_file: path of ``real.json`` (any mmengine fileio backend).
        collect_device, prefix, collect_dir: as in :class:`BaseMetric`.

    The result key is ``real/top1`` (a percentage, like mmpretrain's
    ``accuracy/top1``).  If no evaluated image has a ReaL label the value is
    NaN and a warning is logged.
    """

    default_prefix: Optional[str] = 'real'

    def __init__(self,
                 real_file: str,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        self.real_file = str(real_file)
        self.real_labels = load_real_labels(self.real_file)

    def real_index(self, data_sample: Any) -> int:
        """Index into ``real.json`` of one data sample (see the class docstring)."""
        img_path = data_sample.get('img_path')
        match = _VAL_NAME.search(osp.basename(str(img_path))) if img_path else None
        if match is not None:
            index = int(match.group(1)) - 1
            source = f'image {img_path}'
        elif data_sample.get('sample_idx') is not None:
            index = int(data_sample.get('sample_idx'))
            source = f'sample_idx {index} (img_path {img_path!r} has no ILSVRC2012_val_ number)'
        else:
            raise KeyError('ReaLAccuracy needs "img_path" (ILSVRC2012_val_%08d file names) or '
                           '"sample_idx" in the data samples; keep them in PackInputs meta_keys')
        if not 0 <= index < len(self.real_labels):
            raise ValueError(f'ReaLAccuracy: {source} maps to entry {index} but '
                             f'{self.real_file!r} has {len(self.real_labels)} entries')
        return index

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        for data_sample in data_samples:
            self.results.append(dict(index=self.real_index(data_sample), pred=_top1(data_sample)))

    def compute_metrics(self, results: List[dict]) -> dict:
        evaluated = [r for r in results if self.real_labels[r['index']]]
        correct = sum(r['pred'] in self.real_labels[r['index']] for r in evaluated)
        logger = MMLogger.get_current_instance()
        skipped = len(results) - len(evaluated)
        if not evaluated:
            logger.warning(f'ReaLAccuracy: none of the {len(results)} images has a ReaL label; '
                           'real/top1 is NaN')
            return dict(top1=math.nan)
        logger.info(f'ReaLAccuracy: {len(evaluated)} images evaluated, {skipped} skipped '
                    '(empty ReaL label list)')
        return dict(top1=100.0 * correct / len(evaluated))
