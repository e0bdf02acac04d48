"""Built-in toy datasets in the real ImageNet / COCO / ADE20K formats.

They are generated deterministically from a seed on first use (atomically,
with a ``toy_meta.json`` stamp) and are fed through the real OpenMMLab
datasets, pipelines and evaluators; see the module docstrings of
:mod:`.imagenet`, :mod:`.coco` and :mod:`.ade20k` for the layouts.  Each of
those modules describes its dataset with a :class:`ToyDataset` (``DATASET``);
:func:`ensure_toy_data` is the one entry point that makes any of them.
"""
from __future__ import annotations
from pathlib import Path
from typing import Dict

from . import ade20k, coco, imagenet
from ._common import ToyDataset, ensure_built, read_stamp
from .checks import DatasetError, check_dataset

__all__ = [
    'TOY_DATASETS', 'ToyDataset', 'DatasetError', 'check_dataset', 'ensure_toy_data', 'read_stamp'
]

#: The toy dataset of each task, by task name.
TOY_DATASETS: Dict[str, ToyDataset] = {
    spec.task: spec
    for spec in (imagenet.DATASET, coco.DATASET, ade20k.DATASET)
}


def ensure_toy_data(task: str,
                    root: str | Path = 'data/toy',
                    seed: int = 0,
                    force: bool = False,
                    **sizes: int) -> Path:
    """Generate the toy dataset of ``task`` under ``root`` unless it is already there.

    A dataset whose stamp records another generator version, seed or sizes is
    replaced; one whose stamp matches but whose files fail
    :func:`check_dataset` is rebuilt.  The new dataset is written beside the
    target and renamed into place when complete.

    Args:
        task (str): a key of :data:`TOY_DATASETS` (``'imagenet'``, ``'coco'``, ``'ade20k'``).
        root (str | Path): the parent folder of the datasets. Defaults to ``'data/toy'``.
        seed (int): the random seed; the same seed and sizes give the same files.
            Defaults to 0.
        force (bool): rebuild even an up-to-date dataset. Defaults to False.
        **sizes (int): the task's size arguments (``num_classes``, ``train_per_class``,
            ``val_per_class``, ``img_size`` for imagenet; ``train_images``,
            ``val_images``, ``min_size``, ``max_size`` for coco and ade20k); the others
            keep the defaults of the task's ``DEFAULTS``.

    Returns:
        Path: ``Path(root) / task`` (relative if ``root`` is).

    Raises:
        ValueError: an unknown task or a size out of its limits.
        TypeError: a size argument the task's dataset does not have.
    """
    if task not in TOY_DATASETS:
        raise ValueError(f'unknown toy dataset task {task!r}; valid: {", ".join(TOY_DATASETS)}')
    spec = TOY_DATASETS[task]
    params = spec.resolve_sizes(sizes)
    path, _ = ensure_built(
        Path(root) / task,
        spec.identity(seed, params),
        lambda out: spec.build(out, int(seed), **params),
        force=force,
        verify=lambda path: check_dataset(task, path, **spec.check_args))
    return path
