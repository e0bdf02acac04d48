"""Dynamic depth-wise convolution operators (pure PyTorch; Triton only on demand, on CUDA).

``idynamic_dwconv``: inhomogeneous dynamic depth-wise conv (one kernel per position and channel
group); ``dynamic_dwconv``: homogeneous dynamic depth-wise conv (one kernel per sample and
channel). Importing this package imports neither triton nor mmcv/mmengine.
"""
from typing import Dict, List

import torch

from .flops import FLOP_HANDLES
from .dynamic_dwconv import DDW_IMPLS, ENV_DDW_IMPL, dynamic_dwconv, dynamic_dwconv_reference
from .idynamic import (ENV_IMPL, IMPLS, IDynamicDWConvFunction, idynamic_dwconv,
                       idynamic_dwconv_reference, shape_only, triton_available)


def available_impls() -> Dict[str, List[str]]:
    """Implementations usable here, per op (``auto`` excluded).

    Triton counts as available when it is installed and a CUDA device is visible.
    """
    idyn = ['torch', 'unfold']
    if triton_available() and torch.cuda.is_available():
        idyn.insert(0, 'triton')
    return {
        'idynamic_dwconv': idyn,
        'dynamic_dwconv': [i for i in DDW_IMPLS if i != 'auto'],
    }


__all__ = [
    'FLOP_HANDLES', 'DDW_IMPLS', 'ENV_DDW_IMPL', 'ENV_IMPL', 'IMPLS', 'IDynamicDWConvFunction', 'available_impls',
    'dynamic_dwconv', 'dynamic_dwconv_reference', 'idynamic_dwconv', 'idynamic_dwconv_reference',
    'shape_only'
]
