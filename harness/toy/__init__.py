"""Built-in toy datasets in the real ImageNet / COCO / ADE20K formats.

They are generated deterministically from a seed on first use (atomically,
with a ``toy_meta.json`` stamp) and are fed through the real OpenMMLab
datasets, pipelines and evaluators; see the module docstrings of
:mod:`.imagenet`, :mod:`.coco` and :mod:`.ade20k` for the layouts.
"""
from __future__ import annotations
from pathlib import Path
from typing import Callable, Dict

from .ade20k import ensure_ade20k
from .checks import DatasetError, check_dataset
from .coco import ensure_coco
from .imagenet import ensure_imagenet

__all__ = [
    'TASKS', 'DatasetError', 'check_dataset', 'ensure_toy_data', 'ensure_imagenet', 'ensure_coco',
    'ensure_ade20k'
]

TASKS: Dict[str, Callable[..., Path]] = {
    'imagenet': ensure_imagenet,
    'coco': ensure_coco,
    'ade20k': ensure_ade20k,
}


def ensure_toy_data(task: str,
                    root: str | Path = 'data/toy',
                    seed: int = 0,
                    force: bool = False,
                    **sizes: int) -> Path:
    """Generate the toy dataset of ``task`` under ``root`` unless it is already there.

    Returns ``Path(root) / task`` (relative if ``root`` is).  ``sizes`` are
    passed to the task's generator (e.g. ``num_classes``/``train_per_class``
    for imagenet, ``train_images``/``val_images`` for coco and ade20k); a
    dataset with another seed or sizes at the same place is replaced.
    """
    if task not in TASKS:
        raise ValueError(f'unknown toy dataset task {task!r}; valid: {", ".join(TASKS)}')
    return TASKS[task](Path(root) / task, seed=seed, force=force, **sizes)
