"""Each fix of backbones/compat.py, with a test that fails without it."""
import os
import pickle
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.runner import Runner

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _TinyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, inputs, labels=None, mode='tensor'):
        out = self.fc(torch.stack(inputs) if isinstance(inputs, list) else inputs)
        if mode == 'loss':
            return dict(loss=nn.functional.cross_entropy(out, torch.stack(labels)))
        return out


class _Data(torch.utils.data.Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return dict(inputs=torch.randn(4, generator=g), labels=torch.tensor(i % 2))


def _runner(work_dir, epochs, resume=False):
    return Runner(
        model=_TinyModel(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=_Data(),
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=4,
            num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=True, max_epochs=epochs),
        resume=resume,
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
        randomness=dict(seed=0))


def test_mmengine_resume_checkpoint_loads_with_weights_only(tmp_path):
    _runner(tmp_path, 1).train()
    ckpt = tmp_path / 'epoch_1.pth'
    # The checkpoint holds mmengine's message hub and numpy values: without the allow-list,
    # torch>=2.6 refuses it (checked in a fresh interpreter that does not import backbones).
    code = (f'import torch, sys\ntry:\n    torch.load({str(ckpt)!r}, weights_only=True)\n'
            'except Exception as e:\n    print(type(e).__name__); sys.exit(3)\n')
    plain = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert plain.returncode == 3, 'torch accepts it without the fix: is the fix still needed?'
    state = torch.load(ckpt, weights_only=True)  # backbones is imported (conftest)
    assert 'message_hub' in state and 'optimizer' in state
    runner = _runner(tmp_path, 2, resume=True)
    runner.train()  # mmengine's own resume path
    assert runner.epoch == 2


def test_a_malicious_pickle_is_refused(tmp_path):
    from harness.checkpoints import load_weights
    from harness.errors import ToolError
    marker = tmp_path / 'pwned'

    class Evil:

        def __reduce__(self):
            return (os.system, (f'touch {marker}', ))

    path = tmp_path / 'evil.pth'
    with open(path, 'wb') as f:
        pickle.dump({'state_dict': {'w': torch.zeros(1)}, 'x': Evil()}, f)
    with pytest.raises(ToolError, match='refused'):
        load_weights(str(path))
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    assert not marker.exists()
