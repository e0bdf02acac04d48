"""Params and FLOPs of every model in every task setting of the paper's table, counted with
mmengine's FLOP analyzer on the models built from configs/ (see backbones/complexity.py for the
counting protocol).

    python tools/get_flops.py --all            # table with the paper's values beside ours
    python tools/get_flops.py --all --json     # [{"model", "task", "params_m", "gflops"}, ...]
    python tools/get_flops.py configs/coco/dwconv_t_maskrcnn.py   # any config
"""
import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import List, Optional

import _bootstrap  # noqa: F401

from backbones import zoo
from backbones.complexity import TASK_INPUT_HW, task_complexity
from backbones.configgen import TABLE_TEMPLATE, TEMPLATES, config_path
from backbones.paper import paper_complexity

TASKS = list(TASK_INPUT_HW)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('configs', nargs='*', help='config files to count')
    parser.add_argument('--all', action='store_true', help='all zoo models x all tasks')
    parser.add_argument('--models', nargs='+', help='zoo names (default with --all: all)')
    parser.add_argument('--tasks', nargs='+', choices=TASKS, default=TASKS)
    parser.add_argument('--json', action='store_true', help='print JSON records')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        metavar=('H', 'W'),
        help='input size instead of the task setting')
    return parser.parse_args(argv)


def task_of_config(path: Path) -> str:
    for template in TEMPLATES.values():
        if path.name.endswith(f'_{template.suffix}.py') and path.parent.name == template.task:
            return template.task
    raise ValueError(f'{path}: cannot tell the task (expected configs/<task>/<model>_<suffix>.py)')


def measure(path: Path, task: str, shape: Optional[tuple]) -> dict:
    from mmengine.config import Config
    cfg = Config.fromfile(str(path))
    result = task_complexity(cfg.model.to_dict(), task, shape)
    return dict(
        config=str(path),
        task=task,
        params_m=round(result.params_m, 3),
        gflops=round(result.gflops, 3),
        input_hw=list(shape or TASK_INPUT_HW[task]))


def format_table(records: List[dict]) -> str:
    head = (f'{"model":<12} {"task":<9} {"params(M)":>10} {"paper":>7} {"d%":>6} '
            f'{"GFLOPs":>9} {"paper":>7} {"d%":>6}')
    lines = [head, '-' * len(head)]
    for r in records:
        ref = paper_complexity(r.get('model', ''), r['task'])

        def cell(value, key):
            if ref is None:
                return f'{"-":>7} {"":>6}'
            return f'{ref[key]:>7g} {100 * (value - ref[key]) / ref[key]:>+6.1f}'

        lines.append(f'{r.get("model", r["config"]):<12} {r["task"]:<9} {r["params_m"]:>10.2f} '
                     f'{cell(r["params_m"], "params_m")} {r["gflops"]:>9.2f} '
                     f'{cell(r["gflops"], "gflops")}')
    return '\n'.join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    jobs = []
    for cfg in args.configs:
        path = Path(cfg)
        if not path.is_file():
            print(f'error: config not found: {path}', file=sys.stderr)
            return 2
        jobs.append((path, task_of_config(path), None))
    if args.all or args.models:
        for model in args.models or zoo.MODEL_NAMES:
            for task in args.tasks:
                path = config_path(model, TABLE_TEMPLATE[task])
                if not path.is_file():
                    print(
                        f'error: {path} missing: run tools/make_configs.py {model}',
                        file=sys.stderr)
                    return 2
                jobs.append((path, task, model))
    if not jobs:
        print('error: give configs, --models or --all', file=sys.stderr)
        return 2
    records = []
    for path, task, model in jobs:
        # the toolboxes log to stdout; keep stdout for the table / JSON
        with contextlib.redirect_stdout(sys.stderr):
            record = measure(path, task, tuple(args.shape) if args.shape else None)
        if model:
            record = dict(model=model, **record)
        records.append(record)
        if not args.json:
            print(
                f'counted {path} ({record["params_m"]:.2f}M, {record["gflops"]:.2f}G)',
                file=sys.stderr)
    print(json.dumps(records, indent=1) if args.json else format_table(records))
    return 0


if __name__ == '__main__':
    sys.exit(main())
