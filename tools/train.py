"""Train a config of configs/ with mmengine's Runner.

    python tools/train.py configs/imagenet/dwconv_t_in1k.py
    python tools/train.py configs/coco/idynamic_t_maskrcnn.py --toy      # built-in toy data
    tools/dist_train.sh configs/ade20k/swin_t_upernet.py 8               # distributed

Inputs are checked before anything is written (one ``error:`` line, exit 2); a run ends with
``<work_dir>/result.json`` for the leaderboard.
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
    parser.add_argument('--work-dir', help='where to save logs and checkpoints')
    parser.add_argument('--toy', action='store_true', help='run on the built-in toy data')
    parser.add_argument(
        '--toy-data',
        help='toy dataset folder (default: data/toy/<task>, '
        'generated on first use; smaller ones with backbones.toy.ensure_toy_data)')
    parser.add_argument('--toy-pretrained', help='ImageNet checkpoint for a dense toy run')
    parser.add_argument('--amp', action='store_true', help='mixed precision (bf16 on the CPU)')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from a checkpoint, or (no value) from the newest good one '
        'of the work dir')
    parser.add_argument(
        '--auto-resume',
        action='store_true',
        help='resume from the newest good checkpoint of the work dir if there is '
        'one, else start')
    parser.add_argument(
        '--auto-scale-lr', action='store_true', help='scale the lr by actual / base batch size')
    parser.add_argument('--seed', type=int, default=None)
    parser.add_argument(
        '--deterministic',
        action='store_true',
        help='deterministic algorithms (with --seed: bit-identical reruns)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help='override config keys, xxx=yyy')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    from backbones.cli import build_runner, finish_distributed
    args = parse_args(argv)
    runner = build_runner(args, mode='train')
    runner.train()
    finish_distributed()
    return 0


if __name__ == '__main__':
    sys.exit(run_main(main, osp.basename(__file__)))
