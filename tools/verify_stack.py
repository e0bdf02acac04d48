"""Prove that the installed stack works: compiled mmcv ops, and one model built from the configs
shipped inside each of mmdet, mmseg and mmpretrain. Prints one line per check; exits non-zero
(naming what failed) if any fails. What the toolboxes print on the way (deprecation warnings,
default-scope notices) goes to the log file, not the console, unless ``--verbose``."""
import argparse
import contextlib
import io
import os
import sys
import time
import traceback
import warnings
from typing import Callable, List, Tuple

LOG = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), '.venv', 'verify_stack.log')


def check_mmcv_ops() -> str:
    import torch
    from mmcv.ops import RoIAlign, nms
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])
    _, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), iou_threshold=0.5)
    assert keep.tolist() == [0, 2], keep
    feats = torch.arange(64.).view(1, 1, 8, 8)
    out = RoIAlign((2, 2), spatial_scale=1., sampling_ratio=2)(feats,
                                                               torch.tensor([[0., 0., 0., 4., 4.]]))
    assert out.shape == (1, 1, 2, 2)
    return 'nms + RoIAlign ran'


def _build(scope: str, config: str) -> str:
    import importlib

    from mmengine.hub import get_config  # resolves 'scope::path' inside the installed package
    importlib.import_module(f'{scope}.utils').register_all_modules(init_default_scope=True)
    registry = importlib.import_module(f'{scope}.registry').MODELS
    model = registry.build(get_config(f'{scope}::{config}').model)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    return f'{type(model).__name__} from {scope}::{config} ({params:.1f}M params)'


def check_mmdet() -> str:
    return _build('mmdet', 'mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py')


def check_mmseg() -> str:
    return _build('mmseg', 'upernet/upernet_r50_4xb4-160k_ade20k-512x512.py')


def check_mmpretrain() -> str:
    return _build('mmpretrain', 'swin_transformer/swin-tiny_16xb64_in1k.py')


def check_backbones() -> str:
    import backbones
    from backbones.ops import cpu_kernels
    kernels = ('I-Dynamic CPU kernels built' if cpu_kernels.available() else
               f'I-Dynamic CPU kernels NOT built ({cpu_kernels.unavailable_reason()}): the slower '
               "'torch' path runs instead")
    return f'backbones imported ({len(backbones.MODEL_NAMES)} zoo models); {kernels}'


CHECKS: List[Tuple[str, Callable[[], str]]] = [('mmcv.ops', check_mmcv_ops), ('mmdet', check_mmdet),
                                               ('mmseg', check_mmseg),
                                               ('mmpretrain', check_mmpretrain),
                                               ('backbones', check_backbones)]


def run_quietly(check: Callable[[], str], log: io.TextIOBase) -> str:
    """Run a check with its warnings and prints sent to ``log``."""
    with warnings.catch_warnings(record=True) as caught, \
            contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        warnings.simplefilter('always')
        try:
            return check()
        finally:
            for w in caught:
                log.write(f'{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})\n')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--verbose', action='store_true', help='show the toolboxes\' output')
    parser.add_argument('--log', default=LOG, help=f'where their output goes (default {LOG})')
    args = parser.parse_args(argv)
    os.makedirs(os.path.dirname(os.path.abspath(args.log)), exist_ok=True)
    failed = []
    with open(args.log, 'w') as log:
        for name, check in CHECKS:
            start = time.time()
            log.write(f'--- {name}\n')
            try:
                detail = check() if args.verbose else run_quietly(check, log)
                print(f'[verify] ok   {name}: {detail} [{time.time() - start:.1f}s]')
            except Exception as exc:  # report every failure, then exit non-zero
                failed.append(name)
                print(f'[verify] FAIL {name}: {type(exc).__name__}: {exc}')
                traceback.print_exc(limit=3, file=sys.stderr)
    if failed:
        print(
            f'[verify] the stack is broken: {", ".join(failed)} failed (the toolboxes\' '
            f'output: {args.log})',
            file=sys.stderr)
        return 1
    if not args.verbose:
        print(f'[verify] the toolboxes\' warnings and notices: {args.log}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
