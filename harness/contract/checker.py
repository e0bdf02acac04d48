"""The check runner: :class:`BackboneChecker` renders the model's configs, builds its backbones
and runs the checks of :data:`CHECKS` on them, each into one :class:`CheckResult`."""
import contextlib
import copy
import io
import logging
import shutil
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import MMLogger

from backbones.zoo import get_backbone_cfg
from .. import configgen
from ..configgen import REPO_ROOT, TEMPLATE_ROOT, render_config
from ..errors import describe, first_line
from ..models import build_in_scope, to_dict
from ..tasks import TASKS, config_path, get_setting, iter_settings, task_of_setting
from . import structure, training, weights
from .common import CLS_TASK, CheckResult, ContractViolation, examples

#: the checks by name, in the order they run; each takes the checker and returns what it
#: verified (``toy_step`` also takes a setting key and runs once per setting)
CHECK_FUNCTIONS: Dict[str, Callable[..., str]] = {
    'build': structure.check_build,
    'configs': structure.check_configs,
    'outputs': structure.check_outputs,
    'input_sizes': structure.check_input_sizes,
    'frozen_stages': training.check_frozen_stages,
    'norm_eval': training.check_norm_eval,
    'gradients': training.check_gradients,
    'checkpoint': weights.check_checkpoint,
    'complexity': weights.check_complexity,
    'toy_step': training.check_toy_step,
}
#: the names of the checks, in the order they run
CHECKS: Tuple[str, ...] = tuple(CHECK_FUNCTIONS)


def default_settings() -> List[str]:
    """The settings every model gets (``Setting.default``): those checked by default."""
    return [s.key for _, s in iter_settings(include_extra=False)]


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence mmengine's logger, Python warnings and prints (pycocotools, checkpoint
    loaders): the checks load checkpoints with missing keys on purpose, build models that warn
    about their init, and so on; each check reports in one line instead."""
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter('ignore')
            yield
    finally:
        logger.setLevel(level)


class BackboneChecker:
    """Check a zoo model against the backbone contract (see :mod:`harness.contract`).

    The checks read the backbone from the thin configs that ``tools/make_configs.py`` writes
    for the model: they are rendered afresh into a temporary folder (so a check never runs on a
    stale file) and compared to the files under ``config_root`` by the ``configs`` check.

    Args:
        model (str): a zoo name (``register_model``), e.g. ``'lkconv_t'``.
        imports (Sequence[str]): module names for the configs' ``custom_imports`` (as
            ``make_configs.py --import``). Defaults to ().
        config_root (str | Path, optional): where the generated configs are expected (the
            ``configs`` check). Defaults to None: the model's own
            (:func:`harness.configgen.config_root`).
        quick (bool): count params/FLOPs of the backbone alone (at 224x224 and at the dense
            tasks' toy scale) instead of the task models in the table's settings; on a CPU, a
            Cascade Mask R-CNN at 1280x800 takes one to several minutes (results are cached).
            Defaults to False.
        settings (Sequence[str], optional): setting keys whose configs are checked and get a
            toy training step. Defaults to None: those every model gets.
        toy_data (dict, optional): data root per task for the toy steps; missing tasks use the
            toy data under ``toy_root``. Defaults to None.
        toy_root (str): where toy data are generated on first use (as ``tools/train.py --toy``
            does). Defaults to ``'data/toy'``.
        cache_dir (str): cache of full-scale params/FLOPs, shared with ``tools/train.py``.
            Defaults to ``'work_dirs/.cache'``.
        verbose (bool): keep the logs and warnings of the toolboxes, print tracebacks.
            Defaults to False.
        template_root (str | Path): the setting templates. Defaults to ``configs/_base_``.

    Raises:
        KeyError: ``model`` is not in the zoo.
        ValueError: an unknown setting key.
    """

    def __init__(self,
                 model: str,
                 imports: Sequence[str] = (),
                 config_root: Optional[Union[str, Path]] = None,
                 quick: bool = False,
                 settings: Optional[Sequence[str]] = None,
                 toy_data: Optional[Dict[str, str]] = None,
                 toy_root: str = 'data/toy',
                 cache_dir: str = 'work_dirs/.cache',
                 verbose: bool = False,
                 template_root: Union[str, Path] = TEMPLATE_ROOT) -> None:
        self.model = model
        self.backbone_cfg = get_backbone_cfg(model)  # KeyError for unknown names
        self.imports = list(imports)
        self.config_root = Path(config_root) if config_root is not None else \
            configgen.config_root(model)
        self.quick = quick
        self.settings = list(settings or default_settings())
        for key in self.settings:
            try:
                get_setting(key)
            except KeyError as exc:
                raise ValueError(exc.args[0]) from None
        self.toy_data = dict(toy_data or {})
        self.toy_root = toy_root
        self.cache_dir = cache_dir
        self.verbose = verbose
        templates = Path(template_root)
        self.template_root = templates.resolve() if templates.is_dir() else \
            REPO_ROOT / TEMPLATE_ROOT
        self.tmp: Optional[Path] = None
        self._configs: Dict[str, Config] = {}

    # -- running ---------------------------------------------------------------------------

    def run(self,
            checks: Optional[Sequence[str]] = None,
            report: Optional[Callable[[CheckResult], None]] = None) -> List[CheckResult]:
        """Run checks; one failing does not stop the others, but the checks that need a
        backbone are skipped when it does not build.

        Args:
            checks (Sequence[str], optional): names from :data:`CHECKS`. Defaults to None:
                all of them, in that order.
            report (Callable, optional): called with each result as soon as it is known.
                Defaults to None.

        Returns:
            list[CheckResult]: one result per check, ``toy_step`` one per setting.
        """
        selected = [c for c in CHECKS if checks is None or c in checks]
        unknown = set(checks or ()) - set(CHECKS)
        if unknown:
            raise ValueError(f'unknown checks {sorted(unknown)}; known: {", ".join(CHECKS)}')
        results: List[CheckResult] = []
        self.tmp, self._configs = Path(tempfile.mkdtemp(prefix='check_backbone_')), {}
        try:
            builds = True
            if 'build' not in selected:
                builds = self._run('build', lambda: structure.check_build(self)).status == 'pass'
            for name in selected:
                for label, job in self._jobs(name):
                    if name != 'build' and not builds:
                        result = CheckResult(label, 'skip', 'the backbone does not build')
                    else:
                        result = self._run(label, job)
                        builds = builds and (name != 'build' or result.status == 'pass')
                    results.append(result)
                    if report is not None:
                        report(result)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None
        return results

    def count(self, checks: Optional[Sequence[str]] = None) -> int:
        """How many results :meth:`run` reports for ``checks`` (``toy_step``: one per
        setting)."""
        return sum(len(self._jobs(c)) for c in CHECKS if checks is None or c in checks)

    def _jobs(self, name: str) -> List[Tuple[str, Callable[[], str]]]:
        """(label, job) of check ``name``: one, or one per setting for ``toy_step``."""
        check = CHECK_FUNCTIONS[name]
        if name == 'toy_step':
            return [(f'{name}[{key}]', lambda key=key: check(self, key)) for key in self.settings]
        return [(name, lambda: check(self))]

    def _run(self, name: str, job: Callable[[], str]) -> CheckResult:
        start = time.perf_counter()
        silence = contextlib.nullcontext() if self.verbose else quiet()
        try:
            with torch.random.fork_rng(), silence:
                torch.manual_seed(0)
                status, detail = 'pass', job()
        except ContractViolation as exc:
            status, detail = 'fail', str(exc)
        except Exception as exc:
            if self.verbose:
                traceback.print_exc()
            status, detail = 'fail', describe(exc)
        return CheckResult(name, status, detail, time.perf_counter() - start)

    # -- configs and models ----------------------------------------------------------------

    def expected_config(self, key: str) -> Tuple[Path, str]:
        """Where the config of setting ``key`` is expected under ``config_root``, and the text
        ``tools/make_configs.py`` writes there."""
        path = config_path(self.model, key, self.config_root)
        return path, render_config(self.model, key, self.imports, path, self.template_root)

    def config(self, key: str) -> Config:
        """The config ``tools/make_configs.py`` writes for setting ``key``, read from a
        temporary copy (its ``_base_`` points at the templates)."""
        if key not in self._configs:
            if self.tmp is None:
                raise RuntimeError('configs are only available inside run()')
            path = config_path(self.model, key, self.tmp)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render_config(self.model, key, self.imports, path, self.template_root))
            self._configs[key] = Config.fromfile(str(path))
        return self._configs[key]

    def task_of(self, key: str) -> str:
        """The task name of setting ``key``."""
        return task_of_setting(key).name

    def dense_keys(self) -> List[str]:
        """The dense-task settings checked (all default ones if none is selected)."""
        chosen = [k for k in self.settings if self.task_of(k) != CLS_TASK]
        return chosen or [k for k in default_settings() if self.task_of(k) != CLS_TASK]

    def backbone_cfg_of(self, key: str) -> dict:
        """The backbone config of setting ``key``'s config."""
        return to_dict(self.config(key).model.backbone)

    def build(self, cfg: dict, task: str = CLS_TASK, **overrides) -> nn.Module:
        """Build a backbone config without pretrained weights.

        Args:
            cfg (dict): the backbone config.
            task (str): the task whose toolbox registry builds it (SyncBN becomes BN).
                Defaults to ``'imagenet'``.
            **overrides: config keys to replace (a backbone that rejects them fails the check
                with their names).

        Returns:
            nn.Module: the backbone.
        """
        cfg = copy.deepcopy(cfg)
        cfg.pop('init_cfg', None)
        cfg.update(overrides)
        try:
            return build_in_scope(cfg, TASKS[task].scope)
        except TypeError as exc:
            if overrides and 'argument' in str(exc):
                raise ContractViolation(f'the backbone does not accept '
                                        f'{examples(sorted(overrides))}: {first_line(exc)}')
            raise

    def dense_backbone(self, **overrides) -> nn.Module:
        """The backbone of the first dense-task setting (see :meth:`build`)."""
        key = self.dense_keys()[0]
        return self.build(self.backbone_cfg_of(key), self.task_of(key), **overrides)

    def classification_backbone(self, **overrides) -> nn.Module:
        """The backbone of the ImageNet classifier (see :meth:`build`)."""
        return self.build(self.backbone_cfg_of(CLS_TASK), CLS_TASK, **overrides)


def check_backbone(model: str,
                   checks: Optional[Sequence[str]] = None,
                   **kwargs) -> List[CheckResult]:
    """Run the contract checks on a zoo model.

    Args:
        model (str): the zoo name.
        checks (Sequence[str], optional): names from :data:`CHECKS`. Defaults to None: all.
        **kwargs: arguments of :class:`BackboneChecker`.

    Returns:
        list[CheckResult]: the results, in the order the checks ran.
    """
    return BackboneChecker(model, **kwargs).run(checks)
