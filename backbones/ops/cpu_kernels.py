"""The compiled CPU kernels of I-Dynamic (``csrc/idynamic_cpu.cpp``), built on first use.

PyTorch's JIT extension builder compiles the C++ file once per machine and source version (10-60 s
on two cores; the install's stack check does it ahead of time) into ``$TORCH_EXTENSIONS_DIR``
(default ``~/.cache/torch_extensions``), for this CPU's instruction sets (``-march=native``),
and registers the ops ``torch.ops.demystify_localvit.*``. Where it
cannot be built (no C++ compiler, ``DEMYSTIFY_NO_CPP=1``), :func:`available` is False, the
reason is in :func:`unavailable_reason`, and the 'auto' implementation falls back to the
PyTorch-only one.
"""
import functools
import hashlib
import logging
import os
import platform
import shutil
import sys
from pathlib import Path
from typing import Optional, Tuple

import torch

SOURCE = Path(__file__).parent / 'csrc' / 'idynamic_cpu.cpp'
ENV_DISABLE = 'DEMYSTIFY_NO_CPP'
_FLAGS = ['-O3', '-march=native', '-fopenmp']
#: Rows of x per work item / tile; 0: the kernels' own choice (tests set small values to cover
#: many tiles on small maps).
TILE_ROWS = 0


def _cpu_tag() -> str:
    """A short hash of this CPU's instruction sets: ``-march=native`` code runs only where they
    are all present, so the build is kept per set (a home directory shared by the mixed nodes of
    a cluster would otherwise hand one node's build to another)."""
    try:
        with open('/proc/cpuinfo') as info:
            flags = next((line for line in info if line.startswith('flags')), '')
    except OSError:
        flags = ''
    flags = flags or platform.processor() or platform.machine()
    return hashlib.sha1(flags.encode()).hexdigest()[:8]


def _find_ninja() -> None:
    """The builder runs ``ninja`` from PATH; the one the project installs (the PyPI package, in
    the virtual environment's ``bin``) is not on it unless the environment is activated."""
    if shutil.which('ninja'):
        return
    try:
        import ninja
        folder = ninja.BIN_DIR
    except (ImportError, AttributeError):
        folder = os.path.dirname(sys.executable)
    os.environ['PATH'] = folder + os.pathsep + os.environ.get('PATH', '')


@functools.lru_cache(maxsize=1)
def _build() -> Optional[str]:
    """Build and load the extension; None, or why it could not be built."""
    if os.environ.get(ENV_DISABLE) == '1':
        return f'{ENV_DISABLE}=1'
    # the builder warns on import that CUDA is absent; it is not needed here
    logging.getLogger('torch.utils.cpp_extension').setLevel(logging.ERROR)
    _find_ninja()
    try:
        from torch.utils.cpp_extension import load
        load(
            name=f'demystify_idynamic_cpu_{_cpu_tag()}',
            sources=[str(SOURCE)],
            extra_cflags=_FLAGS,
            extra_ldflags=['-fopenmp'],
            is_python_module=False,
            verbose=False)
    except Exception as exc:  # a missing compiler, a failed build: any of them means "not here"
        last_line = (str(exc).strip().splitlines() or [''])[-1]
        return f'{type(exc).__name__}: {last_line}'
    return None


def available() -> bool:
    """Whether the compiled kernels can run here (builds them on the first call)."""
    return _build() is None


def unavailable_reason() -> Optional[str]:
    """Why the kernels cannot run here, or None when they can."""
    return _build()


def forward(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """I-Dynamic forward: x (B, C, H, W), kernels (B, G, K, K, H, W), contiguous, float32/64."""
    return torch.ops.demystify_localvit.idynamic_forward(x, kernels, TILE_ROWS)


def backward(grad_y: torch.Tensor, x: torch.Tensor, kernels: torch.Tensor, need_x: bool,
             need_kernels: bool) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
    """The gradients of x and of the kernels (None where not needed)."""
    gx, gk = torch.ops.demystify_localvit.idynamic_backward(grad_y, x, kernels, need_x,
                                                            need_kernels, TILE_ROWS)
    return (gx if need_x else None, gk if need_kernels else None)


def generator_rows(gen_weight: torch.Tensor,
                   gen_bias: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
    """The generator's weight (G, K, K, R) and bias (G, K, K) by kernel row: (K, G*K, R) and
    (K, G*K), the operands of the fused kernels (zeros for an absent bias)."""
    g, k, _, r = gen_weight.shape
    wrows = gen_weight.permute(1, 0, 2, 3).reshape(k, g * k, r).contiguous()
    if gen_bias is None:
        return wrows, wrows.new_zeros(k, g * k)
    return wrows, gen_bias.permute(1, 0, 2).reshape(k, g * k).contiguous()


def fused_forward(x: torch.Tensor, hidden: torch.Tensor, wrows: torch.Tensor,
                  brows: torch.Tensor) -> torch.Tensor:
    """I-Dynamic with the kernels of a 1x1 conv of ``hidden`` (see :func:`generator_rows`),
    never stored whole."""
    return torch.ops.demystify_localvit.idynamic_fused_forward(x, hidden, wrows, brows, TILE_ROWS)


def fused_backward(grad_y: torch.Tensor, x: torch.Tensor, hidden: torch.Tensor, wrows: torch.Tensor,
                   brows: torch.Tensor, need_x: bool, need_hidden: bool,
                   need_weights: bool) -> Tuple[Optional[torch.Tensor], ...]:
    """The gradients of x, hidden, wrows and brows (None where not needed)."""
    gx, gh, gw, gb = torch.ops.demystify_localvit.idynamic_fused_backward(
        grad_y, x, hidden, wrows, brows, need_x, need_hidden, need_weights, TILE_ROWS)
    return (gx if need_x else None, gh if need_hidden else None, gw if need_weights else None,
            gb if need_weights else None)
