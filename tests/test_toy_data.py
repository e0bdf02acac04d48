"""Toy datasets: determinism, idempotence, atomicity, real OpenMMLab loading, checks."""
from __future__ import annotations
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from harness.toy import DatasetError, _common, check_dataset, ensure_toy_data
from harness.toy.ade20k import CLASSES as ADE_TOY_CLASSES
from harness.toy.coco import CLASSES as COCO_CLASSES

REPO = Path(__file__).resolve().parents[1]

# Small sizes so that the whole file stays fast.
SIZES: Dict[str, dict] = {
    'imagenet': dict(num_classes=4, train_per_class=5, val_per_class=6, img_size=32),
    'coco': dict(train_images=5, val_images=6),
    'ade20k': dict(train_images=4, val_images=5, min_size=64, max_size=112),
}
TASKS = tuple(SIZES)


def _files(root: Path) -> Dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob('*')) if p.is_file()
    }


def _mtimes(root: Path) -> Dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob('*')}


@pytest.fixture(scope='module')
def toy(toy_data) -> Dict[str, Path]:
    """One small dataset per task, shared read-only by the tests of this module."""
    return {task: toy_data(task, seed=0, **SIZES[task]) for task in TASKS}


@pytest.fixture
def copy_of(toy, tmp_path):
    """A private copy of a shared dataset, for tests that break it."""

    def _copy(task: str) -> Path:
        dst = tmp_path / task
        shutil.copytree(toy[task], dst)
        return dst

    return _copy


# ---------------------------------------------------------------------------
# generation


@pytest.mark.parametrize('task', TASKS)
def test_same_seed_same_bytes_other_seed_differs(task, toy, tmp_path):
    again = ensure_toy_data(task, tmp_path / 'a', seed=0, **SIZES[task])
    assert again == tmp_path / 'a' / task
    first = _files(toy[task])
    assert _files(again) == first
    other = _files(ensure_toy_data(task, tmp_path / 'b', seed=1, **SIZES[task]))
    assert len(other) == len(first)  # same sizes ...
    # ... but other content: every image differs (or, for ImageNet val, its class folder).
    images = [k for k in first if k.lower().endswith(('.jpeg', '.jpg'))]
    assert images and all(other.get(k) != first[k] for k in images)


@pytest.mark.parametrize('task', TASKS)
def test_ensure_is_idempotent_and_regenerates_on_change(task, tmp_path):
    path = ensure_toy_data(task, tmp_path, seed=3, **SIZES[task])
    before = _mtimes(path)
    assert ensure_toy_data(task, tmp_path, seed=3, **SIZES[task]) == path
    assert _mtimes(path) == before
    stamp = json.loads((path / 'toy_meta.json').read_text())
    assert stamp['seed'] == 3 and stamp['task'] == task
    assert stamp['params'].items() >= SIZES[task].items()
    # Another seed at the same place replaces the dataset.
    ensure_toy_data(task, tmp_path, seed=4, **SIZES[task])
    assert json.loads((path / 'toy_meta.json').read_text())['seed'] == 4
    # force rewrites even an up-to-date dataset.
    before = _mtimes(path)
    ensure_toy_data(task, tmp_path, seed=4, force=True, **SIZES[task])
    assert _mtimes(path) != before
    # No temporary or old folders are left beside it.
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith('.lock')) == [task]


def test_killed_generation_leaves_no_complete_looking_dataset(tmp_path, monkeypatch):
    from harness.toy import ade20k

    calls = []
    real_render = ade20k.render_scene

    def dying_render(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt('killed')
        return real_render(*args, **kwargs)

    monkeypatch.setattr(ade20k, 'render_scene', dying_render)
    with pytest.raises(KeyboardInterrupt):
        ensure_toy_data('ade20k', tmp_path, **SIZES['ade20k'])
    assert not (tmp_path / 'ade20k').exists()
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith('.lock')] == []
    # A leftover from a process killed with SIGKILL (no cleanup ran) and a
    # dataset folder without stamp are both replaced by the next call.
    (tmp_path / '.ade20k.tmp-999-dead').mkdir()
    (tmp_path / 'ade20k' / 'images').mkdir(parents=True)
    monkeypatch.setattr(ade20k, 'render_scene', real_render)
    path = ensure_toy_data('ade20k', tmp_path, **SIZES['ade20k'])
    check_dataset('ade20k', path)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith('.lock')) == ['ade20k']


def test_damaged_dataset_with_valid_stamp_is_regenerated(copy_of, tmp_path):
    path = copy_of('coco')
    victim = next((path / 'val2017').iterdir())
    victim.unlink()
    ensure_toy_data('coco', tmp_path, seed=0, **SIZES['coco'])
    assert victim.is_file()


def test_unknown_task_and_size_are_rejected(tmp_path):
    with pytest.raises(ValueError, match=r"'cifar'.*imagenet, coco, ade20k"):
        ensure_toy_data('cifar', tmp_path)
    with pytest.raises(TypeError, match='num_classes'):
        ensure_toy_data('coco', tmp_path, num_classes=3)
    with pytest.raises(ValueError, match='imagenet, coco, ade20k'):
        check_dataset('voc', tmp_path)


def test_sizes_out_of_range_are_rejected_before_writing(tmp_path):
    with pytest.raises(ValueError, match=r'num_classes must be in 1\.\.20, got 21'):
        ensure_toy_data('imagenet', tmp_path, num_classes=21)
    with pytest.raises(ValueError, match='val_images must be >= 1, got 0'):
        ensure_toy_data('coco', tmp_path, val_images=0)
    with pytest.raises(ValueError, match=r'max_size must be >= min_size \+ 16'):
        ensure_toy_data('ade20k', tmp_path, min_size=100, max_size=110)
    assert list(tmp_path.iterdir()) == []


def _load_cli(monkeypatch):
    # for the tool's `import _bootstrap`; last: shadows nothing
    monkeypatch.setattr(sys, 'path', sys.path + [str(REPO / 'tools')])
    spec = importlib.util.spec_from_file_location('make_toy_data',
                                                  REPO / 'tools' / 'make_toy_data.py')
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    return cli


def test_cli_prints_what_it_wrote(tmp_path, capsys, monkeypatch):
    cli = _load_cli(monkeypatch)
    assert cli.main(['--task', 'ade20k', '--root', str(tmp_path), '--seed', '2']) == 0
    out = capsys.readouterr().out
    assert f'ade20k: {tmp_path / "ade20k"} (wrote' in out and '"images": 64' in out
    assert cli.main(['--task', 'ade20k', '--root', str(tmp_path), '--seed', '2']) == 0
    assert 'up to date' in capsys.readouterr().out


@pytest.mark.parametrize('args', [['--task', 'coco', '--size', 'num_classes=3'],
                                  ['--task', 'coco', '--size', 'min_size=8'],
                                  ['--size', 'val_images=2'], ['--seed', '-1']])
def test_cli_bad_input_is_one_error_line(args, tmp_path, capsys, monkeypatch):
    from harness.errors import tool_main
    cli = _load_cli(monkeypatch)
    assert tool_main(lambda: cli.main(['--root', str(tmp_path), *args]), prog='mtd') == 2
    err = capsys.readouterr().err
    assert err.startswith('mtd: error: ') and err.count('\n') == 1
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize('args, message', [
    (['--task', 'cifar'], "argument --task: invalid choice: 'cifar'"),
    (['--task', 'coco', '--size', 'val_images=two'], "--size 'val_images=two' is not NAME=INTEGER"),
    (['--task', 'coco', '--root', 'FILE'], 'coco: cannot write under'),
])
def test_cli_bad_input_in_a_real_process_is_one_error_line_and_exit_2(args, message, tmp_path):
    """Through ``run_tool`` (the exit code) and argparse (whose usage lines come first)."""
    afile = tmp_path / 'a_file'
    afile.write_text('')
    args = [str(afile) if a == 'FILE' else a for a in args]
    tool = str(REPO / 'tools' / 'make_toy_data.py')
    cmd = [sys.executable, tool, '--root', str(tmp_path / 'out'), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    errors = [line for line in proc.stderr.splitlines() if 'error:' in line]
    assert proc.returncode == 2 and proc.stdout == ''
    assert len(errors) == 1 and errors == proc.stderr.splitlines()[-1:], proc.stderr
    assert errors[0].startswith('make_toy_data.py: error: ') and message in errors[0]
    assert not (tmp_path / 'out').exists() and afile.read_text() == ''


# ---------------------------------------------------------------------------
# formats, through the real OpenMMLab dataset classes


def test_imagenet_layout_real_labels_and_mmpretrain_dataset(toy):
    from mmpretrain.datasets import ImageNet

    root = toy['imagenet']
    n_cls, n_val = SIZES['imagenet']['num_classes'], 0
    classes = (root / 'meta' / 'classes.txt').read_text().splitlines()
    assert len(classes) == n_cls and classes[0].startswith('tench')
    wnids = sorted(p.name for p in (root / 'train').iterdir())
    assert wnids[0] == 'n01440764' and len(wnids) == n_cls

    for split, per_class in (('train', 'train_per_class'), ('val', 'val_per_class')):
        ds = ImageNet(data_root=str(root), split=split, metainfo=dict(classes=classes))
        assert len(ds) == n_cls * SIZES['imagenet'][per_class]
        assert tuple(ds.CLASSES) == tuple(classes)
        for info in ds:
            path = Path(info['img_path'])
            assert path.is_file() and path.suffix == '.JPEG'
            assert wnids[info['gt_label']] == path.parent.name  # folder = label
        if split == 'val':
            n_val = len(ds)
            numbers = [int(Path(d['img_path']).stem.split('_')[-1]) for d in ds]
            assert numbers == list(range(1, n_val + 1))  # one sequence, listed in order
            val = ds
        item = ds[0]  # default pipeline is empty: the info dict itself
        assert 'img_path' in item
    # ``classes`` may also be the class file itself.
    assert ImageNet(
        data_root=str(root), split='val',
        classes=str(root / "meta" / "classes.txt")).CLASSES == tuple(classes)
    # Folder mode (no ann file) gives the same labels: wnids sort in label order.
    folder_ds = ImageNet(data_root=str(root), data_prefix='val', metainfo=dict(classes=classes))
    by_path = {d['img_path']: d['gt_label'] for d in folder_ds}
    assert all(by_path[d['img_path']] == d['gt_label'] for d in val)

    real = json.loads((root / 'real.json').read_text())
    assert len(real) == n_val
    labels = [d['gt_label'] for d in val]
    assert all(isinstance(r, list) and all(0 <= v < n_cls for v in r) for r in real)
    for r, label in zip(real, labels):
        assert r == [] or label in r  # the true label, plus at most one other
        assert len(r) <= 2 and r == sorted(set(r))
    stamp = json.loads((root / 'toy_meta.json').read_text())
    assert stamp['counts']['real_empty'] == sum(r == [] for r in real)
    assert stamp['counts']['real_multi'] == sum(len(r) == 2 for r in real)
    with Image.open(next((root / 'train' / wnids[0]).iterdir())) as im:
        assert im.format == 'JPEG' and im.size == (32, 32) and im.mode == 'RGB'


def test_imagenet_real_label_kinds_occur_at_default_size():
    """Multi-label and empty ReaL entries occur (checked on the layout alone: no images)."""
    from harness.toy.imagenet import DEFAULTS, val_layout
    layout = val_layout(0, DEFAULTS['num_classes'], DEFAULTS['val_per_class'])
    kinds = [k for _, k, _ in layout]
    assert kinds.count('multi') > 0 and kinds.count('empty') > 0
    assert kinds.count('single') > len(kinds) // 2
    assert all(second != label for label, k, second in layout if k == 'multi')


def _coco_pipeline():
    from mmcv.transforms import LoadImageFromFile
    from mmdet.datasets.transforms import LoadAnnotations, PackDetInputs
    return [LoadImageFromFile(), LoadAnnotations(with_bbox=True, with_mask=True), PackDetInputs()]


def test_coco_json_and_masks(toy):
    root = toy['coco']
    for split in ('train2017', 'val2017'):
        data = json.loads((root / 'annotations' / f'instances_{split}.json').read_text())
        assert [c['name'] for c in data['categories']] == list(COCO_CLASSES)
        sizes = {(im['height'], im['width']) for im in data['images']}
        assert all(128 <= h <= 256 and 128 <= w <= 256 and h != w for h, w in sizes)
        per_image = {im['id']: 0 for im in data['images']}
        kinds = set()
        for ann in data['annotations']:
            per_image[ann['image_id']] += 1
            im = next(i for i in data['images'] if i['id'] == ann['image_id'])
            h, w = im['height'], im['width']
            segm = ann['segmentation']
            if isinstance(segm, list):
                kinds.add('polygon')
                rle = mask_utils.merge(mask_utils.frPyObjects(segm, h, w))
            else:
                kinds.add('rle')
                assert isinstance(segm['counts'], str) and segm['size'] == [h, w]
                rle = segm
            mask = mask_utils.decode(rle)
            assert mask.shape == (h, w)
            assert abs(ann['area'] - mask.sum()) <= 0.02 * mask.sum() + 2
            ys, xs = np.nonzero(mask)
            x, y, bw, bh = ann['bbox']
            assert (x, y, x + bw, y + bh) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            assert ann['iscrowd'] == 0 and ann['category_id'] in (1, 2, 3)
            # The object is painted from its mask: its pixels are saturated colour.
            with Image.open(root / split / im['file_name']) as f:
                pixels = np.asarray(f, dtype=np.float32)[mask.astype(bool)]
            spread = pixels.max(1) - pixels.min(1)
            assert np.median(spread) > 60
        assert 1 <= min(per_image.values()) and max(per_image.values()) <= 4
        if split == 'train2017':
            assert kinds == {'polygon', 'rle'}


def test_coco_loads_in_mmdet_and_cocometric_scores_perfect_predictions(toy):
    import torch
    from mmdet.datasets import CocoDataset
    from mmdet.evaluation import CocoMetric
    from mmengine.structures import InstanceData

    root = toy['coco']
    ds = CocoDataset(
        data_root=str(root),
        ann_file='annotations/instances_val2017.json',
        data_prefix=dict(img='val2017/'),
        metainfo=dict(classes=COCO_CLASSES),
        pipeline=_coco_pipeline(),
        test_mode=True)
    assert len(ds) == SIZES['coco']['val_images']
    gt = json.loads((root / 'annotations' / 'instances_val2017.json').read_text())

    def predict(shift: float):
        samples = []
        for i in range(len(ds)):
            sample = ds[i]['data_samples']
            inst = sample.gt_instances
            boxes = inst.bboxes.tensor.clone()
            boxes[:, [0, 2]] += shift
            masks = torch.from_numpy(inst.masks.to_ndarray()).bool()
            if shift:
                masks = torch.roll(masks, int(shift), dims=2)
            pred = InstanceData(
                bboxes=boxes, labels=inst.labels, scores=torch.ones(len(inst)), masks=masks)
            samples.append(
                dict(
                    img_id=sample.img_id, ori_shape=sample.ori_shape,
                    pred_instances=pred.to_dict()))
        return samples

    first = ds[0]['data_samples']
    n_first = sum(a['image_id'] == first.img_id for a in gt['annotations'])
    assert len(first.gt_instances) == n_first
    assert first.gt_instances.masks.to_ndarray().shape[1:] == first.ori_shape

    results = {}
    for shift in (0.0, 12.0):
        metric = CocoMetric(
            ann_file=str(root / 'annotations' / 'instances_val2017.json'), metric=['bbox', 'segm'])
        metric.dataset_meta = ds.metainfo
        metric.process({}, predict(shift))
        results[shift] = metric.evaluate(len(ds))
    # Predictions equal to the ground truth are perfect by definition; shifted ones are not.
    assert results[0.0]['coco/bbox_mAP'] == pytest.approx(1.0)
    assert results[0.0]['coco/segm_mAP'] == pytest.approx(1.0)
    assert results[12.0]['coco/bbox_mAP'] < 1.0 and results[12.0]['coco/segm_mAP'] < 1.0


@pytest.mark.parametrize('restrict', [False, True])
def test_ade20k_loads_in_mmseg(toy, restrict):
    import torch
    from mmcv.transforms import LoadImageFromFile
    from mmengine.structures import PixelData
    from mmseg.datasets import ADE20KDataset
    from mmseg.datasets.transforms import LoadAnnotations, PackSegInputs
    from mmseg.evaluation import IoUMetric

    root = toy['ade20k']
    kwargs = dict(metainfo=dict(classes=ADE_TOY_CLASSES)) if restrict else {}
    ds = ADE20KDataset(
        data_root=str(root),
        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
        pipeline=[LoadImageFromFile(), LoadAnnotations(),
                  PackSegInputs()],
        **kwargs)
    assert len(ds) == SIZES['ade20k']['val_images']
    assert len(ds.metainfo['classes']) == (len(ADE_TOY_CLASSES) if restrict else 150)
    assert ds.metainfo['classes'][:len(ADE_TOY_CLASSES)] == ADE_TOY_CLASSES
    samples, seen = [], set()
    for i in range(len(ds)):
        sample = ds[i]['data_samples']
        h, w = sample.ori_shape
        assert h != w and 64 <= min(h, w) and max(h, w) <= 112
        with Image.open(sample.seg_map_path) as im:
            raw = np.asarray(im)
        assert raw.dtype == np.uint8 and raw.ndim == 2 and raw.shape == (h, w)
        assert raw.max() <= len(ADE_TOY_CLASSES)
        expected = np.where(raw == 0, 255, raw.astype(np.int64) - 1)  # reduce_zero_label
        got = sample.gt_sem_seg.data[0].numpy()
        np.testing.assert_array_equal(got, expected)
        seen |= set(np.unique(raw).tolist())
        sample.pred_sem_seg = PixelData(data=torch.from_numpy(got[None].copy()))
        samples.append(sample.to_dict())
    assert seen >= {0, 3}  # "other" and sky occur in any handful of scenes
    metric = IoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = ds.metainfo
    metric.process({}, samples)
    assert metric.evaluate(len(ds))['mIoU'] == pytest.approx(100.0)  # prediction == truth


def test_ade20k_classes_cover_all_values(toy):
    stamp = json.loads((toy['ade20k'] / 'toy_meta.json').read_text())
    for split in ('training', 'validation'):
        counts = stamp['counts'][split]['pixels_per_value']
        assert len(counts) == len(ADE_TOY_CLASSES) + 1 and counts[0] > 0
    train = stamp['counts']['training']['pixels_per_value']
    assert sum(c > 0 for c in train) >= 5


# ---------------------------------------------------------------------------
# check_dataset


@pytest.mark.parametrize('task', TASKS)
def test_check_accepts_generated_data(toy, task):
    check_dataset(task, toy[task])


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert '\n' not in msg
    return msg


def test_check_missing_root_and_split(tmp_path, copy_of):
    with pytest.raises(DatasetError, match='data root does not exist') as e:
        check_dataset('imagenet', tmp_path / 'nowhere')
    assert str(tmp_path / 'nowhere') in _one_line(e)
    path = copy_of('coco')
    shutil.rmtree(path / 'val2017')
    with pytest.raises(DatasetError, match=r'split folder val2017/ is missing'):
        check_dataset('coco', path)
    path = copy_of('ade20k')
    shutil.rmtree(path / 'annotations' / 'training')
    with pytest.raises(DatasetError, match=r'annotation folder annotations/training/ is missing'):
        check_dataset('ade20k', path)


def test_check_missing_and_broken_coco_json(copy_of):
    path = copy_of('coco')
    ann = path / 'annotations' / 'instances_val2017.json'
    ann.write_text('{"images": [')
    with pytest.raises(DatasetError, match=r'instances_val2017.json is not valid JSON') as e:
        check_dataset('coco', path)
    _one_line(e)
    ann.write_text('{"images": []}')
    with pytest.raises(DatasetError, match=r'lacks the "images", "annotations"'):
        check_dataset('coco', path)
    ann.unlink()
    with pytest.raises(
            DatasetError, match=r'annotation file annotations/instances_val2017.json is missing'):
        check_dataset('coco', path)


def test_check_coco_images_missing(copy_of):
    path = copy_of('coco')
    data = json.loads((path / 'annotations' / 'instances_val2017.json').read_text())
    names = [im['file_name'] for im in data['images']]
    for name in (names[3], names[1]):
        (path / 'val2017' / name).unlink()
    with pytest.raises(DatasetError) as e:
        check_dataset('coco', path)
    msg = _one_line(e)
    assert f'2 of {len(names)} images' in msg and 'instances_val2017.json' in msg
    assert f'first: val2017/{names[1]}' in msg


def test_check_ade_label_out_of_range(copy_of):
    path = copy_of('ade20k')
    victim = sorted((path / 'annotations' / 'validation').iterdir())[2]
    lab = np.asarray(Image.open(victim)).copy()
    lab[0, 0] = 150  # the largest valid ADE20K value
    Image.fromarray(lab).save(victim)
    check_dataset('ade20k', path)
    with pytest.raises(DatasetError) as e:  # but not for a dataset of 6 classes
        check_dataset('ade20k', path, num_classes=len(ADE_TOY_CLASSES))
    assert 'value 150' in _one_line(e)
    lab[5, 7] = 151
    Image.fromarray(lab).save(victim)
    with pytest.raises(DatasetError) as e:
        check_dataset('ade20k', path)
    msg = _one_line(e)
    assert f'annotations/validation/{victim.name}' in msg and 'value 151' in msg
    assert '0..150' in msg


def test_check_ade_missing_label_map(copy_of):
    path = copy_of('ade20k')
    victim = sorted((path / 'annotations' / 'training').iterdir())[1]
    victim.unlink()
    with pytest.raises(DatasetError, match=f'first: annotations/training/{victim.name}'):
        check_dataset('ade20k', path)


def test_check_imagenet_ann_file_refers_to_missing_image(copy_of):
    path = copy_of('imagenet')
    lines = (path / 'meta' / 'val.txt').read_text().splitlines()
    rel = lines[4].rsplit(' ', 1)[0]
    (path / 'val' / rel).unlink()
    with pytest.raises(DatasetError) as e:
        check_dataset('imagenet', path)
    msg = _one_line(e)
    assert f'1 of {len(lines)} images listed in meta/val.txt' in msg and f'val/{rel}' in msg


def test_check_imagenet_broken_real_json(copy_of):
    path = copy_of('imagenet')
    (path / 'real.json').write_text('[[1], [2')
    with pytest.raises(DatasetError, match='real.json is not valid JSON'):
        check_dataset('imagenet', path)
    (path / 'real.json').write_text('[[1]]')
    with pytest.raises(DatasetError, match='real.json has 1 entries but meta/val.txt refers to'):
        check_dataset('imagenet', path)


def test_stamp_identity_helpers(tmp_path):
    assert _common.read_stamp(tmp_path) is None
    (tmp_path / 'toy_meta.json').write_text('{"seed": 1, "version": 1, "counts": {}}')
    stamp = _common.read_stamp(tmp_path)
    assert _common.stamp_matches(stamp, dict(seed=1, version=1))
    assert not _common.stamp_matches(stamp, dict(seed=1, version=2))
