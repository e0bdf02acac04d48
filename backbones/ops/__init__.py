"""Dynamic depth-wise convolution operators (PyTorch; Triton only on demand, on CUDA; compiled
CPU kernels for I-Dynamic, built on first use).

``idynamic_dwconv``: inhomogeneous dynamic depth-wise conv (one kernel per position and channel
group); ``idynamic_dwconv_fused``: the same with the kernels made by a 1x1 conv inside the op
(the I-Dynamic mixer's computation, without its kernel tensor); ``dynamic_dwconv``: homogeneous
dynamic depth-wise conv (one kernel per sample and channel). Importing this package imports
neither triton nor mmcv/mmengine.
"""
from typing import Dict, List

import torch

from . import cpu_kernels
from .dynamic_dwconv import DDW_IMPLS, ENV_DDW_IMPL, dynamic_dwconv, dynamic_dwconv_reference
from .flops import FLOP_HANDLES
from .idynamic import (ENV_IMPL, IMPLS, IDynamicDWConvFunction, idynamic_dwconv,
                       idynamic_dwconv_reference, shape_only, triton_available)
from .idynamic_fused import (IDynamicFusedFunction, idynamic_dwconv_fused,
                             idynamic_dwconv_fused_reference)


def available_impls() -> Dict[str, List[str]]:
    """Implementations usable here, per op (``auto`` excluded).

    Triton counts as available when it is installed and a CUDA device is visible, 'cpp' when its
    kernels build here (:mod:`.cpu_kernels`). 'fused' is an implementation of
    ``idynamic_dwconv_fused`` only (with ``idynamic_dwconv`` it means 'auto').
    """
    idyn = ['fused'] + (['cpp'] if cpu_kernels.available() else []) + ['torch', 'unfold']
    if triton_available() and torch.cuda.is_available():
        idyn.insert(0, 'triton')
    return {
        'idynamic_dwconv': idyn,
        'dynamic_dwconv': [i for i in DDW_IMPLS if i != 'auto'],
    }


__all__ = [
    'FLOP_HANDLES', 'DDW_IMPLS', 'ENV_DDW_IMPL', 'ENV_IMPL', 'IMPLS', 'IDynamicDWConvFunction',
    'IDynamicFusedFunction', 'available_impls', 'cpu_kernels', 'dynamic_dwconv',
    'dynamic_dwconv_reference', 'idynamic_dwconv', 'idynamic_dwconv_fused',
    'idynamic_dwconv_fused_reference', 'idynamic_dwconv_reference', 'shape_only'
]
