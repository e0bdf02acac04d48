"""Fixes for incompatibilities between the pinned OpenMMLab packages and torch 2.14 / numpy 2.

Applied once, when :mod:`backbones` is imported; nothing inside site-packages is edited. Each
fix has a test in ``tests/test_compat.py`` that fails without it.

1. mmengine 0.10.7 calls ``torch.load`` without ``weights_only``. Since torch 2.6 that means
   ``weights_only=True``, and a resume checkpoint, which holds mmengine's message hub
   (``HistoryBuffer`` objects) and numpy scalars/arrays, is refused. We allow-list exactly the
   types mmengine writes instead of switching ``weights_only`` off, so a checkpoint from outside
   still cannot run arbitrary pickled code.
2. mmengine's ``HistoryBuffer.__getstate__`` adds its statistics methods (functions, pickled as
   ``getattr(HistoryBuffer, 'min')``) to every buffer of the message hub, and ``getattr`` is
   (rightly) not allowed by ``weights_only``: no resume checkpoint would load. The methods are
   class-level and registered again on import, so buffers are pickled without them.
"""
from typing import List

import numpy as np
import torch


def _mmengine_checkpoint_globals() -> List[object]:
    from mmengine.logging.history_buffer import HistoryBuffer
    scalar = getattr(np, '_core', np.core).multiarray.scalar
    reconstruct = getattr(np, '_core', np.core).multiarray._reconstruct
    dtype_classes = [
        type(np.dtype(t)) for t in ('bool', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16',
                                    'uint32', 'uint64', 'float16', 'float32', 'float64')
    ]
    return [HistoryBuffer, scalar, reconstruct, np.ndarray, np.dtype, *dtype_classes]


def _history_buffer_state(self) -> dict:
    """``HistoryBuffer.__getstate__`` without the statistics methods (fix 2)."""
    state = dict(self.__dict__)
    state.pop('statistics_methods', None)
    return state


def allow_mmengine_checkpoints() -> None:
    from mmengine.logging.history_buffer import HistoryBuffer
    torch.serialization.add_safe_globals(_mmengine_checkpoint_globals())
    HistoryBuffer.__getstate__ = _history_buffer_state


allow_mmengine_checkpoints()
