"""ReaLAccuracy: ImageNet-ReaL top-1 on hand-built samples and through mmengine's Evaluator."""
from __future__ import annotations
import json
import math
import random
from pathlib import Path
from typing import List, Optional

import pytest
import torch

from backbones.evaluation import ReaLAccuracy
from backbones.evaluation.real_accuracy import load_real_labels

NUM_CLASSES = 5
#: small models: one thread is as fast on an idle machine and far faster on a busy one
pytestmark = pytest.mark.usefixtures('one_thread')
# ReaL labels of validation images 1..8 (entry i belongs to ILSVRC2012_val_{i+1:08d}).
REAL = [[3], [1, 2], [], [0], [4], [], [2], [0, 4]]
# The top-1 prediction for each image, and whether the ReaL protocol counts it
# correct (None: empty label list, the image is skipped).
PREDS = [3, 2, 0, 1, 4, 4, 0, 4]
VERDICT = [True, True, None, False, True, None, False, True]
#: ReaL top-1 of PREDS, by hand: 4 correct of the 6 images with labels (3 and 6 have none)
HAND_TOP1 = 100.0 * 4 / 6


@pytest.fixture
def real_file(tmp_path) -> str:
    path = tmp_path / 'real.json'
    path.write_text(json.dumps(REAL))
    return str(path)


def _sample(number: int,
            pred: int,
            *,
            sample_idx: Optional[int] = None,
            with_score: bool = True,
            folder: str = 'n01440764') -> dict:
    """A data sample as mmengine's Evaluator hands it to metrics (DataSample.to_dict())."""
    d = dict(
        img_path=f'data/imagenet/val/{folder}/ILSVRC2012_val_{number:08d}.JPEG',
        sample_idx=number - 1 if sample_idx is None else sample_idx,
        gt_label=torch.tensor([0]),
        pred_label=torch.tensor([pred]))
    if with_score:
        score = torch.full((NUM_CLASSES, ), 0.01)
        score[pred] = 0.9
        d['pred_score'] = score
    return d


def _run(metric: ReaLAccuracy, samples: List[dict]) -> dict:
    metric.process({}, samples)
    return metric.evaluate(len(samples))


def test_each_image_gets_the_verdict_of_the_protocol(real_file):
    # The metric on each image alone: 100 (a ReaL label), 0 (none of them), NaN (no labels).
    for number, (pred, verdict) in enumerate(zip(PREDS, VERDICT), 1):
        result = _run(ReaLAccuracy(real_file=real_file), [_sample(number, pred)])['real/top1']
        if verdict is None:
            assert math.isnan(result), number
        else:
            assert result == (100.0 if verdict else 0.0), number


def test_top1_equals_hand_computation(real_file):
    samples = [_sample(i + 1, p) for i, p in enumerate(PREDS)]
    result = _run(ReaLAccuracy(real_file=real_file), samples)
    assert set(result) == {'real/top1'}
    assert result['real/top1'] == pytest.approx(HAND_TOP1)


def test_second_label_counts_and_wrong_label_does_not(real_file):
    # Image 2 has ReaL labels [1, 2]: both are correct, 0 is not.
    for pred, correct in ((1, True), (2, True), (0, False)):
        result = _run(ReaLAccuracy(real_file=real_file), [_sample(2, pred)])
        assert result['real/top1'] == (100.0 if correct else 0.0)


def test_empty_label_images_are_skipped(real_file):
    base = _run(
        ReaLAccuracy(real_file=real_file),
        [_sample(i + 1, p) for i, p in enumerate(PREDS)])['real/top1']
    # Any prediction on the empty-label images 3 and 6 leaves the result unchanged ...
    for pred in range(NUM_CLASSES):
        preds = list(PREDS)
        preds[2] = preds[5] = pred
        samples = [_sample(i + 1, p) for i, p in enumerate(preds)]
        assert _run(ReaLAccuracy(real_file=real_file), samples)['real/top1'] == base
    # ... as does leaving them out altogether.
    kept = [_sample(i + 1, p) for i, p in enumerate(PREDS) if REAL[i]]
    assert _run(ReaLAccuracy(real_file=real_file), kept)['real/top1'] == base
    # Only empty-label images: nothing to evaluate.
    only_empty = [_sample(3, 0), _sample(6, 1)]
    assert math.isnan(_run(ReaLAccuracy(real_file=real_file), only_empty)['real/top1'])


def test_index_comes_from_file_name_not_order(real_file):
    samples = [_sample(i + 1, p, sample_idx=0) for i, p in enumerate(PREDS)]  # bogus idx
    random.Random(0).shuffle(samples)
    result = _run(ReaLAccuracy(real_file=real_file), samples)
    assert result['real/top1'] == pytest.approx(HAND_TOP1)


def test_pred_label_only_and_sample_idx_fallback(real_file):
    samples = [_sample(i + 1, p, with_score=False) for i, p in enumerate(PREDS)]
    assert 'pred_score' not in samples[0]
    for s in samples:  # names without an ILSVRC2012_val_ number: use sample_idx
        s['img_path'] = s['img_path'].replace('ILSVRC2012_val_', 'image_')
    result = _run(ReaLAccuracy(real_file=real_file), samples)
    assert result['real/top1'] == pytest.approx(HAND_TOP1)


def test_score_argmax_wins_over_pred_label(real_file):
    sample = _sample(1, 3)  # score says 3 (correct) ...
    sample['pred_label'] = torch.tensor([0])  # ... a stale label says 0
    assert _run(ReaLAccuracy(real_file=real_file), [sample])['real/top1'] == 100.0


def test_prefix_and_percent_scale(real_file):
    metric = ReaLAccuracy(real_file=real_file, prefix='imagenet-real')
    result = _run(metric, [_sample(1, 3), _sample(4, 1)])
    assert result == {'imagenet-real/top1': 50.0}


def test_missing_file_raises_clearly(tmp_path):
    missing = tmp_path / 'nope' / 'real.json'
    with pytest.raises(FileNotFoundError, match='ReaL label file not found') as e:
        ReaLAccuracy(real_file=str(missing))
    assert str(missing) in str(e.value)


@pytest.mark.parametrize('text, match', [
    ('[[1], [2', 'not valid JSON'),
    ('{"a": 1}', 'non-empty JSON list'),
    ('[]', 'non-empty JSON list'),
    ('[[1], 2]', r'entry 1 \(image ILSVRC2012_val_00000002\)'),
    ('[[1], ["cat"]]', 'entry 1'),
    ('[[1], [-1]]', 'entry 1'),
])
def test_malformed_file_raises_clearly(tmp_path, text, match):
    path = tmp_path / 'real.json'
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_real_labels(str(path))


def test_image_outside_the_label_file_raises(real_file):
    metric = ReaLAccuracy(real_file=real_file)
    with pytest.raises(ValueError, match=r'ILSVRC2012_val_00000009.*has 8 entries'):
        metric.process({}, [_sample(9, 0)])
    with pytest.raises(KeyError, match='img_path'):
        metric.process({}, [dict(pred_label=torch.tensor([1]))])


def test_registered_in_root_and_found_from_mmpretrain_scope(real_file):
    from mmengine.registry import METRICS, DefaultScope

    assert METRICS.get('ReaLAccuracy') is ReaLAccuracy
    metric = METRICS.build(dict(type='ReaLAccuracy', real_file=real_file))
    assert isinstance(metric, ReaLAccuracy)
    from mmpretrain.registry import METRICS as PRETRAIN_METRICS
    assert PRETRAIN_METRICS.get('ReaLAccuracy') is ReaLAccuracy  # child falls back to root
    built = METRICS.build(dict(type='ReaLAccuracy', real_file=real_file, _scope_='mmpretrain'))
    assert isinstance(built, ReaLAccuracy)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        assert isinstance(
            METRICS.build(dict(type='ReaLAccuracy', real_file=real_file)), ReaLAccuracy)


def test_through_evaluator_with_mmpretrain_data_samples(toy_data):
    """The real pipeline (LoadImageFromFile + PackInputs) and mmengine's Evaluator."""
    from mmcv.transforms import LoadImageFromFile
    from mmengine.evaluator import Evaluator
    from mmengine.registry import DefaultScope
    from mmpretrain.datasets import ImageNet
    from mmpretrain.datasets.transforms import PackInputs

    root = toy_data(
        'imagenet', seed=5, num_classes=4, train_per_class=1, val_per_class=12, img_size=32)
    real = json.loads((root / 'real.json').read_text())
    classes = (root / 'meta' / 'classes.txt').read_text().splitlines()
    ds = ImageNet(
        data_root=str(root),
        split='val',
        metainfo=dict(classes=classes),
        pipeline=[LoadImageFromFile(), PackInputs()])
    assert len(ds) == len(real) == 48
    assert any(len(r) == 2 for r in real) and any(not r for r in real)

    # Predictions that make original and ReaL accuracy differ: the second ReaL
    # label where there is one, a wrong class on every third image, else the truth.
    samples, preds, gts = [], [], []
    for i in range(len(ds)):
        sample = ds[i]['data_samples']
        assert Path(sample.img_path).name == f'ILSVRC2012_val_{i + 1:08d}.JPEG'
        assert sample.sample_idx == i
        gt = int(sample.gt_label)
        pred = real[i][-1] if len(real[i]) == 2 else gt
        if i % 3 == 0:
            pred = (gt + 1) % len(classes)
        score = torch.full((len(classes), ), 0.1)
        score[pred] = 0.7
        sample.set_pred_score(score).set_pred_label(pred)
        samples.append(sample)
        preds.append(pred)
        gts.append(gt)

    with DefaultScope.overwrite_default_scope('mmpretrain'):
        evaluator = Evaluator([
            dict(type='Accuracy', topk=(1, )),
            dict(type='ReaLAccuracy', real_file=str(root / 'real.json'))
        ])
    evaluator.dataset_meta = ds.metainfo
    # Two batches, the second first: the order of evaluation must not matter.
    evaluator.process(samples[24:])
    evaluator.process(samples[:24])
    result = evaluator.evaluate(len(samples))

    labelled = [i for i in range(len(real)) if real[i]]
    expected_real = 100.0 * sum(preds[i] in real[i] for i in labelled) / len(labelled)
    expected_orig = 100.0 * sum(p == g for p, g in zip(preds, gts)) / len(gts)
    assert result['real/top1'] == pytest.approx(expected_real)
    assert result['accuracy/top1'] == pytest.approx(expected_orig)
    assert expected_real != pytest.approx(expected_orig)
