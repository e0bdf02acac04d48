"""Cheap sanity checks of a dataset folder before a run starts.

They turn the usual late and obscure failures (a KeyError deep inside a
pipeline, a pycocotools assertion, a CUDA assert from a label map value out of
range) into one line that names the file and the problem.  They only check
existence, parse annotation files and read label maps (a sample of them when
there are many); they do not decode images.
"""
from __future__ import annotations
import json
from pathlib import Path
from typing import Any, Iterable, List, Optional, Sequence

import numpy as np
from PIL import Image

from ..errors import first_line

#: Splits checked by default, per task, in the task's own folder names.
DEFAULT_SPLITS = {
    'imagenet': ('train', 'val'),
    'coco': ('train2017', 'val2017'),
    'ade20k': ('training', 'validation'),
}
#: ADE20K has 150 classes; label maps hold 0 (other/ignore) .. 150.
ADE20K_NUM_CLASSES = 150
#: Label maps read per split; all of them when a split has no more.
LABEL_MAP_SAMPLE = 200


class DatasetError(ValueError):
    """A dataset folder is missing, incomplete or inconsistent."""


def _fail(task: str, root: Path, problem: str) -> None:
    raise DatasetError(f'{task} dataset at {root}: {problem}')


def _load_json(task: str, root: Path, path: Path) -> Any:
    rel = path.relative_to(root)
    if not path.is_file():
        _fail(task, root, f'annotation file {rel} is missing')
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        _fail(task, root, f'annotation file {rel} is not valid JSON ({first_line(e)})')


def _require_dir(task: str, root: Path, rel: str, what: str) -> Path:
    path = root / rel
    if not path.is_dir():
        _fail(task, root, f'{what} folder {rel}/ is missing')
    return path


def _report_missing(task: str, root: Path, source: str, missing: List[str], total: int,
                    what: str) -> None:
    if missing:
        _fail(
            task, root, f'{len(missing)} of {total} {what} listed in {source} do not exist '
            f'(first: {missing[0]})')


def _check_imagenet(root: Path, splits: Sequence[str]) -> None:
    task = 'imagenet'
    val_numbers: List[int] = []
    for split in splits:
        img_dir = _require_dir(task, root, split, 'split')
        ann = root / 'meta' / f'{split}.txt'
        if not ann.is_file():
            continue  # folder-per-class mode: mmpretrain scans the folders
        lines = [ln for ln in ann.read_text(encoding='utf-8').splitlines() if ln.strip()]
        missing = []
        for n, line in enumerate(lines, 1):
            parts = line.strip().rsplit(' ', 1)
            if len(parts) != 2 or not parts[1].lstrip('-').isdigit():
                _fail(task, root, f'meta/{split}.txt line {n} is not "<path> <label>": '
                      f'{line.strip()!r}')
            if not (img_dir / parts[0]).is_file():
                missing.append(f'{split}/{parts[0]}')
            if split == 'val':
                stem = Path(parts[0]).stem
                if stem.startswith('ILSVRC2012_val_') and stem[15:].isdigit():
                    val_numbers.append(int(stem[15:]))
        _report_missing(task, root, f'meta/{split}.txt', missing, len(lines), 'images')
    real = root / 'real.json'
    if real.exists():
        labels = _load_json(task, root, real)
        if not isinstance(labels, list) or not all(
                isinstance(x, list) and all(isinstance(v, int) for v in x) for x in labels):
            _fail(task, root, 'real.json is not a JSON list of label lists')
        if val_numbers and max(val_numbers) > len(labels):
            _fail(
                task, root, f'real.json has {len(labels)} entries but meta/val.txt refers to '
                f'ILSVRC2012_val_{max(val_numbers):08d}')


def _check_coco(root: Path, splits: Sequence[str]) -> None:
    task = 'coco'
    for split in splits:
        img_dir = _require_dir(task, root, split, 'split')
        rel = f'annotations/instances_{split}.json'
        data = _load_json(task, root, root / rel)
        if not isinstance(data, dict) or not all(
                isinstance(data.get(k), list) for k in ('images', 'annotations', 'categories')):
            _fail(task, root, f'{rel} lacks the "images", "annotations" or "categories" list')
        missing = []
        for img in data['images']:
            name = img.get('file_name') if isinstance(img, dict) else None
            if not isinstance(name, str):
                _fail(task, root, f'{rel} has an image entry without "file_name": {img!r}'[:200])
            if not (img_dir / name).is_file():
                missing.append(f'{split}/{name}')
        _report_missing(task, root, rel, missing, len(data['images']), 'images')


def _sample(items: List[Path], k: int) -> Iterable[Path]:
    if len(items) <= k:
        return items
    idx = np.linspace(0, len(items) - 1, k).round().astype(int)
    return [items[i] for i in idx]


def _check_ade20k(root: Path, splits: Sequence[str], num_classes: int) -> None:
    task = 'ade20k'
    for split in splits:
        img_dir = _require_dir(task, root, f'images/{split}', 'image')
        ann_dir = _require_dir(task, root, f'annotations/{split}', 'annotation')
        images = sorted(img_dir.rglob('*.jpg'))
        if not images:
            _fail(task, root, f'images/{split}/ holds no .jpg image')
        maps = [ann_dir / img.relative_to(img_dir).with_suffix('.png') for img in images]
        missing = [str(m.relative_to(root)) for m in maps if not m.is_file()]
        if missing:
            _fail(
                task, root, f'{len(missing)} of {len(maps)} images in images/{split}/ have no '
                f'label map (first: {missing[0]})')
        for m in _sample(maps, LABEL_MAP_SAMPLE):
            try:
                with Image.open(m) as im:
                    arr = np.asarray(im)
            except OSError as e:
                _fail(task, root, f'label map {m.relative_to(root)} cannot be read '
                      f'({first_line(e)})')
            if arr.ndim != 2:
                _fail(
                    task, root, f'label map {m.relative_to(root)} is not single-channel '
                    f'(shape {arr.shape})')
            top = int(arr.max()) if arr.size else 0
            if top > num_classes:
                _fail(
                    task, root, f'label map {m.relative_to(root)} holds value {top}, above the '
                    f'{num_classes} classes (valid: 0..{num_classes})')


def check_dataset(task: str,
                  data_root: str | Path,
                  splits: Optional[Sequence[str]] = None,
                  num_classes: Optional[int] = None) -> None:
    """Raise :class:`DatasetError` with one line naming the first problem found.

    Args:
        task (str): 'imagenet', 'coco' or 'ade20k'.
        data_root (str | Path): the dataset root (the folder holding train/, val2017/,
            images/ ...).
        splits (Sequence[str], optional): split folder names to check. Defaults to None:
            both of :data:`DEFAULT_SPLITS`.
        num_classes (int, optional): ade20k only, the number of classes of the dataset
            metainfo; label values above it are errors. Defaults to None: 150.

    Raises:
        DatasetError: the first problem found, in one line.
        ValueError: an unknown task.
    """
    if task not in DEFAULT_SPLITS:
        raise ValueError(f'unknown task {task!r}; valid: {", ".join(DEFAULT_SPLITS)}')
    root = Path(data_root)
    if not root.is_dir():
        _fail(
            task, root, 'data root does not exist (run tools/make_toy_data.py for the toy '
            'data, or point data_root at the real dataset)')
    splits = tuple(splits) if splits is not None else DEFAULT_SPLITS[task]
    if task == 'imagenet':
        _check_imagenet(root, splits)
    elif task == 'coco':
        _check_coco(root, splits)
    else:
        _check_ade20k(root, splits, ADE20K_NUM_CLASSES if num_classes is None else num_classes)
