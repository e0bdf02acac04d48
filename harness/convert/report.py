"""Tracking every key of a conversion: what was converted, dropped, not mapped or recomputed.

:class:`KeyMapper` applies rule tables to one source state dict; every source key must end up
converted or explicitly skipped, every rule must find its source key, else the conversion fails
naming the key. :class:`ConversionReport` is what the user reads (and the converted
checkpoint's ``meta`` keeps).
"""
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence

import torch

from .common import ConversionError, Rule, Transform, family_title, first_key, linear_rules


@dataclass
class ConversionReport:
    """What a conversion did.

    Args:
        source (str): the source layout, one of ``SOURCES``.
        kind (str): ``'classification'`` or ``'dense'``.
        family (str): the model family, e.g. ``'ddwconv'``.
        model (str): the zoo name converted for.
        backbone_only (bool): whether classifier head / neck were dropped.
        arch (dict): the architecture read from the checkpoint (embed dims, depths, ...).
        converted (int): the number of converted tensors.
        dropped (dict): source key -> why it is left out although it could be converted.
        unmapped (dict): source key -> why it cannot be converted.
        recomputed (dict): result key -> how it was made without a source tensor.
        backbone_overrides (dict): backbone settings the result needs beyond the zoo config
            (dense checkpoints).
        neck_cfg (dict, optional): config of a kept FPN neck (dense checkpoints).
        notes (list[str]): further lines for the user.
    """
    source: str
    kind: str
    family: str
    model: str
    backbone_only: bool
    arch: dict = field(default_factory=dict)
    converted: int = 0
    dropped: Dict[str, str] = field(default_factory=dict)
    unmapped: Dict[str, str] = field(default_factory=dict)
    recomputed: Dict[str, str] = field(default_factory=dict)
    backbone_overrides: dict = field(default_factory=dict)
    neck_cfg: Optional[dict] = None
    notes: List[str] = field(default_factory=list)

    def format(self, examples: int = 4) -> str:
        """The report as text: one line for the conversion, then one per group of keys
        (dropped / not mapped / recomputed, by reason) and note.

        Args:
            examples (int): keys shown per group. Defaults to 4.
        """
        arch = ', '.join(f'{k} {v}' for k, v in self.arch.items())
        lines = [
            f'{self.source} {self.kind} checkpoint ({family_title(self.family)}; {arch}) -> '
            f'{self.model}{" (backbone only)" if self.backbone_only else ""}: '
            f'{self.converted} tensors converted'
        ]
        for title, keys in (('dropped', self.dropped), ('not mapped', self.unmapped),
                            ('recomputed', self.recomputed)):
            for reason, group in _group_by_reason(keys).items():
                shown = ', '.join(group[:examples]) + (', ...' if len(group) > examples else '')
                lines.append(f'  {title} {len(group)} key{"s" * (len(group) != 1)} '
                             f'({reason}): {shown}')
        if self.backbone_overrides:
            lines.append(f'  backbone needs: {self.backbone_overrides}')
        if self.neck_cfg:
            lines.append(f'  kept neck: {self.neck_cfg}')
        lines += [f'  note: {n}' for n in self.notes]
        return '\n'.join(lines)

    def summary(self) -> dict:
        """A plain-types copy (for the converted checkpoint's ``meta``), with the number of
        keys per reason instead of the keys."""
        summary = asdict(self)
        for title in ('dropped', 'unmapped', 'recomputed'):
            groups = _group_by_reason(summary[title])
            summary[title] = {reason: len(keys) for reason, keys in groups.items()}
        return summary


def _group_by_reason(keys: Mapping[str, str]) -> Dict[str, List[str]]:
    groups: Dict[str, List[str]] = OrderedDict()
    for key, reason in keys.items():
        groups.setdefault(reason, []).append(key)
    return groups


class KeyMapper:
    """Applies rule tables to one source state dict and tracks every key's fate.

    Args:
        sd (dict): the source state dict.
        report (ConversionReport): receives the skipped and recomputed keys.
    """

    def __init__(self, sd: Dict[str, torch.Tensor], report: ConversionReport) -> None:
        self.sd = sd
        self.report = report
        self.out: Dict[str, torch.Tensor] = OrderedDict()
        self.origin: Dict[str, str] = {}  # result key -> source key
        self.consumed: set = set()
        self.missing: List[str] = []

    def apply(self, rules: Sequence[Rule], src_prefix: str, dst_prefix: str) -> None:
        """Convert the tensors of ``rules`` under the two prefixes; a BN ``num_batches_tracked``
        that the source lacks is set to 0, any other absent source key fails in
        :meth:`finish`."""
        for src, dst, transform in rules:
            src_key, dst_key = src_prefix + src, dst_prefix + dst
            if src_key not in self.sd:
                if src.endswith('num_batches_tracked'):  # harmless: only counts BN updates
                    self.put(dst_key, torch.tensor(0, dtype=torch.long),
                             'BN num_batches_tracked absent: set to 0')
                else:
                    self.missing.append(src_key)
                continue
            self.keep(src_key, dst_key, transform)

    def keep(self, src_key: str, dst_key: str, transform: Transform = None) -> None:
        """Convert one tensor."""
        value = self.sd[src_key]
        self.out[dst_key] = transform(value) if transform is not None else value
        self.origin[dst_key] = src_key
        self.consumed.add(src_key)

    def put(self, dst_key: str, value: torch.Tensor, reason: str) -> None:
        """Add a result tensor made without a source tensor."""
        self.out[dst_key] = value
        self.report.recomputed[dst_key] = reason

    def skip(self, src_key: str, reason: str, mapped: bool = True) -> None:
        """Leave ``src_key`` out of the result: dropped by choice, or not mappable."""
        (self.report.dropped if mapped else self.report.unmapped)[src_key] = reason
        self.consumed.add(src_key)

    def convert_head(self, backbone_only: bool) -> None:
        """The classifier ``head.*`` to mmpretrain's ``head.fc.*``, or dropped."""
        if backbone_only:
            for key in [k for k in self.sd if k.startswith('head.')]:
                self.skip(key, 'classifier head: --backbone-only')
        else:
            self.apply(linear_rules('head', 'head.fc'), '', '')

    def finish(self,
               model: str,
               target_shapes: Optional[Mapping[str,
                                               Sequence[int]]] = None) -> Dict[str, torch.Tensor]:
        """The converted state dict, once every source key is accounted for.

        Args:
            model (str): the zoo name, for messages.
            target_shapes (Mapping, optional): the receiving model's key -> shape; when given
                the result must have exactly these keys and shapes. Defaults to None.
        """
        if self.missing:
            raise ConversionError(f'missing key {first_key(self.missing)} in the checkpoint: '
                                  f'it does not fit {model}')
        extra = [k for k in self.sd if k not in self.consumed]
        if extra:
            raise ConversionError(f'unexpected key {first_key(extra)} in the checkpoint: no '
                                  f'counterpart in {model}')
        self.report.converted = len(self.origin)
        if target_shapes is not None:
            self._check_target(target_shapes, model)
        return self.out

    def _check_target(self, target_shapes: Mapping[str, Sequence[int]], model: str) -> None:
        arch = ', '.join(f'{k} {v}' for k, v in self.report.arch.items())
        produced = [k for k in self.out if k not in target_shapes]
        if produced:
            src = self.origin.get(produced[0], 'recomputed')
            raise ConversionError(f'checkpoint key {src!r} -> {first_key(produced)} has no '
                                  f'counterpart in {model} (checkpoint: {arch})')
        absent = [k for k in target_shapes if k not in self.out]
        if absent:
            raise ConversionError(f'{model} key {first_key(absent)} has no source in the '
                                  f'checkpoint (checkpoint: {arch})')
        for key, value in self.out.items():
            want = tuple(target_shapes[key])
            if tuple(value.shape) != want:
                src = self.origin.get(key, 'recomputed')
                raise ConversionError(f'shape mismatch at checkpoint key {src!r} -> {key!r}: '
                                      f'checkpoint {tuple(value.shape)} vs {model} {want}')
