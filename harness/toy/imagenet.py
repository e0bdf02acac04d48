"""A small ImageNet-1k-style classification dataset with ReaL labels.

Layout (``<root>``)::

    train/<wnid>/<wnid>_<j>.JPEG          j = 1..train_per_class
    val/<wnid>/ILSVRC2012_val_%08d.JPEG    one global numbering 1..N (shuffled classes)
    meta/train.txt   "<wnid>/<file> <label>" per line (mmpretrain ann-file format,
    meta/val.txt      paths relative to train/ and val/), val.txt in val-number order
    meta/classes.txt one class name per line, in label order
    real.json        ReaL labels: list over val images (index = number - 1) of label lists
    toy_meta.json    generator stamp

The classes are the first ``num_classes`` ImageNet-1k classes (same wnids,
names and label indices), each drawn as one (shape, colour) pair: every shape
and every colour occurs in several classes, so a model must use both.  Objects
have random position, scale, rotation and colour jitter on a textured
background with pixel noise.

ReaL labels: most val images hold one object and get ``[label]``; about 12 %
hold a second, smaller object of another class and get both labels; about 6 %
hold no class object at all (only a grey distractor) and get ``[]`` - for
those the folder (original) label is wrong, as for some real ImageNet images.
"""
from __future__ import annotations
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ._common import (ToyDataset, disc_mask, image_rng, jitter_colour, polygon_mask, save_jpeg,
                      shape_polygon, smooth_noise, write_json)

GENERATOR = 'backbones.toy.imagenet'
VERSION = 1

#: The first 20 ImageNet-1k classes (wnid, mmpretrain class name), label = position.
IMAGENET_HEAD: Tuple[Tuple[str, str], ...] = (
    ('n01440764', 'tench, Tinca tinca'),
    ('n01443537', 'goldfish, Carassius auratus'),
    ('n01484850', 'great white shark, white shark, man-eater, man-eating shark, '
     'Carcharodon carcharias'),
    ('n01491361', 'tiger shark, Galeocerdo cuvieri'),
    ('n01494475', 'hammerhead, hammerhead shark'),
    ('n01496331', 'electric ray, crampfish, numbfish, torpedo'),
    ('n01498041', 'stingray'),
    ('n01514668', 'cock'),
    ('n01514859', 'hen'),
    ('n01518878', 'ostrich, Struthio camelus'),
    ('n01530575', 'brambling, Fringilla montifringilla'),
    ('n01531178', 'goldfinch, Carduelis carduelis'),
    ('n01532829', 'house finch, linnet, Carpodacus mexicanus'),
    ('n01534433', 'junco, snowbird'),
    ('n01537544', 'indigo bunting, indigo finch, indigo bird, Passerina cyanea'),
    ('n01558993', 'robin, American robin, Turdus migratorius'),
    ('n01560419', 'bulbul'),
    ('n01580077', 'jay'),
    ('n01582220', 'magpie'),
    ('n01592084', 'chickadee'),
)

SHAPES = ('circle', 'square', 'triangle', 'ring', 'cross')
COLOURS = ((215, 40, 40), (40, 175, 60), (45, 85, 220), (230, 205, 40))

DEFAULTS: Dict[str, int] = dict(num_classes=8, train_per_class=100, val_per_class=25, img_size=64)
P_MULTI = 0.12
P_EMPTY = 0.06


def class_style(label: int) -> Tuple[str, Tuple[int, int, int]]:
    """The look of a class; all 20 (shape, colour) pairs are distinct.

    Args:
        label (int): the class index, 0..19.

    Returns:
        tuple: (shape name, RGB colour).
    """
    shape = label % len(SHAPES)
    colour = (shape + label // len(SHAPES)) % len(COLOURS)
    return SHAPES[shape], COLOURS[colour]


def _background(rng: np.random.Generator, s: int) -> np.ndarray:
    grey = rng.uniform(70, 185)
    a = np.clip(grey + rng.uniform(-30, 30, 3), 0, 255)
    b = np.clip(grey + rng.uniform(-45, 45, 3), 0, 255)
    t = smooth_noise(rng, s, s, cells=int(rng.integers(2, 7)))[..., None]
    img = a * (1 - t) + b * t
    if rng.random() < 0.5:  # faint stripes as extra texture
        period = rng.uniform(4, 12)
        theta = rng.uniform(0, np.pi)
        yy, xx = np.mgrid[0:s, 0:s]
        wave = np.sin((xx * np.cos(theta) + yy * np.sin(theta)) * 2 * np.pi / period)
        img = img + rng.uniform(6, 18) * wave[..., None]
    return img


def _object_mask(rng: np.random.Generator,
                 shape: str,
                 s: int,
                 scale: Tuple[float, float],
                 centre: Optional[Tuple[float, float]] = None) -> np.ndarray:
    r = s * rng.uniform(*scale) / 2
    if centre is None:
        cx, cy = rng.uniform(r * 0.7, s - r * 0.7, 2)
    else:
        cx, cy = centre
    angle = rng.uniform(0, 2 * np.pi)
    if shape == 'ring':
        inner = r * rng.uniform(0.45, 0.65)
        return disc_mask(s, s, cx, cy, r) & ~disc_mask(s, s, cx, cy, inner)
    return polygon_mask(shape_polygon(shape, cx, cy, r, angle), s, s)


def _paint(img: np.ndarray, mask: np.ndarray, colour: np.ndarray, rng: np.random.Generator):
    shade = 1 + 0.15 * (smooth_noise(rng, *mask.shape, cells=3) - 0.5)
    img[mask] = colour * shade[mask][:, None]


def render_image(rng: np.random.Generator,
                 label: int,
                 s: int,
                 kind: str = 'single',
                 second: Optional[int] = None) -> np.ndarray:
    """One image of class ``label``.

    Args:
        rng (numpy.random.Generator): the image's random generator.
        label (int): its class.
        s (int): its side in pixels.
        kind (str): ``'single'``, ``'multi'`` (with a smaller object of class ``second``) or
            ``'empty'`` (a grey distractor only). Defaults to ``'single'``.
        second (int, optional): the second class of a ``'multi'`` image. Defaults to None.

    Returns:
        numpy.ndarray: a float (s, s, 3) RGB image.
    """
    img = _background(rng, s)
    if kind == 'empty':
        # A desaturated distractor in a random shape: no class applies.
        grey = rng.uniform(90, 200)
        mask = _object_mask(rng, SHAPES[int(rng.integers(len(SHAPES)))], s, (0.35, 0.7))
        _paint(img, mask, np.full(3, grey) + rng.uniform(-8, 8, 3), rng)
    else:
        shape, colour = class_style(label)
        if kind == 'multi':
            # Two objects in opposite halves so that both stay visible.
            left = rng.random() < 0.5
            cx1 = s * (0.28 if left else 0.72)
            cx2 = s - cx1
            cy1, cy2 = s * rng.uniform(0.3, 0.7, 2)
            mask = _object_mask(rng, shape, s, (0.35, 0.5), (cx1, cy1))
            _paint(img, mask, jitter_colour(rng, colour, 25), rng)
            shape2, colour2 = class_style(int(second))
            mask2 = _object_mask(rng, shape2, s, (0.3, 0.42), (cx2, cy2))
            _paint(img, mask2, jitter_colour(rng, colour2, 25), rng)
        else:
            mask = _object_mask(rng, shape, s, (0.35, 0.75))
            _paint(img, mask, jitter_colour(rng, colour, 25), rng)
    img = img + rng.normal(0, 6, img.shape)
    return img


def val_layout(seed: int, num_classes: int, val_per_class: int) -> List[Tuple[int, str, int]]:
    """What each val image shows, in val-number order.

    Args:
        seed (int): the dataset seed.
        num_classes (int): the number of classes.
        val_per_class (int): val images per class.

    Returns:
        list[tuple[int, str, int]]: (label, kind, second label or -1) for val numbers 1..N.
    """
    rng = image_rng(seed, 'imagenet', 'layout')
    labels = np.repeat(np.arange(num_classes), val_per_class)
    rng.shuffle(labels)
    layout = []
    for i, label in enumerate(labels.tolist()):
        r = image_rng(seed, 'imagenet', 'real', i)
        u = r.random()
        if u < P_EMPTY:
            layout.append((label, 'empty', -1))
        elif u < P_EMPTY + P_MULTI and num_classes > 1:
            other = int(r.integers(num_classes - 1))
            other += other >= label
            layout.append((label, 'multi', other))
        else:
            layout.append((label, 'single', -1))
    return layout


def _build(out: Path, seed: int, num_classes: int, train_per_class: int, val_per_class: int,
           img_size: int) -> Dict[str, Any]:
    wnids = [w for w, _ in IMAGENET_HEAD[:num_classes]]
    (out / 'meta').mkdir()
    train_lines = []
    for label, wnid in enumerate(wnids):
        (out / 'train' / wnid).mkdir(parents=True)
        for j in range(1, train_per_class + 1):
            rel = f'{wnid}/{wnid}_{j}.JPEG'
            rng = image_rng(seed, 'imagenet', 'train', label * 1_000_000 + j)
            save_jpeg(render_image(rng, label, img_size), out / 'train' / rel)
            train_lines.append(f'{rel} {label}\n')
    for wnid in wnids:
        (out / 'val' / wnid).mkdir(parents=True)
    val_lines, real = [], []
    for i, (label, kind, second) in enumerate(val_layout(seed, num_classes, val_per_class)):
        rel = f'{wnids[label]}/ILSVRC2012_val_{i + 1:08d}.JPEG'
        rng = image_rng(seed, 'imagenet', 'val', i)
        save_jpeg(render_image(rng, label, img_size, kind, second), out / 'val' / rel)
        val_lines.append(f'{rel} {label}\n')
        real.append([] if kind == 'empty' else sorted({label, second} - {-1}))
    (out / 'meta' / 'train.txt').write_text(''.join(train_lines))
    (out / 'meta' / 'val.txt').write_text(''.join(val_lines))
    (out / 'meta' / 'classes.txt').write_text(''.join(f'{name}\n'
                                                      for _, name in IMAGENET_HEAD[:num_classes]))
    write_json(real, out / 'real.json')
    return dict(
        counts=dict(
            train=len(train_lines),
            val=len(val_lines),
            real_multi=sum(len(r) > 1 for r in real),
            real_empty=sum(len(r) == 0 for r in real)),
        classes=[name for _, name in IMAGENET_HEAD[:num_classes]],
        wnids=wnids)


#: The toy ImageNet (stamped with its old module name, so existing datasets stay current).
DATASET = ToyDataset(
    'imagenet',
    GENERATOR,
    VERSION,
    DEFAULTS,
    _build,
    bounds=dict(
        num_classes=(1, len(IMAGENET_HEAD)),
        train_per_class=(1, None),
        val_per_class=(1, None),
        img_size=(16, None)))
