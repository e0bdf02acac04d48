"""What every check shares: its result, the exception that fails it, and the inputs it feeds."""
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn

from ..tasks import TASKS

#: the task whose classifier's weights initialise the dense-task backbones (its table setting
#: has the same key)
CLS_TASK = 'imagenet'
#: stride of each of the four outputs
STRIDES = (4, 8, 16, 32)
#: (H, W) inputs of the shape checks. The classifier gets ImageNet's 224x224 (Swin's, for one,
#: refuses maps smaller than its window in the classification setting); the dense backbone a
#: multiple of 32 (strides must be exact), then sizes the dense tasks feed at toy scale (a
#: 1333x800 COCO image, a 512x512 ADE20K crop, an odd one)
CLS_INPUT: Tuple[int, int] = TASKS[CLS_TASK].input_hw
STRIDE_INPUT = (96, 128)
DENSE_INPUTS = ((200, 333), (128, 128), (75, 119))


class ContractViolation(Exception):
    """The backbone breaks the contract; the message says how."""


@dataclass
class CheckResult:
    """The outcome of one check.

    Args:
        name (str): the check, e.g. ``'outputs'`` or ``'toy_step[ade20k]'``.
        status (str): ``'pass'``, ``'fail'`` or ``'skip'``.
        detail (str): what was verified, or why it failed or was skipped.
        seconds (float): how long it took. Defaults to 0.
    """
    name: str
    status: str
    detail: str
    seconds: float = 0.

    @property
    def failed(self) -> bool:
        return self.status == 'fail'

    def line(self) -> str:
        """``'PASS  outputs   4 outputs at strides ... (1.0s)'``."""
        return f'{self.status.upper():<4}  {self.name:<24} {self.detail} ({self.seconds:.1f}s)'


def examples(names: Sequence[str], n: int = 4) -> str:
    """The first ``n`` of ``names``, and how many there are in all if more."""
    names = list(names)
    return ', '.join(names[:n]) + (f', ... ({len(names)} in all)' if len(names) > n else '')


def hw(x: torch.Tensor) -> str:
    """``'HxW'`` of a map."""
    return 'x'.join(str(s) for s in x.shape[-2:])


def out_indices(backbone: nn.Module, n: int) -> List[int]:
    """The stage of each of the ``n`` outputs of ``backbone`` (its ``out_indices``; the last
    ``n`` stages if it has none)."""
    indices = getattr(backbone, 'out_indices', None)
    return list(indices) if indices is not None else list(range(len(STRIDES) - n, len(STRIDES)))
