"""Checks of the backbone's structure: it builds in every toolbox, its generated configs are up
to date, its outputs have the channels and strides the necks and heads expect, for any input
size the dense tasks feed."""
import math
from typing import TYPE_CHECKING, List, Sequence, Tuple

import torch
import torch.nn as nn

from ..errors import describe, first_line
from ..tasks import TASKS
from .common import (CLS_INPUT, CLS_TASK, DENSE_INPUTS, STRIDE_INPUT, STRIDES, ContractViolation,
                     examples, hw, out_indices)

if TYPE_CHECKING:
    from .checker import BackboneChecker


def _and(names: Sequence[str]) -> str:
    """``'a, b and c'``."""
    names = list(names)
    return ' and '.join([', '.join(names[:-1]), names[-1]]) if len(names) > 1 else ''.join(names)


def check_build(checker: 'BackboneChecker') -> str:
    """The backbone builds from the ``MODELS`` of every task's toolbox and ``init_weights()``
    runs; it declares ``num_features`` for the four stages."""
    cfg = checker.backbone_cfg
    for name, task in TASKS.items():
        try:
            backbone = checker.build(cfg, name)
        except KeyError as exc:
            raise ContractViolation(
                f'{task.scope} MODELS cannot build {cfg["type"]!r}: {first_line(exc)} (register '
                'it with @backbones.registry.MODELS.register_module(), mmengine\'s root '
                'registry, not one toolbox\'s)')
        backbone.init_weights()
    features = getattr(backbone, 'num_features', None)
    if features is None or len(features) < len(STRIDES):
        raise ContractViolation(
            f'{type(backbone).__name__} declares num_features={features!r}: the configs '
            f'read the channels of stage i from num_features[i], for the {len(STRIDES)} '
            'stages')
    params = sum(p.numel() for p in backbone.parameters())
    scopes = _and([t.scope for t in TASKS.values()])
    return (f'{cfg["type"]} ({params / 1e6:.2f}M params) builds from {scopes} MODELS, '
            f'init_weights() runs; num_features={list(features)}')


def check_configs(checker: 'BackboneChecker') -> str:
    """The configs under the checker's ``config_root`` are those the generator writes now, and
    the dense-task ones initialise the backbone from the ImageNet checkpoint."""
    missing, stale = [], []
    for key in checker.settings:
        path, text = checker.expected_config(key)
        if not path.is_file():
            missing.append(str(path))
        elif path.read_text() != text:
            stale.append(str(path))
    if missing or stale:
        imports = ''.join(f' --import {m}' for m in checker.imports)
        what = '; '.join(f'{n} {w}: {examples(p, 2)}'
                         for n, w, p in ((len(missing), 'missing', missing),
                                         (len(stale), 'out of date', stale)) if p)
        raise ContractViolation(f'{what} (write them with: python tools/make_configs.py '
                                f'{checker.model}{imports})')
    for key in checker.dense_keys():
        init = checker.config(key).model.backbone.get('init_cfg') or {}
        if init.get('type') != 'Pretrained' or init.get('prefix') != 'backbone.':
            raise ContractViolation(
                f'the {key} config initialises the backbone with {init!r}, not with '
                'Pretrained(prefix="backbone.") from the ImageNet checkpoint')
    return f'{len(checker.settings)} configs under {checker.config_root} are up to date'


def check_outputs(checker: 'BackboneChecker') -> str:
    """Count, channels and strides of the outputs; the channels the configs' heads read."""
    h, w = STRIDE_INPUT
    dense = checker.dense_backbone().eval()
    with torch.no_grad():
        outs = dense(torch.randn(1, 3, h, w))
    channels = check_maps(dense, outs, (h, w), exact=True)
    if len(outs) != len(STRIDES):
        raise ContractViolation(f'the dense-task backbone has {len(outs)} outputs; the necks need '
                                f'{len(STRIDES)} (out_indices=(0, 1, 2, 3), strides {STRIDES})')
    classifier = checker.classification_backbone().eval()
    with torch.no_grad():
        cls_outs = classifier(torch.randn(1, 3, *CLS_INPUT))
    cls_channels = check_maps(classifier, cls_outs, CLS_INPUT, exact=True)
    heads = {CLS_TASK: [checker.config(CLS_TASK).model.head.in_channels]}
    for key in checker.dense_keys():
        model = checker.config(key).model
        heads[key] = list(model.neck.in_channels) if 'neck' in model else \
            list(model.decode_head.in_channels)
    for key, read in heads.items():
        have = cls_channels[-1:] if key == CLS_TASK else channels
        if list(read) != list(have):
            raise ContractViolation(f'the {key} config reads {read} channels, the backbone '
                                    f'outputs {have}')
    return (f'{len(outs)} outputs at strides {"/".join(map(str, STRIDES))} with '
            f'{channels} channels = num_features; the classifier outputs {cls_channels}; '
            'head/neck channels of the configs match')


def check_maps(backbone: nn.Module, outs, size: Tuple[int, int], exact: bool) -> List[int]:
    """Check the outputs of a backbone for one input.

    Args:
        backbone (nn.Module): the backbone (its ``out_indices`` and ``num_features``).
        outs: what its forward returned.
        size (tuple[int, int]): (H, W) of the input.
        exact (bool): the sides are multiples of the strides: output sizes must be exact;
            else they may be rounded either way.

    Returns:
        list[int]: the channels of the outputs.

    Raises:
        ContractViolation: not a tuple of maps, or a map of the wrong channels or size.
    """
    if not isinstance(outs, (tuple, list)) or not all(
            isinstance(o, torch.Tensor) and o.dim() == 4 for o in outs):
        raise ContractViolation(f'forward returns {type(outs).__name__}, not a tuple of '
                                '(B, C, H, W) maps')
    indices = out_indices(backbone, len(outs))
    if len(indices) != len(outs):
        raise ContractViolation(f'{len(outs)} outputs for out_indices={tuple(indices)}')
    features = list(getattr(backbone, 'num_features', []))
    h, w = size
    for out, i in zip(outs, indices):
        if i >= len(features) or out.shape[1] != features[i]:
            declared = features[i] if i < len(features) else None
            raise ContractViolation(
                f'output {i} has {out.shape[1]} channels, but num_features[{i}] declares '
                f'{declared} (the configs\' heads and necks read num_features)')
        s = STRIDES[i]
        oh, ow = out.shape[-2:]
        ok_h = oh == h // s if exact else h // s <= oh <= math.ceil(h / s)
        ok_w = ow == w // s if exact else w // s <= ow <= math.ceil(w / s)
        if not (ok_h and ok_w):
            want = f'{h // s}x{w // s}' if exact or (h % s == 0 and w % s == 0) else \
                f'{h // s}..{math.ceil(h / s)} x {w // s}..{math.ceil(w / s)}'
            raise ContractViolation(f'output {i} is {oh}x{ow} for a {h}x{w} input; stride '
                                    f'{s} gives {want}')
    return [int(o.shape[1]) for o in outs]


def check_input_sizes(checker: 'BackboneChecker') -> str:
    """Non-square inputs whose sides are not multiples of 32, as the dense tasks feed."""
    dense = checker.dense_backbone().eval()
    shapes = []
    for h, w in DENSE_INPUTS:
        try:
            with torch.no_grad():
                outs = dense(torch.randn(1, 3, h, w))
        except ContractViolation:
            raise
        except Exception as exc:
            raise ContractViolation(f'fails on a {h}x{w} input: {describe(exc)}')
        check_maps(dense, outs, (h, w), exact=False)
        shapes.append(f'{h}x{w} -> ' + ', '.join(hw(o) for o in outs))
    return '; '.join(shapes)
