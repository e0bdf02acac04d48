"""Shared machinery of the toy dataset generators.

Each task module describes its dataset with a :class:`ToyDataset` (generator name, version,
sizes and their limits, build function); :func:`harness.toy.ensure_toy_data` validates the
sizes and builds it through :func:`ensure_built`, which writes the dataset into a hidden
temporary folder beside the target and renames it into place only when it is complete, so a
killed generation never leaves a dataset that looks finished.  A ``toy_meta.json``
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Mapping, Optional, Tuple

import numpy as np
from PIL import Image

STAMP_NAME = 'toy_meta.json'
#: The least difference of the largest and smallest image side of the tasks with random,
#: non-square image sizes (:func:`random_image_size`).
MIN_SIZE_SPREAD = 16

#: Splits in the identity of a per-image random generator, so that the content
#: of one image depends only on (seed, task, split, index), not on the order
#: in which the images are made.
_STREAMS = {'train': 1, 'val': 2, 'real': 3, 'layout': 4}
_TASKS = {'imagenet': 11, 'coco': 12, 'ade20k': 13}


@dataclass(frozen=True)
class ToyDataset:
    """How the toy dataset of one task is made.

    Args:
        task (str): the task (a key of :data:`harness.tasks.TASKS`); also the name of the
            dataset folder under the toy root.
        generator (str): the generator name stored in the stamp.
        version (int): stored in the stamp; bump it when the same seed and sizes give other
            files, so that existing datasets are rebuilt.
        defaults (Mapping[str, int]): the size arguments and their default values.
        build (Callable): ``build(out, seed, **sizes)`` writes the dataset into the empty
            folder ``out`` and returns what else to store in the stamp (counts, classes).
        bounds (Mapping[str, tuple]): inclusive ``(low, high)`` limits of sizes, ``high``
            None for no upper limit. Defaults to no limits.
        size_range (tuple[str, str], optional): the names of the smallest and largest image
            side, for datasets with random non-square images: the largest must exceed the
            smallest by :data:`MIN_SIZE_SPREAD`. Defaults to None.
        check_args (Mapping[str, Any]): keyword arguments of
            :func:`harness.toy.check_dataset` when an existing dataset is verified.
            Defaults to none.
    """
    task: str
    generator: str
    version: int
    defaults: Mapping[str, int]
    build: Callable[..., Dict[str, Any]]
    bounds: Mapping[str, Tuple[int, Optional[int]]] = field(default_factory=dict)
    size_range: Optional[Tuple[str, str]] = None
    check_args: Mapping[str, Any] = field(default_factory=dict)

    def resolve_sizes(self, sizes: Mapping[str, Any]) -> Dict[str, int]:
        """The defaults updated with ``sizes`` (as ints), after checking them.

        Args:
            sizes (Mapping[str, Any]): size arguments given by the caller.

        Returns:
            dict: every size argument of the dataset.

        Raises:
            TypeError: a size argument this dataset does not have.
            ValueError: a size out of its limits.
        """
        unknown = set(sizes) - set(self.defaults)
        if unknown:
            raise TypeError(f'unknown {self.task} size argument(s) {sorted(unknown)}; '
                            f'valid: {sorted(self.defaults)}')
        params = {**self.defaults, **{k: int(v) for k, v in sizes.items()}}
        for name, (low, high) in self.bounds.items():
            if params[name] < low or (high is not None and params[name] > high):
                limit = f'>= {low}' if high is None else f'in {low}..{high}'
                raise ValueError(f'{self.task} size {name} must be {limit}, got {params[name]}')
        if self.size_range is not None:
            small, large = self.size_range
            if params[large] < params[small] + MIN_SIZE_SPREAD:
                raise ValueError(f'{self.task} size {large} must be >= {small} + '
                                 f'{MIN_SIZE_SPREAD}, got {params[large]} < '
                                 f'{params[small]} + {MIN_SIZE_SPREAD}')
        return params

    def identity(self, seed: int, params: Mapping[str, int]) -> Dict[str, Any]:
        """What the stamp of the dataset built from ``seed`` and ``params`` records.

        Args:
            seed (int): the random seed.
            params (Mapping[str, int]): all sizes, as :meth:`resolve_sizes` returns them.

        Returns:
            dict: generator, version, task, seed and params.
        """
        return dict(
            generator=self.generator,
            version=self.version,
            task=self.task,
            seed=int(seed),
            params=dict(params))


def scene_limits(min_size: int) -> Dict[str, Any]:
    """``bounds`` and ``size_range`` of a :class:`ToyDataset` of train and val scenes of random
    non-square sizes (COCO, ADE20K): at least one image per split, sides from ``min_size``."""
    return dict(
        bounds=dict(train_images=(1, None), val_images=(1, None), min_size=(min_size, None)),
        size_range=('min_size', 'max_size'))


def image_rng(seed: int, task: str, stream: str, index: int = 0) -> np.random.Generator:
    """A random generator that depends only on its arguments.

    Args:
        seed (int): the dataset seed.
        task (str): the task whose images it makes.
        stream (str): ``'train'``, ``'val'``, ``'real'`` or ``'layout'``.
        index (int): the image index within the stream. Defaults to 0.

    Returns:
        numpy.random.Generator: a generator seeded with all four.
    """
    return np.random.default_rng([int(seed), _TASKS[task], _STREAMS[stream], int(index)])


def read_stamp(data_root: Path) -> Optional[Dict[str, Any]]:
    """The stamp of a finished toy dataset.

    Args:
        data_root (Path): the dataset folder.

    Returns:
        dict, optional: the stamp; None if it is missing or unreadable.
    """
    try:
        with open(Path(data_root) / STAMP_NAME, encoding='utf-8') as f:
            stamp = json.load(f)
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) else None


def stamp_matches(stamp: Optional[Dict[str, Any]], identity: Dict[str, Any]) -> bool:
    """Whether ``stamp`` was written for exactly this generator identity.

    Args:
        stamp (dict, optional): a stamp as :func:`read_stamp` returns it.
        identity (dict): generator, version, task, seed and params.

    Returns:
        bool: True if every item of ``identity`` is in the stamp.
    """
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
        target (Path): the dataset folder to produce.
        identity (dict): generator name, version, seed and parameters; stored in the
            stamp and compared with an existing stamp.
        build (Callable[[Path], dict]): writes the dataset into the folder it is given and
            returns extra information (counts) to store in the stamp.
        force (bool): rebuild even when the stamp matches. Defaults to False.
        verify (Callable[[Path], None], optional): a cheap check of an existing dataset whose
            stamp matches (raises ValueError if files were deleted by hand); a failing check
            rebuilds. Defaults to None.

    Returns:
        tuple[Path, bool]: the target and whether it was (re)built.
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


def random_image_size(rng: np.random.Generator, lo: int, hi: int) -> Tuple[int, int]:
    """A random (height, width) in ``[lo, hi]``, never square.

    The sides differ by at least ``min(MIN_SIZE_SPREAD, hi - lo)`` pixels.

    Args:
        rng (numpy.random.Generator): the image's random generator.
        lo (int): the smallest side.
        hi (int): the largest side.

    Returns:
        tuple[int, int]: (height, width).
    """
    while True:
        h, w = (int(v) for v in rng.integers(lo, hi + 1, 2))
        if abs(h - w) >= min(MIN_SIZE_SPREAD, hi - lo) and h != w:
            return h, w


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
    """``img`` rounded and clipped to uint8."""
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def save_jpeg(img: np.ndarray, path: Path, quality: int = 92) -> None:
    """Save a float RGB image as a JPEG file (quality 92 by default)."""
    Image.fromarray(to_uint8(img)).save(path, format='JPEG', quality=quality)


def write_json(obj: Any, path: Path) -> None:
    """Write ``obj`` as compact JSON."""
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
    """A boolean (h, w) mask of the pixels whose centres lie in the disc (cx, cy, r)."""
    yy, xx = np.mgrid[0:h, 0:w]
    return (xx + 0.5 - cx)**2 + (yy + 0.5 - cy)**2 <= r * r
