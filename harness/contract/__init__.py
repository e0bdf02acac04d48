"""The backbone contract as executable checks: what a backbone must do to go through the tasks of
the benchmark (ImageNet classifier, Mask R-CNN / Cascade Mask R-CNN, UperNet) and onto the
leaderboard, verified on the CPU in a minute or two, before anyone spends GPU hours on it.

``tools/check_backbone.py`` is the command line; :class:`BackboneChecker` the library;
:mod:`.submission` reads a submission's ``--import`` / ``--backbone``. The checks, by theme:
:mod:`.structure` (build, configs, outputs, input_sizes), :mod:`.training` (frozen_stages,
norm_eval, gradients, toy_step), :mod:`.weights` (checkpoint, complexity).

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
- the FLOP counter of :mod:`harness.complexity` can count it (custom autograd functions need a
  handle in ``backbones.ops.FLOP_HANDLES``), and one training step of each task config runs on
  toy data.

By default params/FLOPs are counted as the leaderboard records them (the task models in the
table's settings, cached under ``work_dirs/.cache`` where ``tools/train.py`` finds them);
``quick`` counts the backbone alone, which takes seconds.
"""
from .checker import CHECKS, BackboneChecker, check_backbone, default_settings
from .common import CheckResult, ContractViolation
from .submission import import_backbone_module, parse_backbone_literal, register_submission

__all__ = [
    'CHECKS', 'BackboneChecker', 'CheckResult', 'ContractViolation', 'check_backbone',
    'default_settings', 'import_backbone_module', 'parse_backbone_literal', 'register_submission'
]
