"""A small COCO-format instance segmentation dataset.

Layout (``<root>``)::

    train2017/%012d.jpg                    image ids 1..train_images
    val2017/%012d.jpg                      image ids 1000001..1000000+val_images
    annotations/instances_train2017.json
    annotations/instances_val2017.json
    toy_meta.json

Three categories (:data:`CLASSES`, ids 1..3): red-ish circles, green-ish
squares and blue-ish triangles with random size, rotation and colour jitter,
1-4 non-overlapping objects per image, on textured backgrounds with grey
unannotated distractor blobs.  Image sizes are random and non-square within
``[min_size, max_size]``.

Each annotation has ``bbox`` (xywh), ``area``, ``iscrowd=0``, ``category_id``
and a ``segmentation``: a polygon for about two thirds of the objects and a
compressed RLE (``counts`` as str, as in COCO's own files) for the others.
The object pixels are painted from the decoded annotation mask, so the image
and the annotation agree exactly; ``bbox`` and ``area`` are those of that mask.
"""
from __future__ import annotations
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
from pycocotools import mask as mask_utils

from ._common import (ToyDataset, disc_mask, image_rng, jitter_colour, polygon_mask,
                      random_image_size, save_jpeg, scene_limits, shape_polygon, smooth_noise,
                      write_json)

GENERATOR = 'backbones.toy.coco'
VERSION = 1

CLASSES: Tuple[str, ...] = ('circle', 'square', 'triangle')
CATEGORY_IDS: Tuple[int, ...] = (1, 2, 3)
COLOURS = {'circle': (220, 45, 45), 'square': (45, 185, 70), 'triangle': (50, 90, 225)}
DEFAULTS: Dict[str, int] = dict(train_images=96, val_images=24, min_size=128, max_size=256)
P_RLE = 0.35
VAL_ID_OFFSET = 1_000_000


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    grey = rng.uniform(80, 180)
    a = np.clip(grey + rng.uniform(-25, 25, 3), 0, 255)
    b = np.clip(grey + rng.uniform(-40, 40, 3), 0, 255)
    t = smooth_noise(rng, h, w, cells=int(rng.integers(3, 9)))[..., None]
    img = a * (1 - t) + b * t
    yy, xx = np.mgrid[0:h, 0:w]
    if rng.random() < 0.5:
        period = rng.uniform(6, 20)
        theta = rng.uniform(0, np.pi)
        wave = np.sin((xx * np.cos(theta) + yy * np.sin(theta)) * 2 * np.pi / period)
        img = img + rng.uniform(5, 15) * wave[..., None]
    else:
        cell = int(rng.integers(8, 24))
        checker = ((xx // cell + yy // cell) % 2) * 2 - 1
        img = img + rng.uniform(4, 12) * checker[..., None]
    for _ in range(int(rng.integers(0, 3))):  # unannotated grey distractors
        r = rng.uniform(6, 0.12 * min(h, w))
        m = disc_mask(h, w, rng.uniform(0, w), rng.uniform(0, h), r)
        img[m] = rng.uniform(70, 200)
    return img


def _place(rng: np.random.Generator, h: int, w: int, placed: List[Tuple[float, float, float]]):
    """A (cx, cy, r) that overlaps no placed object, or None."""
    r_max = max(12.0, 0.22 * min(h, w))
    for _ in range(40):
        r = rng.uniform(10, r_max)
        cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
        if all(np.hypot(cx - x, cy - y) > r + q + 3 for x, y, q in placed):
            return cx, cy, r
    return None


def _make_image(rng: np.random.Generator, h: int, w: int, next_ann_id: int,
                image_id: int) -> Tuple[np.ndarray, List[Dict[str, Any]]]:
    img = _background(rng, h, w)
    anns: List[Dict[str, Any]] = []
    placed: List[Tuple[float, float, float]] = []
    for _ in range(int(rng.integers(1, 5))):
        spot = _place(rng, h, w, placed)
        if spot is None:
            break
        placed.append(spot)
        label = int(rng.integers(len(CLASSES)))
        name = CLASSES[label]
        poly = shape_polygon(name, *spot, angle=rng.uniform(0, 2 * np.pi))
        if rng.random() < P_RLE:
            mask = polygon_mask(poly, h, w)
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            segm: Any = dict(size=[h, w], counts=rle['counts'].decode('ascii'))
        else:
            flat = [round(float(v), 2) for v in poly.reshape(-1)]
            segm = [flat]
            rle = mask_utils.merge(mask_utils.frPyObjects(segm, h, w))
            mask = mask_utils.decode(rle).astype(bool)
        if not mask.any():
            placed.pop()
            continue
        colour = jitter_colour(rng, COLOURS[name], 30)
        shade = 1 + 0.2 * (smooth_noise(rng, h, w, cells=4) - 0.5)
        img[mask] = colour * shade[mask][:, None]
        anns.append(
            dict(
                id=next_ann_id + len(anns),
                image_id=image_id,
                category_id=CATEGORY_IDS[label],
                segmentation=segm,
                area=float(mask_utils.area(rle)),
                bbox=[float(v) for v in mask_utils.toBbox(rle)],
                iscrowd=0))
    img = img + rng.normal(0, 5, img.shape)
    return img, anns


def _build_split(out: Path, seed: int, split: str, n: int, lo: int, hi: int) -> Dict[str, int]:
    folder = 'train2017' if split == 'train' else 'val2017'
    (out / folder).mkdir()
    offset = 0 if split == 'train' else VAL_ID_OFFSET
    images, annotations = [], []
    for i in range(n):
        rng = image_rng(seed, 'coco', split, i)
        h, w = random_image_size(rng, lo, hi)
        image_id = offset + i + 1
        name = f'{image_id:012d}.jpg'
        img, anns = _make_image(rng, h, w, len(annotations) + 1, image_id)
        save_jpeg(img, out / folder / name)
        images.append(dict(id=image_id, file_name=name, height=h, width=w))
        annotations.extend(anns)
    data = dict(
        info=dict(
            description=f'toy COCO-format instance segmentation ({GENERATOR} '
            f'v{VERSION}, seed {seed})',
            version=str(VERSION)),
        licenses=[],
        images=images,
        annotations=annotations,
        categories=[
            dict(id=c, name=n_, supercategory='shape') for c, n_ in zip(CATEGORY_IDS, CLASSES)
        ])
    write_json(data, out / 'annotations' / f'instances_{folder}.json')
    return dict(
        images=len(images),
        annotations=len(annotations),
        rle=sum(isinstance(a['segmentation'], dict) for a in annotations))


def _build(out: Path, seed: int, train_images: int, val_images: int, min_size: int,
           max_size: int) -> Dict[str, Any]:
    (out / 'annotations').mkdir()
    counts = {
        split: _build_split(out, seed, split, n, min_size, max_size)
        for split, n in (('train', train_images), ('val', val_images))
    }
    return dict(counts=counts, classes=list(CLASSES))


#: The toy COCO (stamped with its old module name, so existing datasets stay current).
DATASET = ToyDataset('coco', GENERATOR, VERSION, DEFAULTS, _build, **scene_limits(64))
