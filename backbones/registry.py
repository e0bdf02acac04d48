"""Where this project registers its modules.

Everything goes into mmengine's *root* registries. mmpretrain's, mmdet's and mmseg's registries
are children of the root, and a child that does not know a ``type`` asks its parent, so one
registration makes a backbone buildable by name from all three toolboxes (a sibling registry
would not be searched).
"""
from mmengine.registry import METRICS, MODELS

__all__ = ['MODELS', 'METRICS']
