"""Generate the built-in toy datasets (ImageNet / COCO / ADE20K formats).

Usage: python tools/make_toy_data.py [--task all|imagenet|coco|ade20k]
                                     [--root data/toy] [--seed 0] [--force]
"""
from __future__ import annotations
import argparse
import json
import sys
import time
from pathlib import Path
from typing import List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backbones.toy import TASKS, ensure_toy_data  # noqa: E402
from backbones.toy._common import read_stamp  # noqa: E402


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--task', default='all', choices=['all', *TASKS])
    parser.add_argument('--root', default='data/toy', help='parent folder of the datasets')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--force', action='store_true', help='regenerate even if up to date')
    args = parser.parse_args(argv)
    tasks = list(TASKS) if args.task == 'all' else [args.task]
    for task in tasks:
        start = time.perf_counter()
        stamp_before = read_stamp(Path(args.root) / task)
        path = ensure_toy_data(task, args.root, seed=args.seed, force=args.force)
        stamp = read_stamp(path) or {}
        fresh = args.force or stamp_before != stamp
        state = f'wrote in {time.perf_counter() - start:.1f}s' if fresh else 'up to date'
        print(f'{task}: {path} ({state}; seed {stamp.get("seed")}; '
              f'counts {json.dumps(stamp.get("counts"), sort_keys=True)})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
