"""The same ImageNet weights serve all three tasks: a classification checkpoint loads into the
backbone of every dense-task config through its ``init_cfg`` (Pretrained, prefix 'backbone.'),
every backbone parameter and buffer is taken from it (only the per-output norms that dense tasks
add are new), and the loaded backbone computes what the classifier's backbone computes."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from backbones.registry import MODELS
from harness.models import build_task_model
from harness.running import task_of
from harness.tasks import config_path

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
MODELS_T = ['swin_t', 'dwconv_t', 'ddwconv_t', 'idynamic_t']
DENSE = ['coco_cascade', 'ade20k']  # Mask R-CNN configs carry the same backbone dict


def _randomise(model: torch.nn.Module) -> None:
    """Make every parameter and BN statistic distinguishable from a fresh initialisation."""
    gen = torch.Generator().manual_seed(0)
    model.init_weights()
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                noise = torch.randn(t.shape, generator=gen) * 0.02
                t.copy_(t + noise.abs() if name.endswith('running_var') else t + noise)


@pytest.fixture(scope='module')
def classification_checkpoints(module_tmp):
    """model -> (path of a classification checkpoint, its backbone state dict)."""
    out = {}
    folder = module_tmp('cls')
    for model in MODELS_T:
        cfg = Config.fromfile(osp.join(ROOT, config_path(model, 'imagenet')))
        classifier = build_task_model(cfg.model.to_dict(), 'imagenet')
        _randomise(classifier)
        state = classifier.state_dict()
        path = folder / f'{model}_in1k.pth'
        torch.save(dict(state_dict=state, meta=dict(epoch=300)), path)
        backbone = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
        out[model] = (str(path), backbone, cfg.model.backbone.to_dict())
    return out


@pytest.mark.parametrize('key', DENSE)
@pytest.mark.parametrize('model', MODELS_T)
def test_classification_checkpoint_initialises_dense_backbone(model, key,
                                                              classification_checkpoints):
    path, cls_state, cls_backbone_cfg = classification_checkpoints[model]
    cfg = Config.fromfile(osp.join(ROOT, config_path(model, key)))
    assert cfg.model.backbone.init_cfg.prefix == 'backbone.'
    cfg.model.backbone.init_cfg.checkpoint = path
    dense = build_task_model(cfg.model.to_dict(), task_of(cfg), keep_init_cfg=True)
    dense.init_weights()
    state = dense.backbone.state_dict()

    not_loaded = [k for k in cls_state if k not in state]
    assert not not_loaded, f'classification keys with no place in the dense backbone: {not_loaded}'
    differs = [k for k in cls_state if not torch.equal(state[k], cls_state[k])]
    assert not differs, f'backbone keys not loaded from the checkpoint: {differs[:5]}'
    new = sorted({k.split('.')[0] for k in state if k not in cls_state})
    assert new == ['norm0', 'norm1', 'norm2'], new  # the extra outputs' norms, nothing else

    # the same computation: the classification backbone with four outputs (the three new norms
    # copied over) gives the same features at 224x224, where the dense DW-family backbones'
    # padding to a multiple of 7 is a no-op. Swin in dense tasks pads small maps to the window
    # and keeps shifting there, while the classifier stops shifting once the map is no larger
    # than the window (stage 4 at 224), so only its first three stages must agree.
    reference = MODELS.build(dict(cls_backbone_cfg, out_indices=(0, 1, 2, 3)))
    reference.load_state_dict(
        {
            **cls_state,
            **{
                k: v
                for k, v in state.items() if k not in cls_state
            }
        }, strict=True)
    # Compared in train mode with drop-path off: BN then normalises by the batch, because an
    # untrained D-DW-Conv in eval mode blows up (its kernel generator's BN sees pooled features
    # whose running variance across samples is tiny); the buffers were compared above.
    for net in (dense.backbone, reference):
        net.train()
        for m in net.modules():
            if hasattr(m, 'drop_prob'):
                m.drop_prob = 0.
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference(x)
        got = dense.backbone(x)
    assert len(got) == len(expected) == 4
    stages = 3 if model.startswith('swin') else 4
    for i in range(stages):
        torch.testing.assert_close(got[i], expected[i], rtol=1e-4, atol=1e-5)
