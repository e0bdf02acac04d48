"""The static part of a run's result record: what the harness knows before the run starts
(model, setting, config and its hash, params/FLOPs in the full-scale setting, git commit).
``ResultRecordHook`` (``backbones.engine``) adds the metrics and writes it."""
import hashlib
import json
from pathlib import Path
from typing import Optional

from mmengine.config import Config
from mmengine.dist import get_rank
from mmengine.logging import print_log
from mmengine.utils import get_git_hash

from backbones.engine import atomic_write
from .models import to_dict
from .tasks import TASKS


def config_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def full_scale_complexity(cfg: Config, task: str, cache_dir: str = 'work_dirs/.cache') -> dict:
    """Params (M) and GFLOPs of the config's model in the task's full-scale setting, cached by
    the hash of the model config (counting a detector at 1280x800 takes a while on a CPU)."""
    from .complexity import task_complexity
    model_cfg = to_dict(cfg.model)
    key = config_hash(repr(sorted(model_cfg.items(), key=lambda kv: kv[0])) + task)
    cache = Path(cache_dir) / 'complexity' / f'{key}.json'
    if cache.is_file():
        try:
            return json.loads(cache.read_text())
        except ValueError:
            pass
    try:
        result = task_complexity(model_cfg, task)
    except Exception as exc:  # a record without FLOPs is still a record
        print_log(f'could not count params/FLOPs: {exc}', logger='current')
        return dict(params_m=None, gflops=None)
    out = dict(params_m=round(result.params_m, 3), gflops=round(result.gflops, 3))
    atomic_write(cache, json.dumps(out))
    return out


def record_base(cfg: Config, config_path: str, model: str, setting: Optional[str], task: str,
                toy: bool) -> dict:
    """The static part of the result record; ``cfg`` is the full-scale config (before any toy
    adaptation), so params/FLOPs are those of the table's setting. A config of no known
    setting is recorded under its task's name."""
    # only the main process writes the record: the others skip counting (minutes for a detector)
    complexity = full_scale_complexity(cfg, task) if get_rank() == 0 else dict(
        params_m=None, gflops=None)
    return dict(
        model=model,
        task=task,
        template=setting or TASKS[task].name,
        config=config_path,
        config_hash=config_hash(cfg.pretty_text),
        toy=toy,
        git_commit=get_git_hash(),
        **complexity)
