"""The result record: the schema that ``ResultRecordHook`` writes and the leaderboard reads.

One JSON object per run (``result.json`` after training, ``test_result.json`` after testing).
Writer and reader share :class:`ResultRecord`; a record of another ``schema`` version is refused
by the reader with a message naming both versions.
"""
import math
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, Dict, Optional

#: bump when a field changes meaning or a required field is added
SCHEMA_VERSION = 2


class RecordError(ValueError):
    """A record that does not follow the schema (the message says what is wrong)."""


@dataclass
class ResultRecord:
    """What one run measured, and what is needed to compare it with others.

    Args:
        model (str): zoo name, e.g. ``'idynamic_t'``.
        task (str): the dataset family: ``'imagenet'``, ``'coco'``, ``'ade20k'``.
        template (str): the task setting (config template) key, e.g. ``'coco_cascade'``.
        metrics (dict): metric name (of the task table, in percent) -> value.
        toy (bool): trained / tested on the built-in toy data.
        config (str, optional): the config file.
        config_hash (str, optional): sha256 of the resolved config text.
        params_m (float, optional): params (M) of the task model in its full-scale setting.
        gflops (float, optional): FLOPs (G) in the full-scale setting, 1 MAC = 1 FLOP.
        raw_metrics (dict): the toolbox's metric names and values, unchanged.
        git_commit (str, optional): commit of the code that ran.
        world_size (int, optional): number of processes.
        seed (int, optional): the run's random seed.
        date (str, optional): ISO 8601 end time.
        work_dir (str, optional): where the run wrote its outputs.
        checkpoint (str, optional): the last checkpoint (train) or the evaluated one (test).
        tta (bool): a test-time-augmentation test run.
        schema (int): :data:`SCHEMA_VERSION` of the writer.
    """
    model: str
    task: str
    template: str
    metrics: Dict[str, float]
    toy: bool
    config: Optional[str] = None
    config_hash: Optional[str] = None
    params_m: Optional[float] = None
    gflops: Optional[float] = None
    raw_metrics: Dict[str, float] = field(default_factory=dict)
    git_commit: Optional[str] = None
    world_size: Optional[int] = None
    seed: Optional[int] = None
    date: Optional[str] = None
    work_dir: Optional[str] = None
    checkpoint: Optional[str] = None
    tta: bool = False
    schema: int = SCHEMA_VERSION

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @property
    def datetime(self) -> Optional[datetime]:
        if self.date is None:
            return None
        date = datetime.fromisoformat(self.date)
        return date if date.tzinfo else date.replace(tzinfo=timezone.utc)

    @classmethod
    def from_dict(cls, data: Any) -> 'ResultRecord':
        """Validate a parsed JSON record; raises :class:`RecordError` saying what is wrong."""
        check_schema(data, SCHEMA_VERSION, 're-run the test to rewrite it')
        missing = [f.name for f in fields(cls) if f.name in _REQUIRED and f.name not in data]
        if missing:
            raise RecordError(f'missing keys: {", ".join(missing)}')
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for key in ('model', 'task', 'template'):
            string_field(values, key)
        for key in ('config', 'config_hash', 'git_commit', 'date', 'work_dir', 'checkpoint'):
            string_field(values, key, optional=True)
        for key in ('toy', 'tta'):
            if not isinstance(values.get(key, False), bool):
                raise RecordError(f'"{key}" is {values[key]!r}, expected true/false')
        for key in ('seed', 'world_size'):
            value = values.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise RecordError(f'"{key}" is {value!r}, expected an integer')
        for key in ('params_m', 'gflops'):
            values[key] = number_field(values.get(key), f'"{key}"')
        for key in ('metrics', 'raw_metrics'):
            if not isinstance(values.get(key, {}), dict):
                raise RecordError(f'"{key}" is not an object')
            values[key] = {
                str(k): number_field(v, f'metric {k!r}', optional=False)
                for k, v in values.get(key, {}).items()
            }
        record = cls(**values)
        try:
            record.datetime
        except ValueError as exc:
            raise RecordError(f'"date" is {record.date!r}, expected ISO 8601') from exc
        return record


_REQUIRED = ('model', 'task', 'template', 'metrics', 'toy')


def check_schema(data: Any, version: int, hint: str) -> None:
    """``data`` must be a JSON object written with schema ``version`` (``hint``: how to get
    a record of this version)."""
    if not isinstance(data, dict):
        raise RecordError(f'expected a JSON object, got {type(data).__name__}')
    if data.get('schema') != version:
        raise RecordError(f'schema version {data.get("schema")!r}, this reader reads {version} '
                          f'({hint})')


def number_field(value: Any, what: str, optional: bool = True) -> Optional[float]:
    """A finite number (None allowed if ``optional``), else :class:`RecordError`."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RecordError(f'{what} is {value!r}, expected a finite number')
    return float(value)


def string_field(data: dict, key: str, optional: bool = False) -> Optional[str]:
    """A non-empty string at ``data[key]`` (None allowed if ``optional``)."""
    value = data.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise RecordError(f'"{key}" is {value!r}, expected a non-empty string')
    return value
