"""Evaluate a checkpoint with a config of configs/ (real evaluators: mmpretrain Accuracy and
ReaL, mmdet CocoMetric, mmseg IoUMetric).

    python tools/test.py configs/imagenet/dwconv_t_in1k.py checkpoints/dwconv_t_in1k.pth
    python tools/test.py configs/ade20k/swin_t_upernet.py CKPT --tta      # multi-scale
    python tools/test.py configs/coco/idynamic_t_maskrcnn.py CKPT --toy
"""
import argparse
import os.path as osp
import sys
import warnings

import _bootstrap  # noqa: F401

# mmengine imports pkg_resources: keep its deprecation notice off the error stream
warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)
from backbones.cli import run_main  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where to save logs and the result record')
    parser.add_argument('--toy', action='store_true', help='evaluate on the built-in toy data')
    parser.add_argument('--toy-data', help='toy dataset folder (default: data/toy/<task>)')
    parser.add_argument('--tta', action='store_true', help='multi-scale / flip test')
    parser.add_argument('--seed', type=int, default=None)
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help='override config keys, xxx=yyy')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    from backbones.cli import build_runner, finish_distributed
    args = parse_args(argv)
    runner = build_runner(args, mode='test')
    runner.test()
    finish_distributed()
    return 0


if __name__ == '__main__':
    sys.exit(run_main(main, osp.basename(__file__)))
