"""The benchmark grid: plan, submit, chain and collect every run of the comparison table.

    python tools/grid.py plan --models swin_t dwconv_t --tasks imagenet coco ade20k
    python tools/grid.py submit --launcher slurm --partition gpu --sbatch-args="--time=3-0 --qos=Q"
    python tools/grid.py status                     # one line per run; exit 0 when all are done
    python tools/grid.py submit --launcher local --toy --models dwconv_t --wait   # this machine
    python tools/grid.py calibrate --launcher slurm --partition gpu --iters 20    # -> s/iter

The DAG: ImageNet pre-training of each model, then the table's COCO (Cascade Mask R-CNN 3x)
and ADE20K (UperNet) runs initialised from its checkpoint; ``--settings all`` adds every
setting written for a model (ImageNet-22k pre-training and its fine-tunes for the B models).
``submit`` gives each run one ``sbatch`` job, ``--dependency=afterok:<parent job>``, logs in
its work dir (``grid-<job>.log``); runs with a ``result.json`` are skipped, a queued run is not
submitted twice, an interrupted one resumes from its newest checkpoint; a last job regenerates
the leaderboard (``<work-dirs>/leaderboard``) once all succeeded. Scheduling, queues, requeue
and limits stay Slurm's: partition, account, QoS and time limit are yours to pass.
"""
import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import List, Optional

import _bootstrap  # noqa: F401  # isort: skip  (the repository on sys.path)
from harness.errors import ToolError, run_tool

PLAN_FILE = 'grid_plan.json'
#: plan arguments a submission records, so that ``status --work-dirs DIR`` knows the grid
PLAN_KEYS = ('models', 'tasks', 'settings', 'toy', 'gpus_per_job')


def add_plan_args(parser: argparse.ArgumentParser) -> None:
    from harness.tasks import TASKS
    parser.add_argument(
        '--models',
        nargs='+',
        help='zoo names (default: the paper\'s eight, or '
        f'those of the submission recorded in <work-dirs>/{PLAN_FILE})')
    parser.add_argument('--tasks', nargs='+', choices=list(TASKS), help='default: all')
    parser.add_argument(
        '--settings',
        choices=['table', 'all'],
        help="table: each task's setting of the paper's table (default); all: every setting "
        'written for the model (ImageNet-22k and its fine-tunes for the B models)')
    parser.add_argument(
        '--work-dirs', help='root of the work dirs (default: work_dirs, work_dirs/toy)')
    parser.add_argument('--toy', action='store_true', default=None, help='toy runs')
    parser.add_argument(
        '--gpus-per-job',
        type=int,
        help='processes per run (default: total batch / batch per GPU of the config; 1 with '
        '--toy)')
    parser.add_argument(
        '--calibration',
        help='work dirs of `calibrate` runs to read s/iter from (default: <work-dirs>'
        '_calibration)')


def add_launch_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--launcher', choices=['slurm', 'local'], default='slurm')
    parser.add_argument('--partition', help='Slurm partition (default: the cluster\'s)')
    parser.add_argument('--gpus-per-node', type=int, default=8)
    parser.add_argument('--cpus-per-task', type=int, default=5)
    parser.add_argument(
        '--gres',
        help="GRES per node (default gpu:<processes on the node>; '' on a CPU partition: gloo)")
    parser.add_argument(
        '--sbatch-args',
        default='',
        help='more sbatch options, one string: --sbatch-args="--account=A --qos=Q --time=2-0"')
    parser.add_argument('--srun-args', default='', help='more srun options for the job step')
    parser.add_argument('--toy-data', help='folder with one toy dataset per task (<dir>/<task>)')
    parser.add_argument('--seed', type=int)
    parser.add_argument('--deterministic', action='store_true')
    parser.add_argument('--amp', action='store_true')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        default=[],
        metavar='[TASK:]KEY=VALUE',
        help='config overrides for every run, or for the runs of one task / setting '
        '(imagenet:train_cfg.max_epochs=1)')
    parser.add_argument('--python', default=sys.executable, help='interpreter of the runs')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='command', required=True)
    plan = sub.add_parser('plan', help='print the DAG of runs with their cost')
    add_plan_args(plan)
    submit = sub.add_parser('submit', help='submit the runs that are not done')
    add_plan_args(submit)
    add_launch_args(submit)
    submit.add_argument('--wait', action='store_true', help='wait until every job has ended')
    submit.add_argument('--poll', type=float, default=30, help='seconds between checks (--wait)')
    submit.add_argument('--no-leaderboard', action='store_true')
    status = sub.add_parser('status', help='one line per run; exit 0 only when all are done')
    add_plan_args(status)
    calibrate = sub.add_parser(
        'calibrate', help='short runs that measure s/iter for the cost column of `plan`')
    add_plan_args(calibrate)
    add_launch_args(calibrate)
    calibrate.add_argument('--iters', type=int, default=20, help='iterations per run')
    calibrate.add_argument('--wait', action='store_true')
    calibrate.add_argument('--poll', type=float, default=30)
    return parser.parse_args(argv)


def resolve_plan_args(args: argparse.Namespace) -> None:
    """Fill what the command line left out from the recorded submission, then defaults."""
    from backbones.zoo import PAPER_MODELS
    from harness.grid.plan import default_work_dirs
    from harness.tasks import TASKS
    work_dirs = Path(args.work_dirs) if args.work_dirs else default_work_dirs(bool(args.toy))
    recorded = {}
    if (work_dirs / PLAN_FILE).is_file():
        recorded = json.loads((work_dirs / PLAN_FILE).read_text())
    for key in PLAN_KEYS:
        if getattr(args, key) is None and key in recorded:
            setattr(args, key, recorded[key])
    args.models = args.models or list(PAPER_MODELS)
    args.tasks = args.tasks or list(TASKS)
    args.settings = args.settings or 'table'
    args.toy = bool(args.toy)
    args.work_dirs = str(work_dirs)
    if args.calibration is None:
        args.calibration = str(work_dirs).rstrip('/') + '_calibration'
    if args.gpus_per_job is not None and args.gpus_per_job < 1:
        raise ToolError('--gpus-per-job must be at least 1')


def build(args: argparse.Namespace, calibration: Optional[str] = None):
    from harness.grid import build_plan
    return build_plan(args.models, args.tasks, args.settings, args.work_dirs, args.toy,
                      args.gpus_per_job, calibration)


def launch_options(args: argparse.Namespace, work_dirs: str, leaderboard: bool):
    from harness.grid import LaunchOptions, check_cfg_options
    check_cfg_options(args.cfg_options)
    if args.launcher == 'slurm' and args.toy_data and not Path(args.toy_data).is_dir():
        raise ToolError(f'--toy-data folder not found: {args.toy_data}')
    return LaunchOptions(
        work_dirs=Path(work_dirs),
        toy=args.toy,
        toy_data=args.toy_data,
        seed=args.seed,
        deterministic=args.deterministic,
        amp=args.amp,
        cfg_options=list(args.cfg_options),
        partition=args.partition,
        gpus_per_node=args.gpus_per_node,
        cpus_per_task=args.cpus_per_task,
        gres=args.gres,
        sbatch_args=shlex.split(args.sbatch_args),
        srun_args=args.srun_args,
        python=args.python,
        leaderboard=leaderboard)


def launch(runs, opts, args) -> int:
    from harness.grid import format_states, run_local, submit_slurm, wait
    if args.launcher == 'local':
        states = run_local(runs, opts)
    else:
        submit_slurm(runs, opts)
        if not args.wait:
            print(f'grid: submitted; follow with: python tools/grid.py status --work-dirs '
                  f'{opts.work_dirs}')
            return 0
        states = wait(runs, opts, args.poll)
    print(format_states(states))
    return 0 if all(s.state == 'done' for s in states) else 1


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    resolve_plan_args(args)
    from harness.grid import calibration_runs, collect, counts, format_plan, format_states
    if args.command == 'plan':
        print(format_plan(build(args, args.calibration)))
        return 0
    if args.command == 'status':
        states = collect(build(args))
        print(format_states(states))
        print(f'grid: {counts(states)}')
        return 0 if all(s.state == 'done' for s in states) else 1
    runs = build(args)
    if args.command == 'calibrate':
        runs = calibration_runs(runs, args.calibration, args.iters, args.toy)
        return launch(runs, launch_options(args, args.calibration, leaderboard=False), args)
    opts = launch_options(args, args.work_dirs, leaderboard=not args.no_leaderboard)
    Path(args.work_dirs).mkdir(parents=True, exist_ok=True)
    from backbones.engine import atomic_write
    atomic_write(
        Path(args.work_dirs) / PLAN_FILE,
        json.dumps({k: getattr(args, k)
                    for k in PLAN_KEYS}, indent=1) + '\n')
    return launch(runs, opts, args)


if __name__ == '__main__':
    run_tool(main)
