"""Mixed precision on the CPU for ``--amp``: mmengine's ``AmpOptimWrapper`` (fp16 + loss
scaling) refuses to start without CUDA, so CPU runs use bfloat16 autocast (no loss scaling
needed: bf16 has float32's exponent range)."""
from contextlib import contextmanager

import torch
import torch.nn as nn
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class CPUAutocastOptimWrapper(OptimWrapper):
    """OptimWrapper whose forward passes run under ``torch.autocast('cpu', dtype)``."""

    def __init__(self, *args, dtype: str = 'bfloat16', **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.cast_dtype = getattr(torch, dtype)

    @contextmanager
    def optim_context(self, model: nn.Module):
        with super().optim_context(model), torch.autocast('cpu', dtype=self.cast_dtype):
            yield
