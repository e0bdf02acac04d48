"""Result records: one small JSON next to each train/test run's outputs, read by the leaderboard.

``ResultRecordHook`` (registered in mmengine's root HOOKS) captures the metrics of the last
validation (training) or of the test, and writes ``<work_dir>/result.json`` atomically at the end
of the run, with what is needed to compare runs: model, task, config and its hash, metrics
under task-independent names, params/FLOPs in the task's setting, toy or not, git commit, date,
number of processes, seed.
"""
import datetime
import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any, Dict, Optional

from mmengine.dist import get_world_size, is_main_process
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

SCHEMA = 1
#: metric names of mmpretrain / mmdet / mmseg -> record names (all in percent)
METRIC_NAMES = {
    'accuracy/top1': ('top1', 1.),
    'accuracy/top5': ('top5', 1.),
    'real/top1': ('real_top1', 1.),
    'coco/bbox_mAP': ('ap_box', 100.),
    'coco/segm_mAP': ('ap_mask', 100.),
    'mIoU': ('miou', 1.),
}


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and ``os.replace``: never a torn file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
    with open(tmp, 'w') as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def git_commit(repo: Optional[str] = None) -> str:
    try:
        out = subprocess.run(['git', 'rev-parse', 'HEAD'],
                             cwd=repo or os.getcwd(),
                             capture_output=True,
                             text=True,
                             timeout=10)
        return out.stdout.strip() or 'unknown'
    except (OSError, subprocess.SubprocessError):
        return 'unknown'


def config_hash(cfg_text: str) -> str:
    return hashlib.sha256(cfg_text.encode()).hexdigest()


def normalise_metrics(metrics: Dict[str, Any]) -> Dict[str, float]:
    out = {}
    for key, value in metrics.items():
        if key in METRIC_NAMES:
            name, scale = METRIC_NAMES[key]
            out[name] = round(float(value) * scale, 4)
        elif key.startswith('aug_') or key in ('aAcc', 'mAcc'):
            out[key.lower()] = round(float(value), 4)
    return out


@HOOKS.register_module()
class ResultRecordHook(Hook):
    """Write ``result.json`` with the run's final metrics (see module docstring).

    Args:
        record: the static part of the record (model, task, template, config, params, ...).
    """
    priority = 'VERY_LOW'

    def __init__(self, record: dict, filename: str = 'result.json') -> None:
        self.record = dict(record)
        self.filename = filename
        self.metrics: Dict[str, Any] = {}
        self.checkpoint: Optional[str] = None

    def after_val_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        self.metrics = dict(metrics or {})

    def after_test_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        self.metrics = dict(metrics or {})
        self._write(runner)

    def after_train(self, runner) -> None:
        last = Path(runner.work_dir) / 'last_checkpoint'
        if last.is_file():
            self.checkpoint = last.read_text().strip()
        self._write(runner)

    def _write(self, runner) -> None:
        if not is_main_process():
            return
        record = dict(schema=SCHEMA, **self.record)
        record.update(
            metrics=normalise_metrics(self.metrics),
            raw_metrics={
                k: float(v)
                for k, v in self.metrics.items() if isinstance(v, (int, float))
            },
            world_size=get_world_size(),
            seed=runner.seed,
            date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
            work_dir=str(runner.work_dir),
            checkpoint=self.checkpoint or record.get('checkpoint'),
        )
        atomic_write_text(Path(runner.work_dir) / self.filename, json.dumps(record, indent=1))
        runner.logger.info(f'result record written to {Path(runner.work_dir) / self.filename}')
