"""Atomic writes: a file is either its old or its new content, never torn.

A run can be killed at any moment (``scancel``, a node going down, Ctrl-C). Everything this
project writes for later readers (checkpoints, result records, leaderboards, configs) goes
through a temporary file in the target's folder, ``fsync`` and ``os.replace``.
"""
import os
import os.path as osp
from pathlib import Path
from typing import Union

from mmengine.fileio import LocalBackend, register_backend

PathLike = Union[str, Path]


def atomic_write(path: PathLike, data: Union[str, bytes]) -> Path:
    """Write ``data`` (text or bytes) to ``path`` atomically; creates the parent folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
    try:
        with open(tmp, 'wb') as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise
    return path


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend whose ``put`` is :func:`atomic_write`: a process killed
    while saving a checkpoint leaves the previous files intact and never a truncated
    ``epoch_N.pth`` under its final name. Selected with ``backend_args=dict(backend=
    'atomic_local')`` on the ``CheckpointHook``."""

    def put(self, obj: bytes, filepath: PathLike) -> None:
        atomic_write(osp.abspath(str(filepath)), obj)


register_backend('atomic_local', AtomicLocalBackend, force=True)
