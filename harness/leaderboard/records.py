"""Reading the leaderboard's inputs: result records and benchmark records.

Result records (``result.json`` of training, ``test_result.json`` of testing) follow
:class:`backbones.engine.ResultRecord`; benchmark records (the ``records`` of what
``tools/benchmark.py --models`` / ``--tasks`` write) follow :class:`BenchmarkRecord`, defined
here for both the writer (:func:`benchmark_record`) and the reader (:func:`load_benchmarks`). A
file or entry that does not follow its schema, or has another schema version, is skipped with a
warning naming it.
"""
import json
import os
import sys
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from backbones.engine.result_record import (RecordError, ResultRecord, check_schema, number_field,
                                            string_field)
from ..tasks import TASKS
from .catalog import task_of

#: bump when a benchmark field changes meaning or a required field is added
BENCHMARK_SCHEMA_VERSION = 2
RESULT_FILES = ('result.json', 'test_result.json')
_OLDEST = datetime.min.replace(tzinfo=timezone.utc)


@dataclass
class Record(ResultRecord):
    """A validated result record and the file it was read from.

    Args:
        path (Path): the ``result.json`` / ``test_result.json`` it came from.
        The other arguments are those of :class:`backbones.engine.ResultRecord`.
    """
    path: Path = Path()

    @property
    def recency(self) -> tuple:
        """Sort key: date (undated records first), then path."""
        return (self.datetime or _OLDEST, str(self.path))


def warn(message: str, warnings: List[str]) -> None:
    """Print ``warning: message`` on stderr and keep it for the board's list of skipped
    inputs."""
    print(f'warning: {message}', file=sys.stderr)
    warnings.append(message)


def skip(path: Path, reason: str, warnings: List[str]) -> None:
    """Warn that ``path`` was skipped and why."""
    warn(f'skipped {path}: {reason}', warnings)


def walk(root: Path, accept: Callable[[str], bool]) -> List[Path]:
    """Files under ``root`` whose name ``accept`` takes, in a stable order; symlinked folders
    are not followed."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        found.extend(Path(dirpath) / f for f in sorted(filenames) if accept(f))
    return found


def read_json(path: Path, warnings: List[str]) -> Any:
    """The parsed JSON of ``path``; None (and a warning) where it cannot be read or parsed."""
    try:
        return json.loads(path.read_text(encoding='utf-8'))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        skip(path, f'cannot read JSON ({exc})', warnings)
        return None


def parse_record(data: Any, path: Path) -> Record:
    """Validate one result record against :class:`ResultRecord` and the task table.

    Args:
        data (Any): the parsed JSON.
        path (Path): where it came from.

    Returns:
        Record: the record.

    Raises:
        RecordError: saying what is wrong (not an object, another schema version, a missing
            key, a task that is not in :data:`harness.tasks.TASKS`, ...).
    """
    result = ResultRecord.from_dict(data)
    if result.task not in TASKS:
        raise RecordError(f'unknown task {result.task!r}')
    owner = task_of(result.template)
    if owner is not None and owner != result.task:
        raise RecordError(f'template {result.template!r} does not belong to task '
                          f'{result.task!r}')
    return Record(**{f.name: getattr(result, f.name) for f in fields(ResultRecord)}, path=path)


def load_records(work_dirs: Path, warnings: List[str]) -> List[Record]:
    """Every valid result record under ``work_dirs``.

    Training records (``result.json``) and ``--tta`` test records (``test_result.json`` with
    ``tta: true``) are kept; other test records are read (a broken one is reported) but not
    used. Broken records are reported and skipped.

    Args:
        work_dirs (Path): searched recursively.
        warnings (list[str]): collects a message per skipped file.

    Returns:
        list[Record]: in path order.
    """
    records = []
    for path in walk(work_dirs, lambda f: f in RESULT_FILES):
        data = read_json(path, warnings)
        if data is None:
            continue
        try:
            record = parse_record(data, path)
        except RecordError as exc:
            skip(path, str(exc), warnings)
            continue
        if path.name == 'result.json' or record.tta:
            records.append(record)
    return records


@dataclass
class BenchmarkRecord:
    """One measurement of ``tools/benchmark.py --models`` (a backbone alone) or ``--tasks``
    (a whole task model).

    Args:
        model (str): zoo name.
        mode (str): ``'inference'`` or ``'train'`` (forward + backward).
        batch_size (int): images per step.
        device (str): ``'cuda'``, ``'cpu'``, ...
        images_per_s (float): throughput.
        threads (int, optional): torch intra-op threads.
        dtype (str): autocast dtype (``'float32'``: none). Defaults to ``''``.
        latency_ms (float, optional): time of one step.
        peak_mem_mb (float, optional): peak memory of one step.
        task (str, optional): the task (a key of :data:`harness.tasks.TASKS`) whose table
            setting's whole model was measured; None: the backbone alone.
        input_hw (list[int], optional): [H, W] of the input images.
        schema (int): :data:`BENCHMARK_SCHEMA_VERSION` of the writer.
    """
    model: str
    mode: str
    batch_size: int
    device: str
    images_per_s: float
    threads: Optional[int] = None
    dtype: str = ''
    latency_ms: Optional[float] = None
    peak_mem_mb: Optional[float] = None
    task: Optional[str] = None
    input_hw: Optional[List[int]] = None
    schema: int = BENCHMARK_SCHEMA_VERSION

    @property
    def kind(self) -> str:
        """``'CPU'`` or ``'GPU'`` (any other device)."""
        return 'CPU' if self.device.lower().startswith('cpu') else 'GPU'

    def to_dict(self) -> Dict[str, Any]:
        """The JSON object (with ``schema``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> 'BenchmarkRecord':
        """Validate one parsed JSON entry; raises :class:`RecordError` saying what is wrong."""
        check_schema(data, BENCHMARK_SCHEMA_VERSION, 're-run tools/benchmark.py')
        for key in ('model', 'mode', 'device'):
            string_field(data, key)
        for key in ('batch_size', 'threads'):
            value = data.get(key)
            if value is None and key == 'threads':
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise RecordError(f'"{key}" is {value!r}, expected an integer')
        number_field(data.get('images_per_s'), '"images_per_s"', optional=False)
        for key in ('latency_ms', 'peak_mem_mb'):
            number_field(data.get(key), f'"{key}"')
        task = string_field(data, 'task', optional=True)
        if task is not None and task not in TASKS:
            raise RecordError(f'unknown task {task!r}')
        hw = data.get('input_hw')
        if hw is not None and not (isinstance(hw, list) and len(hw) == 2 and all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in hw)):
            raise RecordError(f'"input_hw" is {hw!r}, expected [H, W]')
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values['dtype'] = str(values.get('dtype') or '')
        return cls(**values)


def benchmark_record(model: str,
                     mode: str,
                     batch_size: int,
                     device: str,
                     images_per_s: float,
                     threads: Optional[int] = None,
                     dtype: str = '',
                     latency_ms: Optional[float] = None,
                     peak_mem_mb: Optional[float] = None,
                     task: Optional[str] = None,
                     input_hw: Optional[Sequence[int]] = None) -> Dict[str, Any]:
    """The JSON object of one measurement, as ``tools/benchmark.py`` writes it (see
    :class:`BenchmarkRecord` for the arguments); validated, with the schema version.

    Raises:
        RecordError: if a value does not follow the schema.
    """
    return BenchmarkRecord.from_dict(
        BenchmarkRecord(model, mode, batch_size, device, images_per_s, threads, dtype, latency_ms,
                        peak_mem_mb, task,
                        None if input_hw is None else list(input_hw)).to_dict()).to_dict()


def load_benchmarks(work_dirs: Path, warnings: List[str]) -> List[BenchmarkRecord]:
    """Inference measurements from ``<work_dirs>/benchmark/**/*.json``.

    Benchmark records are read from files holding a list of them or an object with such a list
    under ``records`` (``benchmark.py --models`` / ``--tasks`` reports), oldest file first, and
    a later file overrides the same measurement (model, task, device, batch size, dtype,
    threads, input size); other JSON (e.g. ``benchmark.py --ops`` reports) is ignored; an
    unreadable file or an entry that does not follow :class:`BenchmarkRecord` is reported and
    skipped.

    Args:
        work_dirs (Path): the work-dirs tree.
        warnings (list[str]): collects a message per skipped file or entry.

    Returns:
        list[BenchmarkRecord]: the inference measurements.
    """
    root = work_dirs / 'benchmark'
    if not root.is_dir():
        return []
    paths = sorted(walk(root, lambda f: f.endswith('.json')), key=lambda p: p.stat().st_mtime)
    found: Dict[tuple, BenchmarkRecord] = {}
    for path in paths:
        data = read_json(path, warnings)
        if isinstance(data, dict):
            data = data.get('records')
        if not isinstance(data, list):
            continue
        for i, item in enumerate(data):
            try:
                bench = BenchmarkRecord.from_dict(item)
            except RecordError as exc:
                skip(path, f'benchmark entry {i}: {exc}', warnings)
                continue
            if bench.mode == 'inference':
                key = (bench.model, bench.task, bench.kind, bench.device, bench.batch_size,
                       bench.dtype, bench.threads, tuple(bench.input_hw or ()))
                found[key] = bench
    return list(found.values())
