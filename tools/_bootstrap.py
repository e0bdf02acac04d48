"""Make ``import backbones, harness`` work when a tool is run from a checkout without
installing it, and keep mmengine's pkg_resources deprecation notice off the error stream."""
import os
import sys
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)
