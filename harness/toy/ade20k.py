"""A small ADE20K-style semantic segmentation dataset.

Layout (``<root>``)::

    images/training/ADE_train_%08d.jpg        annotations/training/ADE_train_%08d.png
    images/validation/ADE_val_%08d.jpg        annotations/validation/ADE_val_%08d.png
    toy_meta.json

Label maps are single-channel uint8 PNGs in ADE20K's convention: 0 is
"other" (ignored: mmseg's ``reduce_zero_label=True`` turns it into 255) and
value ``v`` in 1..6 is ADE20K class ``v - 1``.  The six classes are the first
six ADE20K classes, in ADE20K order (:data:`CLASSES`), so the labels mean the
same as in the real dataset and a config may either keep mmseg's 150-class
``ADE20KDataset`` metainfo or restrict it to these six.

Scenes are outdoor (sky band with a wavy horizon, buildings with windows,
trees, floor-like ground) or indoor (ceiling, wall, floor bands); "other"
clutter objects (label 0) are scattered over both.  Each class has its own
colour range and texture, with random geometry; image sizes are random and
non-square within ``[min_size, max_size]``.
"""
from __future__ import annotations
from pathlib import Path
from typing import Any, Dict, Tuple

import numpy as np
from PIL import Image

from ._common import (ToyDataset, image_rng, jitter_colour, random_image_size, save_jpeg,
                      scene_limits, smooth_noise)

GENERATOR = 'backbones.toy.ade20k'
VERSION = 1

CLASSES: Tuple[str, ...] = ('wall', 'building', 'sky', 'floor', 'tree', 'ceiling')
WALL, BUILDING, SKY, FLOOR, TREE, CEILING = range(1, 7)  # label-map values
DEFAULTS: Dict[str, int] = dict(train_images=64, val_images=16, min_size=96, max_size=192)


class _Canvas:
    """An image and its label map, painted together (painter's algorithm)."""

    def __init__(self, h: int, w: int):
        self.h, self.w = h, w
        self.img = np.zeros((h, w, 3), np.float32)
        self.lab = np.zeros((h, w), np.uint8)
        self.yy, self.xx = np.mgrid[0:h, 0:w].astype(np.float32)

    def paint(self, mask: np.ndarray, pixels: np.ndarray, label: int) -> None:
        self.img[mask] = pixels[mask] if pixels.ndim == 3 else pixels
        self.lab[mask] = label

    def texture(self, rng: np.random.Generator, colour, jitter: float, amp: float,
                cells: int) -> np.ndarray:
        base = jitter_colour(rng, colour, jitter)
        n = smooth_noise(rng, self.h, self.w, cells)[..., None] - 0.5
        return base + amp * n


def _clutter(rng: np.random.Generator, c: _Canvas, n: int) -> None:
    """Unlabelled objects (label 0): random-coloured ellipses and boxes."""
    for _ in range(n):
        rx, ry = rng.uniform(0.04, 0.12, 2) * np.array([c.w, c.h])
        cx, cy = rng.uniform(0, c.w), rng.uniform(0.2 * c.h, c.h)
        if rng.random() < 0.5:
            m = ((c.xx - cx) / rx)**2 + ((c.yy - cy) / ry)**2 <= 1
        else:
            m = (np.abs(c.xx - cx) <= rx) & (np.abs(c.yy - cy) <= ry)
        colour = rng.uniform(30, 230, 3)
        c.paint(m, c.texture(rng, colour, 0, 30, 3), 0)


def _outdoor(rng: np.random.Generator, c: _Canvas) -> None:
    h, w = c.h, c.w
    horizon = h * rng.uniform(0.35, 0.6)
    wave = horizon + h * 0.04 * np.sin(c.xx / w * 2 * np.pi * rng.uniform(0.5, 2) +
                                       rng.uniform(0, 2 * np.pi))
    sky = jitter_colour(rng, (120, 170, 235),
                        20) + (c.yy / h)[..., None] * np.array([60, 40, 10]) + 12 * (
                            smooth_noise(rng, h, w, 3)[..., None] - 0.5)
    c.paint(c.yy < wave, sky, SKY)
    ground = c.texture(rng, (150, 120, 85), 25, 50, 10)
    ground += 10 * np.sin(c.yy * rng.uniform(0.4, 0.9))[..., None]  # furrows
    c.paint(c.yy >= wave, ground, FLOOR)
    for _ in range(int(rng.integers(1, 4))):  # buildings standing on the horizon
        bw, bh = w * rng.uniform(0.12, 0.3), h * rng.uniform(0.2, 0.45)
        x0 = rng.uniform(-0.05 * w, w - bw * 0.8)
        base = horizon + h * rng.uniform(0.0, 0.08)
        m = (c.xx >= x0) & (c.xx < x0 + bw) & (c.yy >= base - bh) & (c.yy < base)
        wall = c.texture(rng, (140, 135, 130), 35, 20, 4)
        win = max(4, int(min(bw, bh) / 4))
        windows = (((c.xx - x0) % win) < win * 0.45) & (((c.yy - base) % win) < win * 0.5)
        wall[windows] *= 0.45
        c.paint(m, wall, BUILDING)
    for _ in range(int(rng.integers(1, 4))):  # trees: trunk + canopy
        cx = rng.uniform(0, w)
        r = min(h, w) * rng.uniform(0.08, 0.18)
        foot = horizon + h * rng.uniform(0.05, 0.3)
        cy = foot - r * rng.uniform(1.4, 2.0)
        trunk = (np.abs(c.xx - cx) < r * 0.18) & (c.yy > cy) & (c.yy < foot)
        canopy = ((c.xx - cx) / r)**2 + ((c.yy - cy) / (r * 1.2))**2 <= 1
        leaves = c.texture(rng, (50, 125, 45), 20, 60, 14)
        leaves[trunk & ~canopy] = jitter_colour(rng, (95, 65, 40), 10)
        c.paint(canopy | trunk, leaves, TREE)
    _clutter(rng, c, int(rng.integers(0, 3)))


def _indoor(rng: np.random.Generator, c: _Canvas) -> None:
    h, w = c.h, c.w
    top = h * rng.uniform(0.12, 0.3)
    bottom = h * rng.uniform(0.62, 0.8)
    slope = rng.uniform(-0.15, 0.15) * h / w
    c.paint(np.ones((h, w), bool), c.texture(rng, (215, 200, 170), 30, 25, 4), WALL)
    ceiling = c.texture(rng, (240, 240, 235), 10, 12, 3)
    c.paint(c.yy < top + slope * (c.xx - w / 2), ceiling, CEILING)
    floor = c.texture(rng, (125, 85, 55), 25, 30, 6)
    plank = max(4.0, h * rng.uniform(0.03, 0.07))
    floor += 18 * (((c.xx + 0.3 * c.yy) // plank) % 2 - 0.5)[..., None]
    c.paint(c.yy >= bottom - slope * (c.xx - w / 2), floor, FLOOR)
    _clutter(rng, c, int(rng.integers(1, 4)))


def render_scene(rng: np.random.Generator, h: int, w: int) -> Tuple[np.ndarray, np.ndarray]:
    """One random outdoor or indoor scene.

    Args:
        rng (numpy.random.Generator): the image's random generator.
        h (int): height.
        w (int): width.

    Returns:
        tuple[numpy.ndarray, numpy.ndarray]: the float (h, w, 3) RGB image and its uint8
        (h, w) label map.
    """
    c = _Canvas(h, w)
    (_outdoor if rng.random() < 0.6 else _indoor)(rng, c)
    img = c.img + rng.normal(0, 4, c.img.shape)
    return img, c.lab


def _build(out: Path, seed: int, train_images: int, val_images: int, min_size: int,
           max_size: int) -> Dict[str, Any]:
    counts: Dict[str, Any] = {}
    for split, folder, prefix, n in (('train', 'training', 'ADE_train', train_images),
                                     ('val', 'validation', 'ADE_val', val_images)):
        (out / 'images' / folder).mkdir(parents=True)
        (out / 'annotations' / folder).mkdir(parents=True)
        pixels = np.zeros(len(CLASSES) + 1, np.int64)
        for i in range(n):
            rng = image_rng(seed, 'ade20k', split, i)
            h, w = random_image_size(rng, min_size, max_size)
            img, lab = render_scene(rng, h, w)
            name = f'{prefix}_{i + 1:08d}'
            save_jpeg(img, out / 'images' / folder / f'{name}.jpg')
            Image.fromarray(lab).save(out / 'annotations' / folder / f'{name}.png')
            pixels += np.bincount(lab.reshape(-1), minlength=len(CLASSES) + 1)
        counts[folder] = dict(images=n, pixels_per_value=pixels.tolist())
    return dict(counts=counts, classes=list(CLASSES))


#: The toy ADE20K (stamped with its old module name, so existing datasets stay current); an
#: existing one is verified against its own six classes.
DATASET = ToyDataset(
    'ade20k',
    GENERATOR,
    VERSION,
    DEFAULTS,
    _build,
    check_args=dict(num_classes=len(CLASSES)),
    **scene_limits(32))
