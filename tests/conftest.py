import os
import sys

import pytest
import torch

# The repository root must win over site-packages: mmseg installs a top-level ``tests`` package
# and the ``tools`` scripts are imported by path in some tests.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import backbones  # noqa: E402,F401  (registers everything)


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture(autouse=True)
def _isolated_default_scope():
    """A test that builds a Runner leaves mmengine's current DefaultScope behind (e.g.
    'mmengine'), and later bare builds would look in that registry; undo it after each test."""
    from mmengine.registry import DefaultScope
    before = DefaultScope._instance_dict.copy()
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(before)
