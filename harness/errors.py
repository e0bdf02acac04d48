"""One error type and one ``main`` wrapper for every tool.

Bad input (a missing file, a typo in a config key, a checkpoint of another model) raises
:class:`ToolError`; :func:`run_tool` turns it into one ``PROG: error: ...`` line and exit code
2, before anything on disk was changed. A crash keeps its traceback.
"""
import os
import sys
import traceback
from pathlib import Path
from typing import Callable, NoReturn, Optional

#: set to 1 to get tracebacks for input errors too
DEBUG_ENV = 'DEMYSTIFY_DEBUG'


class ToolError(Exception):
    """Bad input from the user: reported as one line, exit code 2."""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (its type name if it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


def describe(exc: BaseException) -> str:
    """One line for an unexpected exception: type, message, and where it was raised."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f' ({Path(frames[-1].filename).name}:{frames[-1].lineno})' if frames else ''
    return f'{type(exc).__name__}: {first_line(exc)}{where}'


def tool_main(main: Callable[[], Optional[int]], prog: Optional[str] = None) -> int:
    """Run a tool's ``main``: :class:`ToolError` becomes one ``error:`` line and exit code 2,
    Ctrl-C exit code 130; returns ``main``'s exit code (0 for None)."""
    prog = prog or Path(sys.argv[0]).name
    try:
        return int(main() or 0)
    except ToolError as exc:
        if os.environ.get(DEBUG_ENV):
            traceback.print_exc()
        print(f'{prog}: error: {exc}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f'{prog}: interrupted', file=sys.stderr)
        return 130


def run_tool(main: Callable[[], Optional[int]]) -> NoReturn:
    """``sys.exit(tool_main(main))``: the last line of every tool."""
    sys.exit(tool_main(main))
