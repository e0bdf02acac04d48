"""``--toy`` changes only what ``cfg.toy_changes`` lists (README, "Toy runs"): the full-scale and
the toy config of one config per task, resolved, compared key by key; every key that differs is
accounted for by a line of ``cfg.toy_changes``, and every line by a key that differs."""
import copy
import re
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from harness.running.config import load_config
from harness.toy.adapt import toy_config

ROOT = Path(__file__).resolve().parents[1]
#: one config per task; toy data as small as they come
CASES = {
    'imagenet': ('configs/imagenet/swin_t_in1k.py',
                 dict(num_classes=4, train_per_class=2, val_per_class=1, img_size=64)),
    'coco': ('configs/coco/dwconv_t_cascade_maskrcnn_3x.py',
             dict(train_images=2, val_images=1, min_size=64, max_size=96)),
    'ade20k': ('configs/ade20k/idynamic_t_upernet.py',
               dict(train_images=2, val_images=1, min_size=64, max_size=96)),
}
_LOADER = r'(train|val|test)_dataloader'
_EVALUATOR = r'(val|test)_evaluator'
_SIZES = r'(scale|scales|crop_size|img_scale|size)'
#: (what a line of ``cfg.toy_changes`` says, the keys that this accounts for). A key pattern may
#: name a group ``named``: the line must then name that value too (e.g. the transform it drops).
CLAIMS: List[Tuple[str, str]] = [
    (r'^input sizes x[\d.]+$', rf'.*\.{_SIZES}(\[\d+\])*'),
    (r'^toy data \S+: data roots, annotation files, evaluators$',
     rf'{_LOADER}\.dataset\.(type|data_root|ann_file|split|data_prefix\..*)|{_EVALUATOR}.*'),
    (r'^data loaded in the main process \(0 workers\)$',
     rf'{_LOADER}\.(num_workers|persistent_workers|pin_memory)'),
    (r'\b\d+ toy classes\b', r'model\.(.*\.)?num_classes|(model\.)?data_preprocessor\.num_classes|'
     rf'{_LOADER}\.dataset\.metainfo\.classes.*|{_EVALUATOR}.*\.topk.*'),
    (r'\bbatch \d+\b', r'train_dataloader\.batch_size'),
    (r'^evaluation batch \d+$', r'(val|test)_dataloader\.batch_size'),
    (r'\blr [\d.e-]+\b', r'optim_wrapper\.optimizer\.lr'),
    (r'\b\d+ (epochs|iterations)\b', r'train_cfg\..*|param_scheduler.*|'
     r'default_hooks\.checkpoint\.(by_epoch|interval)|log_processor\.by_epoch'),
    (r'\b\d+ sampled RoIs per stage\b', r'model\.train_cfg\.rcnn(\[\d+\])?\.sampler\..*'),
    (r'\b\d+ anchors per image\b', r'model\.train_cfg\.rpn\.sampler\.num'),
    (r'\b\d+ proposals\b',
     r'model\.(train_cfg\.rpn_proposal|test_cfg\.rpn)\.(nms_pre|max_per_img)'),
    (r'^without ', r'model\.train_cfg\.augments\[(?P<named>\w+)#\d+\].*'),
    (r'^without ', r'train_dataloader\.dataset\.pipeline\[(?P<named>\w+)#\d+\].*'),
    (r'^pad_small_map=True\b', r'model\.backbone\.pad_small_map'),
    (r'^backbone (initialised from \S+|randomly initialised)', r'model\.backbone\.init_cfg.*'),
    (r'^logged every \d+ iterations\b', r'default_hooks\.logger\.interval|log_processor\..*'),
    (r'\bvisualisation without drawing\b', r'default_hooks\.visualization\..*'),
    (r'\bautomatic lr scaling off\b', r'auto_scale_lr\..*'),
]


def flatten(node: Any, path: str = '') -> Dict[str, Any]:
    """``{'a.b[0].c': value}`` for every leaf (an empty dict or list is no value); a list of
    transforms / schedulers / evaluators (dicts with a ``type``) is keyed by type and occurrence
    (``pipeline[Resize#0]``), so that dropping one of them shows as that one's keys, not as a
    shift of all the following ones."""
    if isinstance(node, dict):
        out: Dict[str, Any] = {}
        for key, value in node.items():
            out.update(flatten(value, f'{path}.{key}' if path else str(key)))
        return out
    if isinstance(node, (list, tuple)):
        typed = bool(node) and all(
            isinstance(v, dict) and isinstance(v.get('type'), str) for v in node)
        seen: Counter = Counter()
        out = {}
        for i, value in enumerate(node):
            if typed:
                index = f'{value["type"]}#{seen[value["type"]]}'
                seen[value['type']] += 1
            else:
                index = str(i)
            out.update(flatten(value, f'{path}[{index}]'))
        return out
    return {path: node}


def differing_keys(full: dict, toy: dict) -> List[str]:
    """The flattened keys whose values differ (or that only one side has). A ``_scope_`` equal to
    the config's ``default_scope`` means what no ``_scope_`` means."""
    scope = full.get('default_scope')

    def normalised(cfg: dict) -> Dict[str, Any]:
        flat = flatten({k: v for k, v in cfg.items() if k not in ('toy', 'toy_changes')})
        return {k: v for k, v in flat.items() if not (k.split('.')[-1] == '_scope_' and v == scope)}

    a, b = normalised(full), normalised(toy)
    missing = object()
    return sorted(k for k in set(a) | set(b) if a.get(k, missing) != b.get(k, missing))


def claimed_by(key: str, lines: List[str]) -> List[str]:
    """The lines of ``toy_changes`` that account for ``key``."""
    found = []
    for line_pattern, key_pattern in CLAIMS:
        match = re.fullmatch(key_pattern, key)
        if not match:
            continue
        named = match.groupdict().get('named')
        found += [
            line for line in lines
            if re.search(line_pattern, line) and (named is None or named in line)
        ]
    return found


@pytest.fixture(scope='module')
def resolved(toy_data) -> Dict[str, Tuple[dict, dict, List[str]]]:
    """Per task: the full-scale config, its toy config (as ``tools/train.py --toy`` makes it,
    with a toy ImageNet checkpoint for the dense tasks), both as plain dicts, and the toy
    config's ``toy_changes``."""
    out = {}
    for task, (path, sizes) in CASES.items():
        full = load_config(str(ROOT / path))
        toy = toy_config(
            copy.deepcopy(full),
            task,
            data_root=str(toy_data(task, **sizes)),
            pretrained=None if task == 'imagenet' else 'work_dirs/toy/in1k/epoch_3.pth')
        out[task] = (full.to_dict(), toy.to_dict(), list(toy.toy_changes))
    return out


@pytest.mark.parametrize('task', list(CASES))
def test_toy_config_changes_only_what_toy_changes_lists(task, resolved):
    full, toy, lines = resolved[task]
    keys = differing_keys(full, toy)
    assert keys, 'the toy config equals the full-scale one'
    unlisted = [k for k in keys if not claimed_by(k, lines)]
    assert not unlisted, (f'{len(unlisted)} changed keys that no line of toy_changes names: '
                          f'{unlisted[:12]}; toy_changes: {lines}')
    unused = [line for line in lines if not any(line in claimed_by(k, lines) for k in keys)]
    assert not unused, f'lines of toy_changes that change nothing: {unused}'
    assert toy['toy'] is True and 'toy' not in full


def test_the_comparison_sees_a_change_that_is_not_listed(resolved):
    """The check above is not vacuous: a change the adapter would not list is found."""
    full, toy, lines = copy.deepcopy(resolved['coco'])
    toy['optim_wrapper']['optimizer']['weight_decay'] = 0.5
    toy['train_dataloader']['dataset']['pipeline'].pop(-2)  # a transform dropped
    unlisted = [k for k in differing_keys(full, toy) if not claimed_by(k, lines)]
    assert 'optim_wrapper.optimizer.weight_decay' in unlisted
    assert any(k.startswith('train_dataloader.dataset.pipeline[') for k in unlisted), unlisted
