#!/usr/bin/env python
"""Speed and memory of the dynamic depth-wise operators (``--ops``, ``--dense``), the backbones
(``--models``) and the whole task models (``--tasks``).

    python tools/benchmark.py --ops                 # stage-1 shapes of the T models, fwd + bwd
    python tools/benchmark.py --dense --json        # the stage-1 op at 1280x800 and 512x2048
    python tools/benchmark.py --models --names swin_t dwconv_t idynamic_t --batch 8 --json
    python tools/benchmark.py --models --json --out work_dirs/benchmark/cpu_b8.json
    python tools/benchmark.py --tasks --names swin_t idynamic_t --out work_dirs/benchmark/tasks.json

Every case runs in a fresh subprocess, timed with ``torch.utils.benchmark.Timer`` (the mean of
``--repeats`` steps after at least 2 warm-up steps), then one more step measures the peak memory
(see harness/benchmark/measure.py). ``--rounds N`` runs all cases N times interleaved and takes
the median, so that ratios come from one run on a busy machine. ``--models`` and ``--tasks``
reports are ``{"records": [...], ...}`` objects whose records the leaderboard reads from
``work_dirs/benchmark/**/*.json``; ``--out`` writes the printed JSON atomically.

``--tasks`` on a 2-core CPU (batch 1, 2 warm-up + 2 timed steps): about 1 min per backbone for
the classifier, 2-4 min for Cascade Mask R-CNN at 1333x800, 1-2 min for UperNet at 512x2048.
"""
import argparse
import json
import os
import sys
from typing import List, Optional

import _bootstrap  # noqa: F401  # isort: skip  (quiet imports, the repository on sys.path)
from mmengine.config import DictAction

from harness.errors import ToolError, run_tool
from harness.tasks import TASKS

DEVICES = ('cpu', 'cuda')
#: (warm-up, repeats) defaults per mode
DEFAULTS = {'ops': (3, 10), 'dense': (2, 3), 'models': (2, 5), 'tasks': (2, 2)}
MODES = tuple(DEFAULTS)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument('--ops', action='store_true', help='operators at stage-1 shapes (fwd+bwd)')
    mode.add_argument('--dense', action='store_true', help='stage-1 op at dense-task sizes')
    mode.add_argument('--models', action='store_true', help='backbones')
    mode.add_argument('--tasks', action='store_true', help='whole task models (inference)')
    p.add_argument('--batch', type=int, help='batch size (default 8; --dense, --tasks: 1)')
    p.add_argument('--channels', type=int, default=96, help='--ops/--dense: C (default 96)')
    p.add_argument('--height', type=int, default=56, help='--ops: H (default 56)')
    p.add_argument('--width', type=int, default=56, help='--ops: W (default 56)')
    p.add_argument('--groups', type=int, default=32, help='--ops/--dense: kernel groups G')
    p.add_argument('--kernel', type=int, default=7, help='--ops/--dense: kernel size K')
    p.add_argument(
        '--sizes',
        nargs='+',
        metavar='HxW',
        help='--dense: input sizes (default: the dense tasks\' table settings)')
    p.add_argument('--names', nargs='+', help='--models/--tasks: zoo names (default: all)')
    p.add_argument(
        '--modes',
        nargs='+',
        default=['inference', 'train'],
        choices=['inference', 'train'],
        help='--models: what to measure')
    p.add_argument('--img-size', type=int, default=224, help='--models: input size')
    p.add_argument('--task-names', nargs='+', help=f'--tasks: of {", ".join(TASKS)} (default: all)')
    p.add_argument(
        '--scale', type=float, default=1.0, help='--tasks: image size factor (default 1)')
    p.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='--tasks: config overrides KEY=VALUE, e.g. model.test_cfg.rpn.nms_pre=100')
    p.add_argument(
        '--threads',
        type=int,
        default=os.cpu_count() or 1,
        help='torch intra-op threads (default: all cores)')
    p.add_argument('--repeats', type=int, help='timed steps (ops 10, dense 3, models 5, tasks 2)')
    p.add_argument(
        '--warmup', type=int, help='warm-up steps, at least 2 (ops 3, dense, models, tasks 2)')
    p.add_argument('--rounds', type=int, default=1, help='interleaved runs of every case')
    p.add_argument('--device', default='cpu', help=f'one of {", ".join(DEVICES)}')
    p.add_argument(
        '--dtype',
        default='float32',
        help='ops: tensor dtype; models, tasks: autocast dtype unless float32')
    p.add_argument('--timeout', type=float, default=1800, help='seconds per case')
    p.add_argument(
        '--fork-server',
        action='store_true',
        help='start the cases from a fork server (fast; for checking the plumbing: its times '
        'came out ~5-15%% slower than fresh processes)')
    p.add_argument('--json', action='store_true', help='print JSON instead of a table')
    p.add_argument('--out', help='also write the JSON to this file (atomically)')
    return p.parse_args(argv)


def _size(text: str) -> tuple:
    try:
        h, w = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise ToolError(f'--sizes: {text!r} is not HxW') from None
    if min(h, w) < 4:
        raise ToolError(f'--sizes: {text!r} is smaller than 4x4')
    return h, w


def check_args(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the defaults of the mode and reject bad input with a :class:`ToolError`."""
    from harness.benchmark import DTYPES
    mode = next(m for m in MODES if getattr(args, m))
    warmup, repeats = DEFAULTS[mode]
    args.mode = mode
    args.warmup = warmup if args.warmup is None else args.warmup
    args.repeats = repeats if args.repeats is None else args.repeats
    if args.batch is None:
        args.batch = 1 if mode in ('dense', 'tasks') else 8
    for name in ('batch', 'repeats', 'threads', 'rounds', 'channels', 'groups', 'img_size'):
        if getattr(args, name) < 1:
            raise ToolError(f'--{name.replace("_", "-")} must be >= 1, got {getattr(args, name)}')
    if args.warmup < 0 or args.scale <= 0 or args.timeout <= 0:
        raise ToolError('--warmup must be >= 0, --scale and --timeout > 0')
    if args.device not in DEVICES:
        raise ToolError(f'unknown device {args.device!r}; valid: {", ".join(DEVICES)}')
    if args.device == 'cuda':
        import torch
        if not torch.cuda.is_available():
            raise ToolError('--device cuda, but no CUDA device is visible')
    if args.dtype not in DTYPES:
        raise ToolError(f'unknown dtype {args.dtype!r}; valid: {", ".join(DTYPES)}')
    if args.channels % args.groups:
        raise ToolError(f'--groups {args.groups} must divide --channels {args.channels}')
    args.sizes = [_size(s) for s in args.sizes] if args.sizes else None
    if mode in ('models', 'tasks'):
        from backbones.zoo import MODEL_NAMES, get_model_info
        args.names = args.names or list(MODEL_NAMES)
        for name in args.names:
            try:
                get_model_info(name)
            except KeyError:
                raise ToolError(f'unknown model {name!r}; known: {", ".join(MODEL_NAMES)}') \
                    from None
    if mode == 'tasks':
        _check_tasks(args)
    return args


def _check_tasks(args: argparse.Namespace) -> None:
    from harness.configgen import model_config
    args.task_names = args.task_names or list(TASKS)
    for task in args.task_names:
        if task not in TASKS:
            raise ToolError(f'unknown task {task!r}; valid: {", ".join(TASKS)}')
        for name in args.names:
            path = model_config(name, TASKS[task].table_setting.key)
            if not path.is_file():
                raise ToolError(f'{path} missing: run tools/make_configs.py {name}')


def run(args: argparse.Namespace) -> dict:
    """Measure what ``args`` asks for and print it; returns the report."""
    from harness import benchmark as bench
    cfg = bench.RunConfig(
        args.device,
        args.dtype,
        args.threads,
        args.warmup,
        args.repeats,
        args.rounds,
        args.timeout,
        fork_server=args.fork_server)
    shape = bench.OpShape(args.batch, args.channels, args.height, args.width, args.groups,
                          args.kernel)
    if args.mode == 'ops':
        report, show = bench.bench_ops(cfg, shape), bench.print_ops
    elif args.mode == 'dense':
        report, show = bench.bench_dense(cfg, shape, args.sizes), bench.print_dense
    elif args.mode == 'models':
        report = bench.bench_models(cfg, args.names, args.modes, args.batch, args.img_size)
        show = bench.print_models
        if args.json:  # the ratios stay visible
            for line in bench.models.ratio_lines(report):
                print(line, file=sys.stderr)
    else:
        report = bench.bench_tasks(cfg, args.names, args.task_names, args.batch, args.scale,
                                   args.cfg_options)

        def show(rep):
            bench.print_records(
                rep['records'], f"task models, batch {rep['batch_size']}, {rep['dtype']}, "
                f"device={rep['device']}, threads={rep['threads']}, image scale {rep['scale']}")
            for key, err in rep['errors'].items():
                print(f'ERROR in {key}: {err}')

    if not args.json:
        show(report)
    return report


def main(argv: Optional[List[str]] = None) -> int:
    args = check_args(parse_args(argv))
    report = run(args)
    text = json.dumps(report, indent=2)
    if args.json:
        print(text)
    if args.out:
        from backbones.engine import atomic_write
        atomic_write(args.out, text + '\n')
    return 1 if report['errors'] or report.get('records') == [] else 0


if __name__ == '__main__':
    run_tool(main)
