"""Params and FLOPs of whole task models, counted with mmengine's analysis tools.

Counting follows the convention of the paper's table (and of fvcore / mmengine): one
multiply-accumulate is one FLOP. The task settings are those of the table: ImageNet classifier
at 224x224; Cascade Mask R-CNN at 1280x800 with the protocol of mmdet 2.x ``forward_dummy``
(which produced the published detection FLOPs: 1000 proposals through every bbox stage, the
first 100 through every mask stage); UperNet at 2048x512 through the decode head (the auxiliary
head is a training-time branch).
"""
import contextlib
from dataclasses import dataclass
from typing import Dict, Optional

import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer, parameter_count

from backbones.ops import FLOP_HANDLES, shape_only
from .models import build_task_model
from .tasks import TASKS


@dataclass
class Complexity:
    params: int
    flops: int
    unsupported_ops: Dict[str, int]

    @property
    def params_m(self) -> float:
        return self.params / 1e6

    @property
    def gflops(self) -> float:
        return self.flops / 1e9


def count(model: nn.Module, inputs: tuple, shape_only_ops: bool = True) -> Complexity:
    """FLOPs of ``model(*inputs)`` and parameters of ``model``. ``shape_only_ops``: trace the custom
    ops without computing them (their handles need shapes only)."""
    analyzer = FlopAnalyzer(model, inputs)
    analyzer.set_op_handle(**FLOP_HANDLES)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    analyzer.tracer_warnings('none')
    with shape_only() if shape_only_ops else contextlib.nullcontext():
        flops = analyzer.total()
    return Complexity(
        params=parameter_count(model)[''],
        flops=flops,
        unsupported_ops=dict(analyzer.unsupported_ops()))


class _ClassifierLogits(nn.Module):

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.model = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x, mode='tensor')


class _SegmentorDecode(nn.Module):

    def __init__(self, segmentor: nn.Module) -> None:
        super().__init__()
        self.model = segmentor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.decode_head(self.model.extract_feat(x))


class _DetectorDummy(nn.Module):
    """mmdet 2.x ``forward_dummy`` of a two-stage detector: RPN head on the FPN features, then
    ``num_proposals`` fixed boxes through each bbox stage and the first ``num_mask_rois`` of them
    through each mask stage."""

    def __init__(self,
                 detector: nn.Module,
                 num_proposals: int = 1000,
                 num_mask_rois: int = 100) -> None:
        super().__init__()
        self.model = detector
        self.num_proposals = num_proposals
        self.num_mask_rois = num_mask_rois

    def forward(self, x: torch.Tensor) -> tuple:
        from mmdet.structures.bbox import bbox2roi
        det = self.model
        feats = det.extract_feat(x)
        outs = tuple(det.rpn_head(feats))
        h, w = x.shape[-2:]
        xy = torch.rand(self.num_proposals, 2, generator=torch.Generator().manual_seed(0))
        wh = torch.rand(self.num_proposals, 2, generator=torch.Generator().manual_seed(1))
        scale = torch.tensor([w, h], dtype=x.dtype)
        boxes = torch.cat([xy * scale * 0.5, (xy * 0.5 + wh * 0.5) * scale], dim=1)
        rois = bbox2roi([boxes.to(x.device)])
        mask_rois = rois[:self.num_mask_rois]
        head = det.roi_head
        stages = range(head.num_stages) if hasattr(head, 'num_stages') else [None]
        for stage in stages:
            args = (feats, rois) if stage is None else (stage, feats, rois)
            res = head._bbox_forward(*args)
            outs = outs + (res['cls_score'], res['bbox_pred'])
        for stage in stages:
            args = (feats, mask_rois) if stage is None else (stage, feats, mask_rois)
            outs = outs + (head._mask_forward(*args)['mask_preds'], )
        return outs


#: how a task model runs while it is counted (``Task.flop_protocol``)
PROTOCOLS = {
    'classifier': _ClassifierLogits,
    'detector': _DetectorDummy,
    'segmentor': _SegmentorDecode
}


def task_complexity(model_cfg: dict, task: str, input_hw: Optional[tuple] = None) -> Complexity:
    """Params and FLOPs of the task model described by ``model_cfg`` in the table's setting."""
    model = build_task_model(model_cfg, task)
    h, w = input_hw or TASKS[task].input_hw
    wrapper = PROTOCOLS[TASKS[task].flop_protocol](model).eval()
    with torch.no_grad():
        return count(wrapper, (torch.randn(1, 3, h, w), ))
