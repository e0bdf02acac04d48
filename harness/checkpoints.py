"""Reading checkpoints safely and checking that they fit a model.

Every checkpoint is loaded with ``torch.load(weights_only=True)`` (plus mmengine's allow-list of
:mod:`backbones.compat`): a file that would import code is refused, never executed.
"""
import logging
import os
import os.path as osp
import pickle
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import torch

from .errors import ToolError, first_line


def load_checkpoint_file(path: str) -> Any:
    """The unpickled content of a checkpoint file, loaded as weights only; a missing,
    truncated, corrupt or code-carrying file is a :class:`ToolError` naming the problem."""
    if not osp.isfile(path):
        raise ToolError(f'checkpoint not found: {path}')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r'unsupported (?:global:? )?GLOBAL (\S+)', str(exc), re.IGNORECASE)
        if found:
            raise ToolError(f'checkpoint {path} is refused: loading it would import '
                            f'{found.group(1)} (only weights are loaded from files)')
        detail = re.search(r'WeightsUnpickler error:\s*(.+)', str(exc))
        raise ToolError(f'checkpoint {path} is refused: it is corrupt or not a plain weights '
                        f'file ({detail.group(1).strip() if detail else "unpickling failed"})')
    except Exception as exc:  # torch raises RuntimeError, EOFError, IndexError, ... on bad bytes
        raise ToolError(f'checkpoint {path} is corrupt or truncated: '
                        f'{first_line(exc, 160).split(". ")[0]}')


def load_weights(path: str) -> Dict[str, Any]:
    """The state dict of a checkpoint file (``state_dict`` of an mmengine checkpoint, or the
    whole dict), loaded as in :func:`load_checkpoint_file`."""
    ckpt = load_checkpoint_file(path)
    if not isinstance(ckpt, dict):
        raise ToolError(f'checkpoint {path} holds a {type(ckpt).__name__}, not a dict')
    return ckpt.get('state_dict', ckpt)


@dataclass
class KeyDiff:
    """How a state dict differs from a model's: keys the model has and the state lacks, keys
    the model does not have, and keys of both with another shape."""
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    shapes: List[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.shapes)

    def describe(self,
                 labels: Sequence[str] = ('missing', 'unexpected', 'with another shape'),
                 examples: int = 1) -> str:
        """``'3 keys missing (e.g. a.b); 1 keys unexpected (e.g. c)'``."""
        parts = []
        for label, keys in zip(labels, (self.missing, self.unexpected, self.shapes)):
            if keys:
                shown = ', '.join(keys[:examples])
                parts.append(f'{len(keys)} keys {label} (e.g. {shown})')
        return '; '.join(parts)


def compare_keys(model_state: Mapping[str, Any],
                 state: Mapping[str, Any],
                 ignore_missing: Optional[Callable[[str], bool]] = None) -> KeyDiff:
    """Compare a state dict with a model's ``state_dict()`` (keys and shapes)."""
    ignore = ignore_missing or (lambda key: False)
    return KeyDiff(
        missing=[k for k in model_state if k not in state and not ignore(k)],
        unexpected=[k for k in state if k not in model_state],
        shapes=[
            k for k in model_state if k in state and hasattr(state[k], 'shape')
            and tuple(state[k].shape) != tuple(model_state[k].shape)
        ])


_CKPT_NAME = re.compile(r'^(epoch|iter)_(\d+)\.pth$')


def checkpoint_candidates(work_dir: str) -> List[str]:
    """The checkpoints of a work dir, newest first: the one ``last_checkpoint`` names, then the
    ``epoch_N.pth`` / ``iter_N.pth`` files by decreasing N."""
    out: List[str] = []
    last = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(last):
        with open(last) as f:
            named = f.read().strip()
        if named:
            out.append(named if osp.isabs(named) else osp.join(work_dir, named))
    if osp.isdir(work_dir):
        found = [(int(m.group(2)), osp.join(work_dir, name)) for name in os.listdir(work_dir)
                 for m in [_CKPT_NAME.match(name)] if m]
        out += [p for _, p in sorted(found, reverse=True) if p not in out]
    return out


def newest_loadable_checkpoint(work_dir: str, log: Callable[[str, int], None]) -> Optional[str]:
    """The newest checkpoint of ``work_dir`` that loads (a missing, truncated or corrupt one is
    skipped with a log line); None where the work dir has none. A work dir none of whose
    checkpoints loads is a :class:`ToolError`: training from the start would overwrite them."""
    problems = []
    for path in checkpoint_candidates(work_dir):
        try:
            load_weights(path)
        except ToolError as exc:
            log(f'auto-resume: skipping {exc}', logging.WARNING)
            problems.append(str(exc))
            continue
        return path
    if problems:
        raise ToolError(f'none of the {len(problems)} checkpoints of {work_dir} loads (newest: '
                        f'{problems[0]}); move them away to train from the start')
    return None
