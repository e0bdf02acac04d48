"""``ResultRecordHook``: the run's final metrics as a :class:`ResultRecord` in the work dir."""
import datetime
import json
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

from mmengine.dist import get_world_size, is_main_process
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ..fileio import atomic_write
from ..result_record import ResultRecord


@HOOKS.register_module()
class ResultRecordHook(Hook):
    """Write ``<work_dir>/<filename>`` at the end of training (metrics of the last validation)
    or of testing.

    Args:
        record (dict): the static part of the record (model, task, template, config,
            params/FLOPs, ...: the fields of :class:`ResultRecord` known before the run).
        metric_names (dict): toolbox metric key -> (record name, scale), e.g.
            ``{'coco/bbox_mAP': ('ap_box', 100.0)}``; other metrics stay in ``raw_metrics``
            only. The harness passes its task table's entries.
        filename (str): ``'result.json'`` (train) or ``'test_result.json'``. Defaults to
            ``'result.json'``.
    """
    priority = 'VERY_LOW'

    def __init__(self,
                 record: dict,
                 metric_names: Optional[Dict[str, Sequence]] = None,
                 filename: str = 'result.json') -> None:
        self.record = dict(record)
        self.metric_names: Dict[str, Tuple[str, float]] = {
            k: (str(v[0]), float(v[1]))
            for k, v in (metric_names or {}).items()
        }
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

    def normalise(self, metrics: Dict[str, Any]) -> Dict[str, float]:
        """The metrics under the record's names, scaled to percent."""
        return {
            self.metric_names[k][0]: round(float(v) * self.metric_names[k][1], 4)
            for k, v in metrics.items() if k in self.metric_names
        }

    def _write(self, runner) -> None:
        if not is_main_process():
            return
        static = dict(self.record)
        record = ResultRecord(
            **{
                **static,
                'metrics': self.normalise(self.metrics),
                'raw_metrics': {
                    k: float(v)
                    for k, v in self.metrics.items() if isinstance(v, (int, float))
                },
                'world_size': get_world_size(),
                'seed': runner.seed,
                'date': datetime.datetime.now(datetime.timezone.utc).isoformat('T', 'seconds'),
                'work_dir': str(runner.work_dir),
                'checkpoint': self.checkpoint or static.get('checkpoint'),
            })
        path = Path(runner.work_dir) / self.filename
        atomic_write(path, json.dumps(record.to_dict(), indent=1))
        runner.logger.info(f'result record written to {path}')
