"""Every config in configs/ (and in the submissions' own folders, contrib/*/configs/) builds
(model, datasets, optimizer) and carries the paper's recipe."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

from backbones.ops import shape_only
from backbones.zoo import PAPER_MODELS
from harness.configgen import model_config, render_config, settings_for
from harness.models import build_task_model
from harness.running.config import task_of
from harness.tasks import identify, iter_settings

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: small models: one thread is as fast on an idle machine and far faster on a busy one
pytestmark = pytest.mark.usefixtures('one_thread')
PAPER_CONFIGS = [
    c for c in sorted(glob.glob(osp.join(ROOT, 'configs', '*', '*.py'))) if '_base_' not in c
]
CONFIGS = PAPER_CONFIGS + sorted(glob.glob(osp.join(ROOT, 'contrib', '*', 'configs', '*', '*.py')))
#: the settings of the paper's second table (ImageNet-22k), written for some models only
IN22K_SETTINGS = [s.key for _, s in iter_settings() if not s.default]


def test_every_zoo_model_has_every_task_config_and_they_are_up_to_date(meta_weights):
    expected = set()
    for model in PAPER_MODELS:
        for key in settings_for(model):
            path = osp.join(ROOT, model_config(model, key))
            expected.add(path)
            assert osp.isfile(path), path
            with meta_weights():  # the generator builds the backbone for its num_features
                text = render_config(model, key)
            with open(path) as f:
                assert f.read() == text, f'{path} is stale: run tools/make_configs.py --all'
    paper_configs = {c for c in CONFIGS if identify(c)[0] in PAPER_MODELS}
    assert paper_configs == expected
    # configs/ holds the paper's models only: a submission's configs live in its own folder
    assert set(PAPER_CONFIGS) == expected
    # the second table: ImageNet-22k configs for the B models only
    in22k_models = [m for m in PAPER_MODELS if set(IN22K_SETTINGS) <= set(settings_for(m))]
    assert sorted(in22k_models) == ['ddwconv_b', 'dwconv_b', 'idynamic_b', 'swin_b']
    assert not any(k in settings_for('swin_t') for k in IN22K_SETTINGS)


def _find(node, type_name):
    """All transform dicts of ``type_name`` anywhere in a (nested) pipeline."""
    if isinstance(node, dict):
        found = [node] if node.get('type') == type_name else []
        return found + [f for v in node.values() for f in _find(v, type_name)]
    if isinstance(node, (list, tuple)):
        return [f for v in node for f in _find(v, type_name)]
    return []


def check_imagenet_recipe(cfg, size):
    assert cfg.train_cfg.max_epochs == 300
    warmup, cosine = cfg.param_scheduler
    assert warmup.type == 'LinearLR' and warmup.end == 20 and warmup.by_epoch
    assert cosine.type == 'CosineAnnealingLR' and cosine.eta_min == 1e-5
    total_batch = cfg.train_dataloader.batch_size * 16
    assert total_batch == 1024 == cfg.auto_scale_lr.base_batch_size
    opt = cfg.optim_wrapper.optimizer
    assert opt.type == 'AdamW' and opt.lr == pytest.approx(5e-4 * total_batch / 512)
    assert opt.weight_decay == 0.05 and cfg.optim_wrapper.clip_grad.max_norm == 5.0
    pw = cfg.optim_wrapper.paramwise_cfg
    assert pw.norm_decay_mult == 0 and pw.bias_decay_mult == 0
    assert '.relative_position_bias_table' in pw.custom_keys
    augments = {a.type: a.alpha for a in cfg.model.train_cfg.augments}
    assert augments == {'Mixup': 0.8, 'CutMix': 1.0}
    rand_aug, = _find(cfg.train_pipeline, 'RandAugment')
    assert rand_aug.magnitude_level == 9 and rand_aug.magnitude_std == 0.5
    erase, = _find(cfg.train_pipeline, 'RandomErasing')
    assert erase.erase_prob == 0.25
    assert cfg.model.head.loss.type == 'LabelSmoothLoss'
    assert cfg.model.head.loss.label_smooth_val == 0.1
    assert [e.type for e in cfg.val_evaluator] == ['Accuracy', 'ReaLAccuracy']
    assert cfg.model.backbone.drop_path_rate == {'t': 0.2, 'b': 0.5}[size]


def check_in22k_recipe(cfg, size):
    assert size == 'b' and cfg.train_cfg.max_epochs == 90
    assert cfg.model.head.num_classes == 21841 == cfg.data_preprocessor.num_classes
    assert cfg.train_dataloader.dataset.type == 'ImageNet21k'
    assert cfg.train_dataloader.batch_size * 64 == 4096 == cfg.auto_scale_lr.base_batch_size
    opt = cfg.optim_wrapper.optimizer
    assert opt.lr == pytest.approx(1.25e-4 * 4096 / 512) and opt.weight_decay == 0.05
    warmup, cosine = cfg.param_scheduler
    assert warmup.end == 5 and cosine.begin == 5 and cosine.eta_min == pytest.approx(1e-5)
    assert cfg.model.backbone.drop_path_rate == 0.2
    assert 'init_cfg' not in cfg.model.backbone


def check_in22k_ft_recipe(cfg, size):
    assert size == 'b' and cfg.train_cfg.max_epochs == 30
    assert cfg.model.head.num_classes == 1000
    opt = cfg.optim_wrapper.optimizer
    assert opt.lr == pytest.approx(2e-5 * 1024 / 512) and opt.weight_decay == 1e-8
    warmup, cosine = cfg.param_scheduler
    assert warmup.end == 5 and cosine.eta_min == pytest.approx(4e-7)
    assert cfg.model.backbone.drop_path_rate == 0.2
    init = cfg.model.backbone.init_cfg
    assert init.type == 'Pretrained' and init.checkpoint.endswith('_b_in22k.pth')
    assert init.prefix == 'backbone.'
    assert [e.type for e in cfg.val_evaluator] == ['Accuracy', 'ReaLAccuracy']


def check_upernet_in22k_recipe(cfg, size):
    check_upernet_recipe(cfg, size)
    assert cfg.model.backbone.init_cfg.checkpoint.endswith('_b_in22k.pth')


def check_cascade_recipe(cfg, size):
    heads = cfg.model.roi_head.bbox_head
    assert cfg.model.type == 'CascadeRCNN' and len(heads) == 3
    for head in heads:
        assert head.type == 'Shared4Conv1FCBBoxHead' and head.norm_cfg.type == 'SyncBN'
        assert head.loss_bbox.type == 'GIoULoss' and head.loss_bbox.loss_weight == 10.0
        assert head.reg_decoded_bbox
    crop, = _find(cfg.train_pipeline, 'RandomCrop')
    assert crop.crop_size == (384, 600)
    scales = [s for r in _find(cfg.train_pipeline, 'RandomChoiceResize') for s in r.scales]
    assert min(s[0] for s in scales) == 400 and max(s[0] for s in scales) == 800
    assert {s[1] for s in scales} == {1333}
    check_dense_optim(cfg, lr=1e-4, wd=0.05)
    assert cfg.train_cfg.max_epochs == 36
    assert cfg.param_scheduler[1].milestones == [27, 33]
    assert cfg.train_dataloader.batch_size == 2
    assert cfg.model.backbone.drop_path_rate == {'t': 0.2, 'b': 0.3}[size]


def check_maskrcnn_recipe(cfg, size):
    assert cfg.model.type == 'MaskRCNN'
    check_dense_optim(cfg, lr=1e-4, wd=0.05)
    assert cfg.train_cfg.max_epochs == 12
    assert cfg.param_scheduler[1].milestones == [8, 11]


def check_upernet_recipe(cfg, size):
    head, aux = cfg.model.decode_head, cfg.model.auxiliary_head
    assert head.type == 'UPerHead' and head.channels == 512
    assert tuple(head.pool_scales) == (1, 2, 3, 6) and head.num_classes == 150
    assert aux.type == 'FCNHead' and aux.loss_decode.loss_weight == 0.4
    assert cfg.train_cfg.max_iters == 160000
    assert cfg.crop_size == (512, 512)
    check_dense_optim(cfg, lr=6e-5, wd=0.01)
    warmup, poly = cfg.param_scheduler
    assert warmup.end == 1500 and poly.type == 'PolyLR' and poly.power == 1.0
    assert cfg.train_dataloader.batch_size == 2
    assert cfg.model.backbone.drop_path_rate == 0.3
    assert 'tta_pipeline' in cfg and 'tta_model' in cfg  # multi-scale test


def check_dense_optim(cfg, lr, wd):
    opt = cfg.optim_wrapper.optimizer
    assert opt.type == 'AdamW' and opt.lr == lr and opt.weight_decay == wd
    assert cfg.optim_wrapper.paramwise_cfg.norm_decay_mult == 0
    backbone = cfg.model.backbone
    assert backbone.out_indices == (0, 1, 2, 3)
    assert backbone.init_cfg.type == 'Pretrained' and backbone.init_cfg.prefix == 'backbone.'
    if backbone.type != 'SwinNet':
        assert backbone.norm_cfg.type == 'SyncBN' and backbone.pad_to_multiple == 7
    else:
        assert backbone.pad_small_map


CHECKS = {
    'imagenet': check_imagenet_recipe,
    'coco_cascade': check_cascade_recipe,
    'coco_maskrcnn': check_maskrcnn_recipe,
    'ade20k': check_upernet_recipe,
    'imagenet_in22k': check_in22k_recipe,
    'imagenet_in22k_ft': check_in22k_ft_recipe,
    'ade20k_in22k': check_upernet_in22k_recipe
}


@pytest.mark.parametrize('path', CONFIGS, ids=[osp.relpath(c, ROOT) for c in CONFIGS])
def test_config_builds_and_has_the_recipe(path, meta_weights):
    cfg = Config.fromfile(path)
    model_name, key = identify(path)
    assert key is not None, f'{path} does not follow configs/<task>/<model>_<suffix>.py'
    task = task_of(cfg)
    CHECKS[key](cfg, model_name.rsplit('_', 1)[-1])

    # the whole task model, on the meta device: classes, arguments and shapes are checked, the
    # weights are neither initialised nor computed with (the backbones' values are
    # test_backbones.py's, the task models' the toy runs')
    with meta_weights():
        model = build_task_model(cfg.model.to_dict(), task)
    model.to('meta')
    with torch.no_grad(), shape_only():
        size = 224 if task == 'imagenet' else 64  # a classifier's Swin needs maps >= window
        feats = model.extract_feat(torch.empty(1, 3, size, size, device='meta'))
    if task == 'imagenet':  # pooled by the neck
        assert [tuple(f.shape) for f in feats] == [(1, cfg.model.head.in_channels)]
    else:  # FPN's maps, or the backbone's for UperNet, at strides 4, 8, 16, ...
        channels = [cfg.model.neck.out_channels] * cfg.model.neck.num_outs \
            if 'neck' in cfg.model else list(cfg.model.decode_head.in_channels)
        assert [tuple(f.shape) for f in feats] == [(1, c, size // 4 // 2**i, size // 4 // 2**i)
                                                   for i, c in enumerate(channels)]
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    decays = {id(p): g['weight_decay'] for g in wrapper.optimizer.param_groups for p in g['params']}
    assert set(decays) == {id(p) for p in model.parameters() if p.requires_grad}
    norms = [
        p for m in model.modules()
        if isinstance(m, (torch.nn.LayerNorm, torch.nn.modules.batchnorm._BatchNorm))
        for p in m.parameters()
    ]
    assert norms and all(decays[id(p)] == 0 for p in norms)

    from mmengine.registry import DATASETS, DefaultScope
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        for loader in ('train_dataloader', 'val_dataloader'):
            ds_cfg = cfg[loader].dataset.copy()
            ds_cfg.lazy_init = True  # data are not on this machine: check type and arguments
            dataset = DATASETS.build(ds_cfg)
            assert dataset.pipeline is not None
