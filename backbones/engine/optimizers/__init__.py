"""Optimizer wrappers; importing this package registers them in mmengine's OPTIM_WRAPPERS."""
from .cpu_autocast import CPUAutocastOptimWrapper

__all__ = ['CPUAutocastOptimWrapper']
