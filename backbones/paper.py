"""The paper's reference values (Han et al., ICLR 2022, Tables 2-4), keyed like our records.

Params in millions, FLOPs in GFLOPs (1 MAC = 1 FLOP). ImageNet-1k at 224; COCO = Cascade Mask
R-CNN 3x with FLOPs at 1280x800; ADE20K = UperNet 160k with FLOPs at 2048x512.
"""
from typing import Dict, Optional

_COLUMNS = ('in_params', 'in_flops', 'top1', 'real', 'coco_params', 'coco_flops', 'ap_box',
            'ap_mask', 'ade_params', 'ade_flops', 'miou')
_ROWS = {
    'swin_t': (28, 4.5, 81.3, 86.6, 86, 747, 50.5, 43.7, 60, 947, 44.5),
    'dwconv_t': (24, 3.8, 81.3, 86.8, 82, 730, 49.9, 43.4, 56, 928, 45.5),
    'ddwconv_t': (51, 3.8, 81.9, 87.3, 108, 730, 50.5, 43.7, 83, 928, 45.7),
    'idynamic_t': (26, 3.95, 81.8, 87.1, 84, 741, 50.8, 44.0, 58, 939, 46.2),
    'swin_b': (88, 15.4, 83.3, 87.9, 145, 986, 51.9, 45.0, 121, 1192, 48.1),
    'dwconv_b': (74, 12.9, 83.2, 87.9, 132, 924, 51.1, 44.2, 108, 1129, 48.3),
    'ddwconv_b': (162, 13.0, 83.2, 87.9, 219, 924, 51.2, 44.4, 195, 1129, 48.0),
    'idynamic_b': (80, 13.6, 83.4, 88.0, 137, 948, 51.8, 44.8, 114, 1153, 47.8),
}
PAPER: Dict[str, Dict[str, float]] = {m: dict(zip(_COLUMNS, v)) for m, v in _ROWS.items()}

#: ImageNet-22k pre-training (second table): ImageNet-1k top-1 after fine-tuning, ADE20K mIoU.
PAPER_IN22K = {
    'swin_b': dict(top1=85.2, miou=49.4),
    'dwconv_b': dict(top1=84.8, miou=50.1),
    'ddwconv_b': dict(top1=85.0, miou=49.6)
}

#: (params key, FLOPs key) per task
TASK_KEYS = {
    'imagenet': ('in_params', 'in_flops'),
    'coco': ('coco_params', 'coco_flops'),
    'ade20k': ('ade_params', 'ade_flops')
}


def paper_complexity(model: str, task: str) -> Optional[Dict[str, float]]:
    """The paper's params (M) and FLOPs (G) of ``model`` in ``task``, or None if not in it."""
    if model not in PAPER:
        return None
    params_key, flops_key = TASK_KEYS[task]
    return dict(params_m=PAPER[model][params_key], gflops=PAPER[model][flops_key])
