"""Checks of the backbone in training: ``frozen_stages`` and ``norm_eval`` as mmdet / mmseg
fine-tuning expects them, a gradient for every parameter (DistributedDataParallel fails on
unused ones), and one optimizer step of each task config on toy data."""
import copy
import math
from typing import TYPE_CHECKING, List

import torch
import torch.nn as nn
from mmengine.utils.dl_utils.parrots_wrapper import _BatchNorm

from ..models import build_task_model, to_dict
from ..tasks import TASKS
from .common import CLS_INPUT, STRIDE_INPUT, ContractViolation, examples, hw, out_indices

if TYPE_CHECKING:
    from .checker import BackboneChecker

#: the stages ``frozen_stages`` freezes in its check: stem and stages 0-1
FROZEN = 1


def _mode_dependent(module: nn.Module) -> bool:
    """Layers that compute differently in train and eval mode."""
    return isinstance(module, (_BatchNorm, nn.modules.dropout._DropoutNd)) or \
        hasattr(module, 'drop_prob')


def check_frozen_stages(checker: 'BackboneChecker') -> str:
    """``frozen_stages=1``: stem and stages 0-1 frozen and in eval mode under ``train()``."""
    k = FROZEN
    base = checker.dense_backbone(frozen_stages=-1)
    base.train()
    frozen = checker.dense_backbone(frozen_stages=k)
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
        for n, m in frozen.get_submodule(part).named_modules() if _mode_dependent(m) and m.training
    ]
    if training:
        raise ContractViolation(
            f'after train(), {len(training)} layers of the frozen stages are in training '
            f'mode (e.g. {examples(training, 2)}): dropout / drop-path / BatchNorm statistics'
            ' still change them; put the frozen modules in eval mode in train()')
    outs = frozen(torch.randn(2, 3, *STRIDE_INPUT))
    for out, i in zip(outs, out_indices(frozen, len(outs))):
        if i <= k and out.requires_grad:
            raise ContractViolation(f'with frozen_stages={k}, output {i} still depends on '
                                    'trainable parameters')
        if i > k and not out.requires_grad:
            raise ContractViolation(f'frozen_stages={k} also froze stage {i}')
    return (f'frozen_stages={k} freezes {len(newly)} parameter tensors ({examples(parts, 6)}), '
            'which stay in eval mode under train(); outputs 2-3 still train')


def check_norm_eval(checker: 'BackboneChecker') -> str:
    """``norm_eval=True`` keeps every BatchNorm layer in eval mode under ``train()``."""
    backbone = checker.dense_backbone(norm_eval=True)
    backbone.train()
    norms = {n: m for n, m in backbone.named_modules() if isinstance(m, _BatchNorm)}
    if not norms:
        return 'no BatchNorm layer: nothing for norm_eval to keep in eval mode'
    training = [n for n, m in norms.items() if m.training]
    if training:
        raise ContractViolation(
            f'norm_eval=True, but after train() {len(training)} of {len(norms)} BatchNorm '
            f'layers are in training mode (e.g. {examples(training, 2)})')
    if not backbone.training:
        raise ContractViolation('norm_eval=True puts the whole backbone in eval mode, not '
                                'only its BatchNorm layers')
    stats = {n: m.running_mean.clone() for n, m in norms.items() if m.running_mean is not None}
    backbone(torch.randn(2, 3, *STRIDE_INPUT))
    changed = [n for n, v in stats.items() if not torch.equal(norms[n].running_mean, v)]
    if changed:
        raise ContractViolation(f'norm_eval=True, but a training-mode forward changes the '
                                f'running statistics of {examples(changed, 2)}')
    return (f'all {len(norms)} BatchNorm layers stay in eval mode under train() (running '
            'statistics unchanged), the rest trains')


def check_gradients(checker: 'BackboneChecker') -> str:
    """Every parameter gets a gradient, in the classifier and in the dense backbone."""
    # with drop-path, a block whose branch is dropped for the whole batch gets no gradient
    no_drop_path = dict(drop_path_rate=0.) if 'drop_path_rate' in checker.backbone_cfg else {}
    counts = []
    for what, build, shape in (('classification', checker.classification_backbone,
                                (1, 3, *CLS_INPUT)), ('dense-task', checker.dense_backbone,
                                                      (2, 3, *STRIDE_INPUT))):
        backbone = build(**no_drop_path)
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
                f'{examples(dead)} (unused parameters break DistributedDataParallel)')
        counts.append(f'{len(params)} in the {what} backbone')
    return 'gradients reach all parameter tensors: ' + ', '.join(counts)


def check_toy_step(checker: 'BackboneChecker', key: str) -> str:
    """One optimizer step of the config of setting ``key`` on a toy batch, through the real
    data pipeline (built as mmengine's Runner would build it)."""
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner

    from ..toy import ensure_toy_data
    from ..toy.adapt import toy_config
    task = checker.task_of(key)
    cfg = copy.deepcopy(checker.config(key))
    root = checker.toy_data.get(task) or ensure_toy_data(task, checker.toy_root)
    toy_config(cfg, task, data_root=str(root))
    model_cfg = to_dict(cfg.model)
    if cfg.get('data_preprocessor') is not None:  # what the Runner does
        model_cfg.setdefault('data_preprocessor', to_dict(cfg.data_preprocessor))
    model = build_task_model(model_cfg, task)  # SyncBN as BN, as the Runner on a CPU
    scope = TASKS[task].scope
    # the data pipeline and the losses find their transforms / utilities in the toolbox's scope
    with DefaultScope.overwrite_default_scope(scope):
        model.init_weights()
        model.train()
        loader = Runner.build_dataloader(to_dict(cfg.train_dataloader), seed=0)
        optim_wrapper = build_optim_wrapper(model, to_dict(cfg.optim_wrapper))
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
    return (f'loss {loss:.3f} on a toy batch of {len(inputs)} images ({hw(inputs[0])} '
            f'before padding); {updated} of {len(before)} backbone tensors updated')
