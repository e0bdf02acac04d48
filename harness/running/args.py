"""The command line of tools/train.py and tools/test.py (one parser, two modes)."""
import argparse
from typing import Optional, Sequence


def run_parser(mode: str, description: str) -> argparse.ArgumentParser:
    """The arguments of ``tools/train.py`` (``mode='train'``) or ``tools/test.py``
    (``'test'``): OpenMMLab's flags plus the harness's (``--toy``, ``--auto-resume``)."""
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config file')
    if mode == 'test':
        parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='where to save logs and ' + ('checkpoints' if mode == 'train' else 'the record'))
    parser.add_argument('--toy', action='store_true', help='run on the built-in toy data')
    parser.add_argument(
        '--toy-data',
        help='toy dataset folder (default: data/toy/<task>, generated on first use; smaller '
        'ones with tools/make_toy_data.py)')
    if mode == 'train':
        parser.add_argument('--toy-pretrained', help='ImageNet checkpoint for a dense toy run')
        parser.add_argument('--amp', action='store_true', help='mixed precision (bf16 on the CPU)')
        parser.add_argument(
            '--resume',
            nargs='?',
            type=str,
            const='auto',
            help='resume from a checkpoint, or (no value) from the newest good one of the '
            'work dir')
        parser.add_argument(
            '--auto-resume',
            action='store_true',
            help='resume from the newest good checkpoint of the work dir if there is one, '
            'else start')
        parser.add_argument(
            '--auto-scale-lr', action='store_true', help='scale the lr by actual / base batch')
        parser.add_argument(
            '--deterministic',
            action='store_true',
            help='deterministic algorithms (with --seed: bit-identical reruns)')
    else:
        parser.add_argument('--tta', action='store_true', help='multi-scale / flip test')
    parser.add_argument(
        '--seed', type=int, default=None, help='random seed (toy runs: 0 unless given)')
    parser.add_argument(
        '--dry-run',
        action='store_true',
        help='check the config, data roots and checkpoints, print the work dir and exit '
        '(the launchers run this once before starting their processes)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help='override config keys, xxx=yyy')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser


def run_main(mode: str, description: str, argv: Optional[Sequence[str]] = None) -> int:
    """The whole of ``tools/train.py`` (``mode='train'``) and ``tools/test.py`` (``'test'``):
    parse, check every input, then train / test (``--dry-run``: print the work dir and stop)."""
    from .distributed import finish_distributed
    from .runner import build_runner, prepare_config
    args = run_parser(mode, description).parse_args(argv)
    if args.dry_run:
        print(f'work_dir={prepare_config(args, mode)[0].work_dir}')
        return 0
    runner = build_runner(args, mode)
    if mode == 'train':
        runner.train()
    else:
        runner.test()
    finish_distributed()
    return 0
