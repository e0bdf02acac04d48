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
