"""The backbone contract as executable checks: what a backbone must do to go through the three
tasks of the benchmark (ImageNet classifier, Mask R-CNN / Cascade Mask R-CNN, UperNet) and onto
the leaderboard, verified on the CPU in a minute or two, before anyone spends GPU hours on it.

``tools/check_backbone.py`` is the command line; :class:`BackboneChecker` the library. The checks
read the backbone from the thin configs that ``tools/make_configs.py`` writes for the zoo name:
they are rendered afresh into a temporary folder (so a check never runs on a stale file) and
compared to the files under ``configs/`` by the ``configs`` check.

The contract (the OpenMMLab backbone conventions this project's backbones follow):

- the class is registered in mmengine's *root* ``MODELS`` (:mod:`backbones.registry`), so that
  mmpretrain, mmdet and mmseg configs all build it, and has a zoo entry (``register_model``);
- ``forward`` returns a tuple with one (B, C, H, W) map per index of ``out_indices``, stage ``i``
  at stride 4, 8, 16, 32 and with ``num_features[i]`` channels (the configs read the neck / head
  channels off ``num_features``), for any input size the dense tasks feed (not only multiples of
  32, not only squares);
- it accepts ``out_indices``, ``drop_path_rate``, ``frozen_stages`` (the stem and stages
  ``0..frozen_stages`` get ``requires_grad=False`` and stay in eval mode under ``train()``),
  ``norm_eval`` (BatchNorm layers stay in eval mode under ``train()``) and ``init_cfg``; a
  class attribute ``dense_task_cfg`` (optional) holds its dense-task settings (e.g. SyncBN);
- every parameter gets a gradient (DistributedDataParallel fails on unused ones);
- the state dict of its ImageNet classifier (keys ``backbone.*``) loads into the dense-task
  backbone through ``init_cfg=dict(type='Pretrained', prefix='backbone.')`` with no missing key
  but the per-output norms ``norm{i}`` that the dense backbone adds;
- the FLOP counter of :mod:`backbones.complexity` can count it (custom autograd functions need a
  handle in ``CUSTOM_OP_HANDLES``), and one training step of each task config runs on toy data.

By default params/FLOPs are counted as the leaderboard records them (the three task models in
the table's settings, cached under ``work_dirs/.cache`` where ``tools/train.py`` finds them);
``quick`` counts the backbone alone, which takes seconds.
"""
import ast
import contextlib
import copy
import importlib
import io
import logging
import math
import os
import re
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.config import Config, ConfigDict
from mmengine.logging import MMLogger
from mmengine.utils.dl_utils.parrots_wrapper import _BatchNorm

from . import zoo
from .complexity import TASK_SCOPE, count, syncbn_to_bn
from .configgen import TABLE_TEMPLATE, TEMPLATES, render_config
from .launch import UsageError
from .registry import MODELS

#: the checks, in the order they run; ``toy_step`` gives one result per task config
CHECKS = ('build', 'configs', 'outputs', 'input_sizes', 'frozen_stages', 'norm_eval', 'gradients',
          'checkpoint', 'complexity', 'toy_step')
#: stride of each of the four outputs
STRIDES = (4, 8, 16, 32)
#: (H, W) inputs of the shape checks. The classifier gets ImageNet's 224x224 (Swin's, for one,
#: refuses maps smaller than its window in the classification setting); the dense backbone a
#: multiple of 32 (strides must be exact), then sizes the dense tasks feed at toy scale (a
#: 1333x800 COCO image, a 512x512 ADE20K crop, an odd one)
CLS_INPUT = (224, 224)
STRIDE_INPUT = (96, 128)
DENSE_INPUTS = ((200, 333), (128, 128), (75, 119))
#: the per-output norms a dense backbone adds to the classification one
OUTPUT_NORM = re.compile(r'^norm\d+\.')
#: input (H, W) of the backbone-only FLOP count of ``quick`` mode: ImageNet's, and the dense
#: tasks' at toy scale (1280x800 and 2048x512 / 4)
QUICK_FLOP_INPUTS = {'imagenet': CLS_INPUT, 'coco': (200, 320), 'ade20k': (128, 512)}
_REPO = Path(__file__).resolve().parent.parent


class ContractViolation(Exception):
    """The backbone breaks the contract; the message says how."""


@dataclass
class CheckResult:
    name: str
    status: str  # 'pass', 'fail' or 'skip'
    detail: str
    seconds: float = 0.

    @property
    def failed(self) -> bool:
        return self.status == 'fail'

    def line(self) -> str:
        return f'{self.status.upper():<4}  {self.name:<24} {self.detail} ({self.seconds:.1f}s)'


# ---------------------------------------------------------------------------------------------
# command-line input: modules, new zoo entries


def import_backbone_module(spec: str) -> str:
    """Import a module that registers a backbone, given as a module name (``my_pkg.my_net``) or
    a ``.py`` file; returns the module name for the configs' ``custom_imports``.

    A file inside a folder on ``sys.path`` (e.g. ``contrib/lkconv.py`` in the repository) is
    imported under its dotted name; any other file's folder is put on ``sys.path`` first (runs
    of its configs then need that folder on ``PYTHONPATH`` too).
    """
    name = spec
    if spec.endswith('.py') or os.sep in spec:
        path = Path(spec).resolve()
        if not path.is_file():
            raise UsageError(f'cannot import {spec!r}: no such file')
        name = _module_name_of(path)
        if name is None:
            sys.path.insert(0, str(path.parent))
            name = path.stem
    try:
        importlib.import_module(name)
    except Exception as exc:  # a broken submission is bad input, not a crash of the tool
        raise UsageError(f'cannot import {spec!r}: {type(exc).__name__}: {_first_line(exc)}')
    return name


def _module_name_of(path: Path) -> Optional[str]:
    """The dotted name under which ``path`` is importable from ``sys.path``, if any."""
    names = []
    for entry in sys.path:
        root = Path(entry or os.getcwd()).resolve()
        try:
            parts = path.with_suffix('').relative_to(root).parts
        except ValueError:
            continue
        if parts and all(p.isidentifier() for p in parts):
            names.append('.'.join(parts))
    return max(names, key=lambda n: n.count('.')) if names else None


def parse_backbone_literal(text: str) -> dict:
    """A backbone config given on the command line: ``dict(type='MyNet', arch='tiny')`` or
    ``{'type': 'MyNet'}``, read without evaluating code."""
    try:
        node = ast.parse(text, mode='eval').body
        if isinstance(node, ast.Call) and getattr(node.func, 'id', '') == 'dict' \
                and not node.args:
            value = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords}
        else:
            value = ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError) as exc:
        raise UsageError(f'--backbone is not a dict literal: {_first_line(exc)}')
    if not isinstance(value, dict) or None in value:
        raise UsageError(f'--backbone is not a dict literal: {text}')
    return value


def register_submission(model: str,
                        imports: Sequence[str] = (),
                        backbone: Optional[dict] = None) -> List[str]:
    """Import ``imports``, add ``model`` to the zoo if ``backbone`` (a registry config) is
    given, and check that its type is registered. Returns the module names of ``imports``.

    Raises:
        UsageError: a module does not import, the model is unknown or its type unregistered.
    """
    modules = [import_backbone_module(spec) for spec in imports]
    if backbone is not None:
        try:
            zoo.register_model(model, backbone)
        except ValueError as exc:
            raise UsageError(str(exc))
    try:
        cfg = zoo.get_backbone_cfg(model)
    except KeyError as exc:
        raise UsageError(f'{exc.args[0]} (a new model needs --backbone, and --import for the '
                         'module that registers its type)')
    if MODELS.get(cfg['type']) is None:
        raise UsageError(f'unknown backbone type {cfg["type"]!r}: it is not in mmengine\'s root '
                         'MODELS (pass --import with the module that registers it)')
    return modules


# ---------------------------------------------------------------------------------------------
# helpers


def default_templates() -> List[str]:
    """The task configs every model gets (those a template marks ``default``)."""
    return [k for k, t in TEMPLATES.items() if getattr(t, 'default', True)]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else ''


def _describe(exc: BaseException) -> str:
    """One line for an unexpected exception: type, message, and where it was raised."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f' ({Path(frames[-1].filename).name}:{frames[-1].lineno})' if frames else ''
    return f'{type(exc).__name__}: {_first_line(exc)}{where}'


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
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


def task_registry(task: str):
    """The ``MODELS`` registry of the toolbox of ``task``, with its modules registered."""
    scope = TASK_SCOPE[task]
    importlib.import_module(f'{scope}.utils').register_all_modules(init_default_scope=False)
    return importlib.import_module(f'{scope}.registry').MODELS


def _to_dict(cfg) -> dict:
    return cfg.to_dict() if hasattr(cfg, 'to_dict') else copy.deepcopy(dict(cfg))


def _mode_dependent(module: nn.Module) -> bool:
    """Layers that compute differently in train and eval mode."""
    return isinstance(module, (_BatchNorm, nn.modules.dropout._DropoutNd)) or \
        hasattr(module, 'drop_prob')


def _examples(names: Sequence[str], n: int = 4) -> str:
    names = list(names)
    return ', '.join(names[:n]) + (f', ... ({len(names)} in all)' if len(names) > n else '')


def _hw(x: torch.Tensor) -> str:
    return 'x'.join(str(s) for s in x.shape[-2:])


# ---------------------------------------------------------------------------------------------
# the checks


class BackboneChecker:
    """Check the zoo model ``model`` against the contract (see the module docstring).

    Args:
        model: a zoo name (``register_model``), e.g. ``'lkconv_t'``.
        imports: module names for the configs' ``custom_imports`` (as ``make_configs --import``).
        config_root: where the generated configs are expected (the ``configs`` check).
        quick: count params/FLOPs of the backbone alone (at 224x224 and at the dense tasks'
            toy scale) instead of the three task models in the table's settings; on a CPU, a
            Cascade Mask R-CNN at 1280x800 takes one to several minutes (results are cached).
        templates: task configs for the toy training steps (default: those every model gets).
        toy_data: data root per task for the toy steps; missing tasks use the toy data under
            ``toy_root`` (generated there on first use, as ``tools/train.py --toy`` does).
        cache_dir: cache of full-scale params/FLOPs, shared with ``tools/train.py``.
        verbose: keep the logs and warnings of the toolboxes, print tracebacks.
    """

    def __init__(self,
                 model: str,
                 imports: Sequence[str] = (),
                 config_root: str = 'configs',
                 quick: bool = False,
                 templates: Optional[Sequence[str]] = None,
                 toy_data: Optional[Dict[str, str]] = None,
                 toy_root: str = 'data/toy',
                 cache_dir: str = 'work_dirs/.cache',
                 verbose: bool = False) -> None:
        self.model = model
        self.backbone_cfg = zoo.get_backbone_cfg(model)  # KeyError for unknown names
        self.imports = list(imports)
        self.config_root = Path(config_root)
        self.quick = quick
        self.templates = list(templates or default_templates())
        unknown = set(self.templates) - set(TEMPLATES)
        if unknown:
            raise ValueError(f'unknown templates {sorted(unknown)}; known: {sorted(TEMPLATES)}')
        self.toy_data = dict(toy_data or {})
        self.toy_root = toy_root
        self.cache_dir = cache_dir
        self.verbose = verbose
        self._tmp: Optional[Path] = None
        self._configs: Dict[str, Config] = {}

    # -- running ---------------------------------------------------------------------------

    def run(self,
            checks: Optional[Sequence[str]] = None,
            report: Optional[Callable[[CheckResult], None]] = None) -> List[CheckResult]:
        """Run ``checks`` (default: all of :data:`CHECKS`, in that order); ``report`` is called
        with each result as soon as it is known."""
        selected = [c for c in CHECKS if checks is None or c in checks]
        unknown = set(checks or ()) - set(CHECKS)
        if unknown:
            raise ValueError(f'unknown checks {sorted(unknown)}; known: {", ".join(CHECKS)}')
        results: List[CheckResult] = []

        def emit(result: CheckResult) -> None:
            results.append(result)
            if report is not None:
                report(result)

        tmp = tempfile.mkdtemp(prefix='check_backbone_')
        self._tmp, self._configs = Path(tmp), {}
        try:
            builds = True
            if 'build' not in selected:
                builds = self._run('build', self.check_build).status == 'pass'
            for name in selected:
                jobs = [(f'toy_step[{key}]', lambda key=key: self.check_toy_step(key))
                        for key in self.templates] if name == 'toy_step' else \
                    [(name, getattr(self, f'check_{name}'))]
                for label, job in jobs:
                    if name != 'build' and not builds:
                        emit(CheckResult(label, 'skip', 'the backbone does not build'))
                        continue
                    result = self._run(label, job)
                    builds = builds and (name != 'build' or result.status == 'pass')
                    emit(result)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            self._tmp = None
        return results

    def _run(self, name: str, job: Callable[[], str]) -> CheckResult:
        start = time.perf_counter()
        quiet = contextlib.nullcontext() if self.verbose else _quiet()
        try:
            with torch.random.fork_rng(), quiet:
                torch.manual_seed(0)
                status, detail = 'pass', job()
        except ContractViolation as exc:
            status, detail = 'fail', str(exc)
        except Exception as exc:
            if self.verbose:
                traceback.print_exc()
            status, detail = 'fail', _describe(exc)
        return CheckResult(name, status, detail, time.perf_counter() - start)

    # -- configs and models ----------------------------------------------------------------

    def config(self, key: str) -> Config:
        """The config ``tools/make_configs.py`` writes for template ``key``, read from a
        temporary copy (with the ``_base_`` templates beside it)."""
        if key not in self._configs:
            if self._tmp is None:
                raise RuntimeError('configs are only available inside run()')
            base = self._tmp / '_base_'
            if not base.exists():
                source = self.config_root / '_base_'
                if not source.is_dir():
                    source = _REPO / 'configs' / '_base_'
                base.symlink_to(source.resolve(), target_is_directory=True)
            t = TEMPLATES[key]
            path = self._tmp / t.task / f'{self.model}_{t.suffix}.py'
            path.parent.mkdir(exist_ok=True)
            path.write_text(render_config(self.model, key, self.imports))
            self._configs[key] = Config.fromfile(str(path))
        return self._configs[key]

    def dense_keys(self) -> List[str]:
        """The dense-task templates checked (all default ones if none is selected)."""
        chosen = [k for k in self.templates if TEMPLATES[k].task != 'imagenet']
        return chosen or [k for k in default_templates() if TEMPLATES[k].task != 'imagenet']

    def backbone_cfg_of(self, key: str) -> dict:
        """The backbone of template ``key`` with BN for SyncBN (the checks run on the CPU)."""
        return syncbn_to_bn(_to_dict(self.config(key).model.backbone))

    def build(self, cfg: dict, task: str = 'imagenet', **overrides) -> nn.Module:
        """Build a backbone config from the registry of ``task``'s toolbox, without pretrained
        weights; ``overrides`` replace config keys (an error names the keys it rejects)."""
        from mmengine.registry import DefaultScope
        cfg = syncbn_to_bn(copy.deepcopy(cfg))
        cfg.pop('init_cfg', None)
        cfg.update(overrides)
        registry = task_registry(task)
        with DefaultScope.overwrite_default_scope(TASK_SCOPE[task]):
            try:
                return registry.build(cfg)
            except TypeError as exc:
                if overrides and 'argument' in str(exc):
                    raise ContractViolation(f'the backbone does not accept '
                                            f'{_examples(sorted(overrides))}: {_first_line(exc)}')
                raise

    def dense_backbone(self, **overrides) -> nn.Module:
        key = self.dense_keys()[0]
        return self.build(self.backbone_cfg_of(key), TEMPLATES[key].task, **overrides)

    def classification_backbone(self, **overrides) -> nn.Module:
        return self.build(self.backbone_cfg_of('imagenet'), 'imagenet', **overrides)

    def _out_indices(self, backbone: nn.Module, n: int) -> List[int]:
        indices = getattr(backbone, 'out_indices', None)
        return list(indices) if indices is not None else list(range(4 - n, 4))

    # -- the checks: each returns what it verified, or raises ContractViolation -------------

    def check_build(self) -> str:
        """Builds from mmpretrain's, mmdet's and mmseg's MODELS; init_weights() runs."""
        cfg = self.backbone_cfg
        for task, scope in TASK_SCOPE.items():
            try:
                backbone = self.build(cfg, task)
            except KeyError as exc:
                raise ContractViolation(
                    f'{scope} MODELS cannot build {cfg["type"]!r}: {_first_line(exc)} (register '
                    'it with @backbones.registry.MODELS.register_module(), mmengine\'s root '
                    'registry, not one toolbox\'s)')
            backbone.init_weights()
        features = getattr(backbone, 'num_features', None)
        if features is None or len(features) < len(STRIDES):
            raise ContractViolation(
                f'{type(backbone).__name__} declares num_features={features!r}: the configs '
                f'read the channels of stage i from num_features[i], for the {len(STRIDES)} '
                'stages')
        params = sum(p.numel() for p in backbone.parameters())
        return (f'{cfg["type"]} ({params / 1e6:.2f}M params) builds from mmpretrain, mmdet and '
                f'mmseg MODELS, init_weights() runs; num_features={list(features)}')

    def check_configs(self) -> str:
        """The configs under ``config_root`` are those the generator writes now."""
        missing, stale = [], []
        for key in self.templates:
            t = TEMPLATES[key]
            path = self.config_root / t.task / f'{self.model}_{t.suffix}.py'
            text = render_config(self.model, key, self.imports)
            if not path.is_file():
                missing.append(str(path))
            elif path.read_text() != text:
                stale.append(str(path))
        if missing or stale:
            imports = ''.join(f' --import {m}' for m in self.imports)
            what = '; '.join(f'{n} {w}: {_examples(p, 2)}'
                             for n, w, p in ((len(missing), 'missing', missing),
                                             (len(stale), 'out of date', stale)) if p)
            raise ContractViolation(f'{what} (write them with: python tools/make_configs.py '
                                    f'{self.model}{imports})')
        for key in self.dense_keys():
            backbone = self.config(key).model.backbone
            init = backbone.get('init_cfg') or {}
            if init.get('type') != 'Pretrained' or init.get('prefix') != 'backbone.':
                raise ContractViolation(
                    f'the {key} config initialises the backbone with {init!r}, not with '
                    'Pretrained(prefix="backbone.") from the ImageNet checkpoint')
        return f'{len(self.templates)} configs under {self.config_root} are up to date'

    def check_outputs(self) -> str:
        """Count, channels and strides of the outputs; channels the configs' heads read."""
        h, w = STRIDE_INPUT
        dense = self.dense_backbone().eval()
        with torch.no_grad():
            outs = dense(torch.randn(1, 3, h, w))
        channels = self._check_maps(dense, outs, (h, w), exact=True)
        if len(outs) != len(STRIDES):
            raise ContractViolation(
                f'the dense-task backbone has {len(outs)} outputs; the necks need '
                f'{len(STRIDES)} (out_indices=(0, 1, 2, 3), strides {STRIDES})')
        classifier = self.classification_backbone().eval()
        with torch.no_grad():
            cls_outs = classifier(torch.randn(1, 3, *CLS_INPUT))
        cls_channels = self._check_maps(classifier, cls_outs, CLS_INPUT, exact=True)
        heads = {'imagenet': [self.config('imagenet').model.head.in_channels]}
        for key in self.dense_keys():
            model = self.config(key).model
            heads[key] = list(model.neck.in_channels) if 'neck' in model else \
                list(model.decode_head.in_channels)
        for key, read in heads.items():
            have = cls_channels[-1:] if key == 'imagenet' else channels
            if list(read) != list(have):
                raise ContractViolation(f'the {key} config reads {read} channels, the backbone '
                                        f'outputs {have}')
        return (f'{len(outs)} outputs at strides {"/".join(map(str, STRIDES))} with '
                f'{channels} channels = num_features; the classifier outputs {cls_channels}; '
                'head/neck channels of the configs match')

    def _check_maps(self, backbone: nn.Module, outs, hw: Tuple[int, int], exact: bool) -> List[int]:
        """Check the outputs of ``backbone`` for an input of size ``hw``; returns channels."""
        if not isinstance(outs, (tuple, list)) or not all(
                isinstance(o, torch.Tensor) and o.dim() == 4 for o in outs):
            raise ContractViolation(f'forward returns {type(outs).__name__}, not a tuple of '
                                    '(B, C, H, W) maps')
        indices = self._out_indices(backbone, len(outs))
        if len(indices) != len(outs):
            raise ContractViolation(f'{len(outs)} outputs for out_indices={tuple(indices)}')
        features = list(getattr(backbone, 'num_features', []))
        h, w = hw
        for out, i in zip(outs, indices):
            if i >= len(features) or out.shape[1] != features[i]:
                declared = features[i] if i < len(features) else None
                raise ContractViolation(
                    f'output {i} has {out.shape[1]} channels, but num_features[{i}] declares '
                    f'{declared} (the configs\' heads and necks read num_features)')
            s = STRIDES[i]
            oh, ow = out.shape[-2:]
            ok_h = oh == h // s if exact else h // s <= oh <= math.ceil(h / s)
            ok_w = ow == w // s if exact else w // s <= ow <= math.ceil(w / s)
            if not (ok_h and ok_w):
                want = f'{h // s}x{w // s}' if exact or (h % s == 0 and w % s == 0) else \
                    f'{h // s}..{math.ceil(h / s)} x {w // s}..{math.ceil(w / s)}'
                raise ContractViolation(f'output {i} is {oh}x{ow} for a {h}x{w} input; stride '
                                        f'{s} gives {want}')
        return [int(o.shape[1]) for o in outs]

    def check_input_sizes(self) -> str:
        """Non-square inputs whose sides are not multiples of 32, as the dense tasks feed."""
        dense = self.dense_backbone().eval()
        shapes = []
        for h, w in DENSE_INPUTS:
            try:
                with torch.no_grad():
                    outs = dense(torch.randn(1, 3, h, w))
            except ContractViolation:
                raise
            except Exception as exc:
                raise ContractViolation(f'fails on a {h}x{w} input: {_describe(exc)}')
            self._check_maps(dense, outs, (h, w), exact=False)
            shapes.append(f'{h}x{w} -> ' + ', '.join(_hw(o) for o in outs))
        return '; '.join(shapes)

    def check_frozen_stages(self) -> str:
        """``frozen_stages=1``: stem and stages 0-1 frozen and in eval mode under train()."""
        k = 1
        base = self.dense_backbone(frozen_stages=-1)
        base.train()
        frozen = self.dense_backbone(frozen_stages=k)
        frozen.train()
        already = {n for n, p in base.named_parameters() if not p.requires_grad}
        newly = {n for n, p in frozen.named_parameters() if not p.requires_grad} - already
        if not newly:
            raise ContractViolation(f'frozen_stages={k} sets requires_grad=False on no parameter')
        # the largest modules all of whose parameters frozen_stages froze
        parts: List[str] = []
        for name, module in frozen.named_modules():
            params = {f'{name}.{n}' if name else n for n, _ in module.named_parameters()}
            if name and params and params <= newly and \
                    not any(name.startswith(p + '.') for p in parts):
                parts.append(name)
        training = [
            f'{part}.{n}' if n else part for part in parts
            for n, m in frozen.get_submodule(part).named_modules()
            if _mode_dependent(m) and m.training
        ]
        if training:
            raise ContractViolation(
                f'after train(), {len(training)} layers of the frozen stages are in training '
                f'mode (e.g. {_examples(training, 2)}): dropout / drop-path / BatchNorm statistics'
                ' still change them; put the frozen modules in eval mode in train()')
        outs = frozen(torch.randn(2, 3, *STRIDE_INPUT))
        for out, i in zip(outs, self._out_indices(frozen, len(outs))):
            if i <= k and out.requires_grad:
                raise ContractViolation(f'with frozen_stages={k}, output {i} still depends on '
                                        'trainable parameters')
            if i > k and not out.requires_grad:
                raise ContractViolation(f'frozen_stages={k} also froze stage {i}')
        return (
            f'frozen_stages={k} freezes {len(newly)} parameter tensors ({_examples(parts, 6)}), '
            'which stay in eval mode under train(); outputs 2-3 still train')

    def check_norm_eval(self) -> str:
        """``norm_eval=True`` keeps every BatchNorm layer in eval mode under train()."""
        backbone = self.dense_backbone(norm_eval=True)
        backbone.train()
        norms = {n: m for n, m in backbone.named_modules() if isinstance(m, _BatchNorm)}
        if not norms:
            return 'no BatchNorm layer: nothing for norm_eval to keep in eval mode'
        training = [n for n, m in norms.items() if m.training]
        if training:
            raise ContractViolation(
                f'norm_eval=True, but after train() {len(training)} of {len(norms)} BatchNorm '
                f'layers are in training mode (e.g. {_examples(training, 2)})')
        if not backbone.training:
            raise ContractViolation('norm_eval=True puts the whole backbone in eval mode, not '
                                    'only its BatchNorm layers')
        stats = {n: m.running_mean.clone() for n, m in norms.items() if m.running_mean is not None}
        backbone(torch.randn(2, 3, *STRIDE_INPUT))
        changed = [n for n, v in stats.items() if not torch.equal(norms[n].running_mean, v)]
        if changed:
            raise ContractViolation(f'norm_eval=True, but a training-mode forward changes the '
                                    f'running statistics of {_examples(changed, 2)}')
        return (f'all {len(norms)} BatchNorm layers stay in eval mode under train() (running '
                'statistics unchanged), the rest trains')

    def check_gradients(self) -> str:
        """Every parameter gets a gradient, in the classifier and in the dense backbone."""
        counts = []
        for what, build, shape in (('classification', self.classification_backbone,
                                    (1, 3, *CLS_INPUT)), ('dense-task', self.dense_backbone,
                                                          (2, 3, *STRIDE_INPUT))):
            backbone = build(**self._no_drop_path())
            backbone.train()
            outs = backbone(torch.randn(*shape))
            # a random projection, not a norm of the outputs: normalised outputs have a
            # constant norm, which would starve the layers before the last norm of gradients
            loss = sum((o * torch.randn_like(o)).sum() for o in outs)
            loss.backward()
            params = [(n, p) for n, p in backbone.named_parameters() if p.requires_grad]
            dead = [n for n, p in params if p.grad is None or not p.grad.any()]
            if dead:
                raise ContractViolation(
                    f'{len(dead)} parameters of the {what} backbone get no gradient: '
                    f'{_examples(dead)} (unused parameters break DistributedDataParallel)')
            counts.append(f'{len(params)} in the {what} backbone')
        return 'gradients reach all parameter tensors: ' + ', '.join(counts)

    def _no_drop_path(self) -> dict:
        # with drop-path, a block whose branch is dropped for the whole batch gets no gradient
        return dict(drop_path_rate=0.) if 'drop_path_rate' in self.backbone_cfg else {}

    def check_checkpoint(self) -> str:
        """The ImageNet classifier's weights load into each dense-task backbone."""
        from mmengine.registry import DefaultScope
        from mmengine.runner.checkpoint import save_checkpoint

        from .complexity import build_task_model
        classifier = build_task_model(_to_dict(self.config('imagenet').model), 'imagenet')
        # random values: a loaded tensor must be told apart from a freshly initialised one
        state = {
            k: torch.rand_like(v) if v.is_floating_point() else v
            for k, v in classifier.state_dict().items()
        }
        path = self._tmp / 'classifier.pth'
        save_checkpoint(dict(state_dict=state, meta=dict()), str(path))
        source = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
        loaded = []
        for key in self.dense_keys():
            cfg = self.backbone_cfg_of(key)
            cfg['init_cfg'] = dict(cfg.get('init_cfg') or {}, checkpoint=str(path))
            task = TEMPLATES[key].task
            registry = task_registry(task)
            with DefaultScope.overwrite_default_scope(TASK_SCOPE[task]):
                dense = registry.build(cfg)
            dense.init_weights()
            own = dense.state_dict()
            missing = [k for k in own if k not in source and not OUTPUT_NORM.match(k)]
            unexpected = [k for k in source if k not in own]
            shapes = [k for k in source if k in own and own[k].shape != source[k].shape]
            not_loaded = [
                k for k in source
                if k in own and k not in shapes and not torch.equal(own[k], source[k])
            ]
            problems = [
                f'{len(keys)} keys {what}: {_examples(keys, 3)}' for what, keys in (
                    ('missing from the checkpoint', missing),
                    ('of the checkpoint unused', unexpected), ('with another shape', shapes),
                    ('not loaded by init_weights() (does it re-initialise after loading?)',
                     not_loaded)) if keys
            ]
            if problems:
                raise ContractViolation(f'the ImageNet checkpoint does not fit the {key} '
                                        f'backbone: {"; ".join(problems)}')
            loaded.append(key)
            added = sorted({k.split('.')[0] for k in own if k not in source})
        return (f'{len(source)} backbone tensors of the ImageNet classifier load into the '
                f'{", ".join(loaded)} backbones via init_cfg (Pretrained, prefix "backbone."); '
                f'only the output norms are new: {", ".join(added) or "none"}')

    def check_complexity(self) -> str:
        """Params/FLOPs in the three settings: of the task models at full scale (the numbers of
        the leaderboard), or with ``quick`` of the backbone alone at each task's toy scale."""
        dense = self.dense_backbone().eval()
        # quick: the numbers; full: only a cheap trace for the check of custom ops below
        inputs = dict(QUICK_FLOP_INPUTS) if self.quick else dict(coco=STRIDE_INPUT)
        counts = {}
        for task, hw in inputs.items():
            backbone = self.classification_backbone().eval() if task == 'imagenet' else dense
            counts[task] = count(backbone, (torch.randn(1, 3, *hw), ))
            # a custom autograd function of the backbone counts zero FLOPs without a handle
            custom = sorted(op for op in counts[task].unsupported_ops
                            if op.startswith('prim::PythonOp'))
            if custom:
                raise ContractViolation(
                    f'the FLOP counter has no handle for {", ".join(custom)}: add one to '
                    'backbones.complexity.CUSTOM_OP_HANDLES, or these ops count zero FLOPs')
        if self.quick:
            cells = [
                f'{c.gflops:.2f}G at {"x".join(map(str, QUICK_FLOP_INPUTS[t]))}'
                for t, c in counts.items()
            ]
            return (f'backbone alone at toy scale (--quick): {counts["imagenet"].params_m:.2f}M '
                    f'params, {", ".join(cells)}')
        from .complexity import task_complexity
        from .launch import full_scale_complexity
        cells = []
        for task, key in TABLE_TEMPLATE.items():
            cfg = self.config(key)
            result = full_scale_complexity(cfg, task, self.cache_dir)
            if result.get('params_m') is None:  # it logged and swallowed the error: raise it
                task_complexity(_to_dict(cfg.model), task)
                raise ContractViolation(f'params/FLOPs of the {key} model cannot be counted')
            cells.append(f'{key} {result["params_m"]:.1f}M {result["gflops"]:.1f}G')
        return 'task models in the table\'s settings: ' + ', '.join(cells)

    def check_toy_step(self, key: str) -> str:
        """One optimizer step of the task config ``key`` on a toy batch, through the real data
        pipeline (built as mmengine's Runner would build it)."""
        from mmengine.optim import build_optim_wrapper
        from mmengine.registry import DefaultScope
        from mmengine.runner import Runner

        from .toy import ensure_toy_data
        from .toy.adapt import toy_config
        task = TEMPLATES[key].task
        cfg = copy.deepcopy(self.config(key))
        root = self.toy_data.get(task) or ensure_toy_data(task, self.toy_root)
        toy_config(cfg, task, data_root=str(root))
        model_cfg = ConfigDict(syncbn_to_bn(_to_dict(cfg.model)))  # as the Runner builds it
        if cfg.get('data_preprocessor') is not None:  # what the Runner does
            model_cfg.setdefault('data_preprocessor', _to_dict(cfg.data_preprocessor))
        registry = task_registry(task)
        with DefaultScope.overwrite_default_scope(TASK_SCOPE[task]):
            model = registry.build(model_cfg)
            model.init_weights()
            model.train()
            loader = Runner.build_dataloader(_to_dict(cfg.train_dataloader), seed=0)
            optim_wrapper = build_optim_wrapper(model, _to_dict(cfg.optim_wrapper))
            batch = next(iter(loader))
            before = {
                n: p.detach().clone()
                for n, p in model.backbone.named_parameters() if p.requires_grad
            }
            log_vars = model.train_step(batch, optim_wrapper)
        loss = float(log_vars['loss'])
        if not math.isfinite(loss):
            raise ContractViolation(f'the loss of a toy step is {loss}')
        params = dict(model.backbone.named_parameters())
        updated = sum(not torch.equal(params[n].detach(), v) for n, v in before.items())
        if not updated:
            raise ContractViolation('a training step left every backbone parameter unchanged')
        # not "all": drop-path may drop a block for the whole (small) toy batch; that every
        # parameter can get a gradient is the gradients check's job
        inputs = batch['inputs']
        return (f'loss {loss:.3f} on a toy batch of {len(inputs)} images ({_hw(inputs[0])} '
                f'before padding); {updated} of {len(before)} backbone tensors updated')


def check_backbone(model: str,
                   checks: Optional[Sequence[str]] = None,
                   **kwargs) -> List[CheckResult]:
    """Run the contract checks on zoo model ``model``; see :class:`BackboneChecker`."""
    return BackboneChecker(model, **kwargs).run(checks)
