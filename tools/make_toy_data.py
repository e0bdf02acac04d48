"""Generate the built-in toy datasets (ImageNet / COCO / ADE20K formats).

Usage: python tools/make_toy_data.py [--task all|imagenet|coco|ade20k]
                                     [--root data/toy] [--seed 0] [--force]
                                     [--size NAME=VALUE ...]
"""
import argparse
import json
import time
from pathlib import Path
from typing import Dict, List, Optional

import _bootstrap  # noqa: F401  # isort: skip  (the repository on sys.path)
from harness.errors import ToolError, first_line, run_tool
from harness.toy import TOY_DATASETS, ensure_toy_data, read_stamp


def parse_sizes(items: List[str]) -> Dict[str, int]:
    """``['NAME=VALUE', ...]`` as a dict of ints; :class:`ToolError` for a malformed item."""
    sizes = {}
    for item in items:
        name, sep, value = item.partition('=')
        if not sep or not value.strip().lstrip('-').isdigit():
            raise ToolError(f'--size {item!r} is not NAME=INTEGER')
        sizes[name.strip()] = int(value)
    return sizes


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--task', default='all', choices=['all', *TOY_DATASETS])
    parser.add_argument('--root', default='data/toy', help='parent folder of the datasets')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--force', action='store_true', help='regenerate even if up to date')
    parser.add_argument(
        '--size',
        nargs='+',
        default=[],
        metavar='NAME=VALUE',
        help='sizes of one --task, e.g. num_classes=4 (see DEFAULTS in harness/toy/<task>.py)')
    args = parser.parse_args(argv)
    sizes = parse_sizes(args.size)
    if sizes and args.task == 'all':
        raise ToolError('--size needs one --task (the tasks have different sizes)')
    if args.seed < 0:
        raise ToolError(f'--seed must be >= 0, got {args.seed}')
    tasks = list(TOY_DATASETS) if args.task == 'all' else [args.task]
    for task in tasks:  # all input checked before anything is written
        try:
            TOY_DATASETS[task].resolve_sizes(sizes)
        except (TypeError, ValueError) as exc:
            raise ToolError(first_line(exc)) from None
    for task in tasks:
        start = time.perf_counter()
        stamp_before = read_stamp(Path(args.root) / task)
        try:
            path = ensure_toy_data(task, args.root, seed=args.seed, force=args.force, **sizes)
        except OSError as exc:  # e.g. --root not writable, or a file
            raise ToolError(f'{task}: cannot write under {args.root}: {first_line(exc)}') from exc
        stamp = read_stamp(path) or {}
        fresh = args.force or stamp_before != stamp
        state = f'wrote in {time.perf_counter() - start:.1f}s' if fresh else 'up to date'
        print(f'{task}: {path} ({state}; seed {stamp.get("seed")}; '
              f'counts {json.dumps(stamp.get("counts"), sort_keys=True)})')
    return 0


if __name__ == '__main__':
    run_tool(main)
