"""What the ops share: choosing an implementation, and quiet shape logic under tracing."""
import contextlib
import os
import warnings
from typing import Iterator, Sequence

import torch


def requested_impl(op: str, impl: str, impls: Sequence[str], env_var: str) -> str:
    """``impl`` checked against ``impls``; ``'auto'`` is replaced by the value of the
    environment variable ``env_var`` when that is set (and checked too)."""
    if impl not in impls:
        raise ValueError(f'{op}: impl must be one of {tuple(impls)}, got {impl!r}')
    if impl == 'auto':
        impl = os.environ.get(env_var, '') or 'auto'
        if impl not in impls:
            raise ValueError(f'{env_var}={impl!r} is not one of {tuple(impls)}')
    return impl


@contextlib.contextmanager
def quiet_if_tracing() -> Iterator[None]:
    """Silence TracerWarnings of shape logic: under torch.jit.trace sizes are traced values, but
    the checks and the block/offset plans made from them are meant to be constants of the trace."""
    if not torch.jit.is_tracing():
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        yield
