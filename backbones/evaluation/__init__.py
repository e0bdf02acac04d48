"""Evaluation metrics; importing this package registers them in mmengine's METRICS."""
from .real_accuracy import ReaLAccuracy, load_real_labels

__all__ = ['ReaLAccuracy', 'load_real_labels']
