"""Progress lines for long commands: ``[3/24] counted ... (41 s, ETA 14 min)``."""
import sys
import time
from typing import Optional, TextIO


def format_seconds(seconds: float) -> str:
    """``'45 s'``, ``'3 min 20 s'``, ``'1 h 05 min'``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f'{seconds} s'
    if seconds < 3600:
        return f'{seconds // 60} min {seconds % 60:02d} s'
    return f'{seconds // 3600} h {seconds % 3600 // 60:02d} min'


class Progress:
    """Counts finished steps of a known total and prints one line per step with the elapsed
    time and an ETA from the mean step time so far.

    Args:
        total (int): number of steps.
        stream (file, optional): where to print. Defaults to ``sys.stderr`` (stdout is kept
            for tables and JSON).
    """

    def __init__(self, total: int, stream: Optional[TextIO] = None) -> None:
        self.total = total
        self.done = 0
        self.stream = stream
        self.start = time.monotonic()

    def eta(self) -> Optional[float]:
        if not self.done:
            return None
        return (time.monotonic() - self.start) / self.done * (self.total - self.done)

    def step(self, message: str, clock: bool = True) -> str:
        """Mark one step done and print ``[i/N] message (elapsed, ETA ...)``; without
        ``clock`` (a message that has its own time): ``[i/N] message [ETA ...]``."""
        self.done += 1
        elapsed = time.monotonic() - self.start
        eta = self.eta()
        left = [f'ETA {format_seconds(eta)}'] if eta and self.done < self.total else []
        line = f'[{self.done}/{self.total}] {message}'
        if clock:
            line += f' ({", ".join([format_seconds(elapsed)] + left)})'
        elif left:
            line += f' [{left[0]}]'
        print(line, file=self.stream or sys.stderr, flush=True)
        return line
