"""The README's main job: the four T models through all three tasks on the built-in toy data,
then the comparison table.

For each model: toy ImageNet training (+ validation with top-1 and ReaL), then Cascade Mask
R-CNN 3x on toy COCO and UperNet on toy ADE20K, both initialised from that model's toy ImageNet
checkpoint, exactly as the full-scale pipeline chains them. Each run is a real ``tools/train.py
--toy`` process; results land in work_dirs/toy and the leaderboard is written to
work_dirs/toy/leaderboard.
"""
import argparse
import subprocess
import sys
import time
from pathlib import Path

import _bootstrap  # noqa: F401  # isort: skip  (the repository on sys.path)
from harness.configgen import model_config
from harness.errors import run_tool
from harness.tasks import TASKS
from harness.toy import ensure_toy_data

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
T_MODELS = ['swin_t', 'dwconv_t', 'ddwconv_t', 'idynamic_t']
#: the worked example of a submitted backbone (contrib/lkconv/), on toy ImageNet only
EXTRA_RUNS = [('lkconv_t', 'imagenet')]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--models', nargs='+', default=T_MODELS)
    parser.add_argument('--tasks', nargs='+', default=list(TASKS), choices=list(TASKS))
    parser.add_argument('--work-dirs', default='work_dirs/toy')
    parser.add_argument(
        '--no-extra',
        action='store_true',
        help='skip the submitted example backbone (lkconv_t on toy ImageNet)')
    parser.add_argument(
        '--rerun', action='store_true', help='train again even where a result record exists')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    for task in args.tasks:
        print(f'[toy] data: {ensure_toy_data(task)}', flush=True)
    jobs = [(m, t) for m in args.models for t in args.tasks]
    if not args.no_extra:
        jobs += [(m, t) for m, t in EXTRA_RUNS if t in args.tasks and (m, t) not in jobs]
    start = time.time()
    failed = []
    for i, (model, task) in enumerate(jobs, 1):
        config = str(model_config(model, TASKS[task].table_setting.key))
        work_dir = Path(args.work_dirs) / task / Path(config).stem
        if (work_dir / 'result.json').is_file() and not args.rerun:
            print(
                f'[toy {i}/{len(jobs)}] {model} {task}: done before ({work_dir}/result.json)',
                flush=True)
            continue
        print(
            f'[toy {i}/{len(jobs)}] {model} {task}: training {config} '
            f'({time.time() - start:.0f}s elapsed)',
            flush=True)
        t0 = time.time()
        log = work_dir.parent / f'{Path(config).stem}.log'
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, 'w') as f:
            proc = subprocess.run([
                sys.executable,
                str(HERE / 'train.py'), config, '--toy', '--work-dir',
                str(work_dir)
            ],
                                  cwd=ROOT,
                                  stdout=f,
                                  stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            failed.append((model, task, log))
            print(f'    FAILED (exit {proc.returncode}); log: {log}', flush=True)
        else:
            print(f'    done in {time.time() - t0:.0f}s', flush=True)
    print(f'[toy] all runs finished in {time.time() - start:.0f}s', flush=True)
    board = subprocess.run([
        sys.executable,
        str(HERE / 'leaderboard.py'), '--work-dirs', args.work_dirs, '--out',
        str(Path(args.work_dirs) / 'leaderboard'), '--toy'
    ],
                           cwd=ROOT)
    for model, task, log in failed:
        print(f'[toy] FAILED: {model} {task} (log: {log})', file=sys.stderr)
    return 1 if failed or board.returncode else 0


if __name__ == '__main__':
    run_tool(main)
