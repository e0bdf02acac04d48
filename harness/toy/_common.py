"""Shared machinery of the toy dataset generators.

Every generator writes its dataset into a hidden temporary folder beside the
target and renames it into place only when it is complete, so a killed
generation never leaves a dataset that looks finished.  A ``toy_meta.json``
stamp (written last) records the generator, its version and parameters;
:func:`ensure_built` regenerates only when the stamp is missing or differs.
"""
from __future__ import annotations
import contextlib
import fcntl
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

import numpy as np
from PIL import Image

STAMP_NAME = 'toy_meta.json'

#: Splits in the identity of a per-image random generator, so that the content
#: of one image depends only on (seed, task, split, index), not on the order
#: in which the images are made.
_STREAMS = {'train': 1, 'val': 2, 'real': 3, 'layout': 4}
_TASKS = {'imagenet': 11, 'coco': 12, 'ade20k': 13}


def image_rng(seed: int, task: str, stream: str, index: int = 0) -> np.random.Generator:
    """A random generator that depends only on its arguments."""
    return np.random.default_rng([int(seed), _TASKS[task], _STREAMS[stream], int(index)])


def read_stamp(data_root: Path) -> Optional[Dict[str, Any]]:
    """The stamp of a finished toy dataset, or None if missing/unreadable."""
    try:
        with open(Path(data_root) / STAMP_NAME, encoding='utf-8') as f:
            stamp = json.load(f)
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) else None


def stamp_matches(stamp: Optional[Dict[str, Any]], identity: Dict[str, Any]) -> bool:
    """Whether ``stamp`` was written for exactly this generator identity."""
    if stamp is None:
        return False
    return all(stamp.get(k) == v for k, v in identity.items())


@contextlib.contextmanager
def _locked(parent: Path, name: str) -> Iterator[None]:
    """Serialise generations of one dataset across processes."""
    lock_path = parent / f'.{name}.lock'
    with open(lock_path, 'a+') as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _remove_leftovers(parent: Path, name: str) -> None:
    """Delete temp/old folders that a killed generation left behind."""
    for p in parent.glob(f'.{name}.tmp-*'):
        shutil.rmtree(p, ignore_errors=True)
    for p in parent.glob(f'.{name}.old-*'):
        shutil.rmtree(p, ignore_errors=True)


def ensure_built(target: Path,
                 identity: Dict[str, Any],
                 build: Callable[[Path], Dict[str, Any]],
                 force: bool = False,
                 verify: Optional[Callable[[Path], None]] = None) -> Tuple[Path, bool]:
    """Build ``target`` with ``build`` unless an identical one is there.

    Args:
        target: the dataset folder to produce.
        identity: generator name, version, seed and parameters; stored in the
            stamp and compared with an existing stamp.
        build: writes the dataset into the folder it is given and returns
            extra information (counts) to store in the stamp.
        force: rebuild even when the stamp matches.
        verify: a cheap check of an existing dataset whose stamp matches
            (raises if files were deleted by hand); a failing check rebuilds.

    Returns:
        (target, whether it was (re)built).
    """
    target = Path(target)

    def _is_current() -> bool:
        if force or not stamp_matches(read_stamp(target), identity):
            return False
        if verify is not None:
            try:
                verify(target)
            except ValueError:
                return False
        return True

    if _is_current():
        return target, False
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    with _locked(parent, target.name):
        # Another process may have finished the same dataset meanwhile.
        if not force and _is_current():
            return target, False
        _remove_leftovers(parent, target.name)
        tmp = parent / f'.{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}'
        tmp.mkdir()
        try:
            extra = build(tmp)
            stamp = dict(identity)
            stamp.update(extra)
            with open(tmp / STAMP_NAME, 'w', encoding='utf-8') as f:
                json.dump(stamp, f, indent=1, sort_keys=True)
            old = None
            if target.exists() or target.is_symlink():
                old = parent / f'.{target.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}'
                os.rename(target, old)
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return target, True


# --------------------------------------------------------------------------
# drawing helpers


def smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int = 6) -> np.ndarray:
    """Low-frequency noise in [0, 1] of shape (h, w): a few random cells upsampled."""
    ch = max(2, int(round(cells * h / max(h, w))) + 1)
    cw = max(2, int(round(cells * w / max(h, w))) + 1)
    small = (rng.random((ch, cw)) * 255).astype(np.uint8)
    big = Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC)
    return np.asarray(big, dtype=np.float32) / 255.0


def jitter_colour(rng: np.random.Generator, rgb, amount: float) -> np.ndarray:
    """``rgb`` plus a uniform per-channel jitter of +-amount, clipped to [0, 255]."""
    c = np.asarray(rgb, dtype=np.float32) + rng.uniform(-amount, amount, size=3)
    return np.clip(c, 0, 255)


def to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def save_jpeg(img: np.ndarray, path: Path, quality: int = 92) -> None:
    Image.fromarray(to_uint8(img)).save(path, format='JPEG', quality=quality)


def write_json(obj: Any, path: Path) -> None:
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(obj, f, separators=(',', ':'))


def shape_polygon(kind: str,
                  cx: float,
                  cy: float,
                  r: float,
                  angle: float,
                  n_circle: int = 32) -> np.ndarray:
    """Outline of a filled shape as an (N, 2) array of x, y points.

    ``r`` is the circumradius; ``angle`` a rotation in radians (ignored for
    circles).  Kinds: circle, square, triangle, cross.
    """
    if kind == 'circle':
        t = np.linspace(0, 2 * np.pi, n_circle, endpoint=False)
        pts = np.stack([np.cos(t), np.sin(t)], 1)
    elif kind == 'square':
        t = np.pi / 4 + np.arange(4) * np.pi / 2
        pts = np.stack([np.cos(t), np.sin(t)], 1)
    elif kind == 'triangle':
        t = -np.pi / 2 + np.arange(3) * 2 * np.pi / 3
        pts = np.stack([np.cos(t), np.sin(t)], 1)
    elif kind == 'cross':
        a, b = 1.0, 0.33  # arm half-length and half-width (before scaling)
        pts = np.array([(b, -a), (b, -b), (a, -b), (a, b), (b, b), (b, a), (-b, a), (-b, b),
                        (-a, b), (-a, -b), (-b, -b), (-b, -a)],
                       dtype=np.float64) / np.hypot(a, b)
    else:
        raise ValueError(f'unknown shape kind {kind!r}')
    if kind != 'circle':
        c, s = np.cos(angle), np.sin(angle)
        pts = pts @ np.array([[c, s], [-s, c]])
    return pts * r + np.array([cx, cy])


def polygon_mask(points: np.ndarray, h: int, w: int) -> np.ndarray:
    """Rasterise a polygon into a boolean (h, w) mask with PIL."""
    from PIL import ImageDraw
    canvas = Image.new('L', (w, h), 0)
    ImageDraw.Draw(canvas).polygon([tuple(p) for p in np.asarray(points, float)], fill=1)
    return np.asarray(canvas, dtype=bool)


def disc_mask(h: int, w: int, cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return (xx + 0.5 - cx)**2 + (yy + 0.5 - cy)**2 <= r * r
