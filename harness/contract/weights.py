"""Checks of the backbone's weights: the ImageNet classifier's checkpoint initialises the
dense-task backbones, and the FLOP counter can count the models (params/FLOPs as the
leaderboard records them)."""
import re
from typing import TYPE_CHECKING, Dict, Tuple

import torch

from backbones.ops import FLOP_HANDLES
from ..checkpoints import compare_keys
from ..complexity import count, task_complexity
from ..models import build_in_scope, build_task_model, to_dict
from ..tasks import TASKS
from .common import CLS_TASK, STRIDE_INPUT, ContractViolation, examples

if TYPE_CHECKING:
    from .checker import BackboneChecker

#: the per-output norms a dense backbone adds to the classification one
OUTPUT_NORM = re.compile(r'^norm\d+\.')


def quick_flop_inputs() -> Dict[str, Tuple[int, int]]:
    """(H, W) per task of the backbone-only FLOP count of ``quick`` mode: the classifier's
    input, and the dense tasks' at toy scale (1280x800 and 2048x512 / 4)."""
    inputs = {}
    for name, task in TASKS.items():
        scale = 1 if name == CLS_TASK else task.toy_scale
        inputs[name] = (round(task.input_hw[0] * scale), round(task.input_hw[1] * scale))
    return inputs


def check_checkpoint(checker: 'BackboneChecker') -> str:
    """The ImageNet classifier's weights load into each dense-task backbone through its
    ``init_cfg`` (Pretrained, prefix ``backbone.``); only the output norms are new."""
    from mmengine.runner.checkpoint import save_checkpoint
    classifier = build_task_model(to_dict(checker.config(CLS_TASK).model), CLS_TASK)
    # random values: a loaded tensor must be told apart from a freshly initialised one
    state = {
        k: torch.rand_like(v) if v.is_floating_point() else v
        for k, v in classifier.state_dict().items()
    }
    path = checker.tmp / 'classifier.pth'
    save_checkpoint(dict(state_dict=state, meta=dict()), str(path))
    source = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
    loaded = []
    for key in checker.dense_keys():
        cfg = checker.backbone_cfg_of(key)
        cfg['init_cfg'] = dict(cfg.get('init_cfg') or {}, checkpoint=str(path))
        dense = build_in_scope(cfg, TASKS[checker.task_of(key)].scope)
        dense.init_weights()
        own = dense.state_dict()
        diff = compare_keys(own, source, ignore_missing=lambda k: bool(OUTPUT_NORM.match(k)))
        not_loaded = [
            k for k in source
            if k in own and k not in diff.shapes and not torch.equal(own[k], source[k])
        ]
        problems = [
            f'{len(keys)} keys {what}: {examples(keys, 3)}' for what, keys in (
                ('missing from the checkpoint', diff.missing),
                ('of the checkpoint unused', diff.unexpected), ('with another shape', diff.shapes),
                ('not loaded by init_weights() (does it re-initialise after loading?)', not_loaded))
            if keys
        ]
        if problems:
            raise ContractViolation(f'the ImageNet checkpoint does not fit the {key} '
                                    f'backbone: {"; ".join(problems)}')
        loaded.append(key)
        added = sorted({k.split('.')[0] for k in own if k not in source})
    return (f'{len(source)} backbone tensors of the ImageNet classifier load into the '
            f'{", ".join(loaded)} backbones via init_cfg (Pretrained, prefix "backbone."); '
            f'only the output norms are new: {", ".join(added) or "none"}')


def check_complexity(checker: 'BackboneChecker') -> str:
    """Params/FLOPs in each task's table setting: of the task models at full scale (the
    numbers of the leaderboard), or with ``quick`` of the backbone alone at each task's toy
    scale; a custom autograd function without a FLOP handle fails the check."""
    dense = checker.dense_backbone().eval()
    # quick: the numbers; full: only a cheap trace for the check of custom ops below
    dense_task = checker.task_of(checker.dense_keys()[0])
    inputs = quick_flop_inputs() if checker.quick else {dense_task: STRIDE_INPUT}
    counts = {}
    for task, size in inputs.items():
        backbone = checker.classification_backbone().eval() if task == CLS_TASK else dense
        counts[task] = count(backbone, (torch.randn(1, 3, *size), ))
        # a custom autograd function of the backbone counts zero FLOPs without a handle
        custom = sorted(op for op in counts[task].unsupported_ops
                        if op.startswith('prim::PythonOp') and op not in FLOP_HANDLES)
        if custom:
            raise ContractViolation(
                f'the FLOP counter has no handle for {", ".join(custom)}: add one to '
                'backbones.ops.FLOP_HANDLES, or these ops count zero FLOPs')
    if checker.quick:
        cells = [f'{c.gflops:.2f}G at {"x".join(map(str, inputs[t]))}' for t, c in counts.items()]
        return (f'backbone alone at toy scale (--quick): {counts[CLS_TASK].params_m:.2f}M '
                f'params, {", ".join(cells)}')
    # imported here: harness.records imports harness.running, which imports it back
    from ..records import full_scale_complexity
    cells = []
    for name, task in TASKS.items():
        key = task.table_setting.key
        cfg = checker.config(key)
        result = full_scale_complexity(cfg, name, checker.cache_dir)
        if result.get('params_m') is None:  # it logged and swallowed the error: raise it
            task_complexity(to_dict(cfg.model), name)
            raise ContractViolation(f'params/FLOPs of the {key} model cannot be counted')
        cells.append(f'{key} {result["params_m"]:.1f}M {result["gflops"]:.1f}G')
    return 'task models in the table\'s settings: ' + ', '.join(cells)
