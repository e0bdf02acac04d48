"""Params and FLOPs of whole task models, counted with mmengine's analysis tools.

Counting follows the convention of the paper's table (and of fvcore / mmengine): one
multiply-accumulate is one FLOP. The task settings are those of the table: ImageNet classifier
at 224x224; Cascade Mask R-CNN at 1280x800 with the protocol of mmdet 2.x ``forward_dummy``
(which produced the published detection FLOPs: 1000 proposals through every bbox stage, the
first 100 through every mask stage); UperNet at 2048x512 through the decode head (the auxiliary
head is a training-time branch).
"""
import contextlib
import copy
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer, parameter_count
from mmengine.analysis.jit_handles import get_shape

from .ops import shape_only

#: input (H, W) of each task setting
TASK_INPUT_HW = {'imagenet': (224, 224), 'coco': (800, 1280), 'ade20k': (512, 2048)}
TASK_SCOPE = {'imagenet': 'mmpretrain', 'coco': 'mmdet', 'ade20k': 'mmseg'}


def _dynamic_dwconv_flops(inputs: List[Any], outputs: List[Any]) -> int:
    """A dynamic depth-wise KxK conv: K*K MACs per output element (weight making is counted
    separately: it is made of ordinary convs)."""
    k = get_shape(inputs[1])[2]
    out = get_shape(outputs[0])
    return int(torch.Size(out).numel() * k * k)


#: handles for this project's custom autograd functions (seen by the tracer as prim::PythonOp)
CUSTOM_OP_HANDLES = {
    'prim::PythonOp.IDynamicDWConvFunction': _dynamic_dwconv_flops,
    'prim::PythonOp.DynamicDWConvFunction': _dynamic_dwconv_flops,
}


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
    analyzer.set_op_handle(**CUSTOM_OP_HANDLES)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    analyzer.tracer_warnings('none')
    with shape_only() if shape_only_ops else contextlib.nullcontext():
        flops = analyzer.total()
    return Complexity(
        params=parameter_count(model)[''],
        flops=flops,
        unsupported_ops=dict(analyzer.unsupported_ops()))


def syncbn_to_bn(cfg: Any) -> Any:
    """Replace SyncBN by BN in a config (SyncBN cannot run on the CPU; same params/FLOPs)."""
    if isinstance(cfg, dict):
        out = {k: syncbn_to_bn(v) for k, v in cfg.items()}
        if out.get('type') == 'SyncBN':
            out['type'] = 'BN'
        return type(cfg)(out) if not hasattr(cfg, 'to_dict') else out
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(syncbn_to_bn(v) for v in cfg)
    return cfg


def build_task_model(model_cfg: dict, task: str, keep_init_cfg: bool = False) -> nn.Module:
    """Build a task model from a config's ``model`` dict in the registry of the task's toolbox
    (SyncBN as BN), in eval mode. The backbone's ``init_cfg`` is dropped (no pretrained weights
    are looked for) unless ``keep_init_cfg``; ``init_weights()`` is left to the caller."""
    import importlib
    scope = TASK_SCOPE[task]
    importlib.import_module(f'{scope}.utils').register_all_modules(init_default_scope=False)
    registry = importlib.import_module(f'{scope}.registry').MODELS
    from mmengine.config import ConfigDict
    from mmengine.registry import DefaultScope

    # a ConfigDict, as the Runner passes: mmdet's detectors read e.g. ``train_cfg.rpn``
    cfg = ConfigDict(syncbn_to_bn(copy.deepcopy(model_cfg)))
    if isinstance(cfg.get('backbone'), dict) and not keep_init_cfg:
        cfg['backbone'].pop('init_cfg', None)
    with DefaultScope.overwrite_default_scope(scope):
        return registry.build(cfg).eval()


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


def task_complexity(model_cfg: dict, task: str, input_hw: Optional[tuple] = None) -> Complexity:
    """Params and FLOPs of the task model described by ``model_cfg`` in the table's setting."""
    model = build_task_model(model_cfg, task)
    h, w = input_hw or TASK_INPUT_HW[task]
    wrapper = {
        'imagenet': _ClassifierLogits,
        'coco': _DetectorDummy,
        'ade20k': _SegmentorDecode
    }[task](model).eval()
    with torch.no_grad():
        return count(wrapper, (torch.randn(1, 3, h, w), ))
