"""The paper's comparison table from the result records under work_dirs.

    python tools/leaderboard.py --work-dirs work_dirs --out work_dirs/leaderboard
    python tools/leaderboard.py --mean --full            # mean +- std over seeds, no toy runs
    python tools/leaderboard.py --metafiles --complexity docs/flops.json   # + OpenMMLab metafiles

Writes leaderboard.{md,csv,html,png} and prints the markdown table; see harness/leaderboard/.
"""
import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

import _bootstrap  # noqa: F401  # isort: skip  (quiet imports, the repository on sys.path)
from harness import leaderboard as lb
from harness.errors import ToolError, run_tool


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='tools/leaderboard.py',
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description='Turn the result records under the work-dirs tree into the paper\'s '
        'comparison table: leaderboard.{md,csv,html,png} in --out, markdown on stdout.')
    add = parser.add_argument
    add('--work-dirs',
        default='work_dirs',
        help='searched recursively for result.json and --tta '
        'test_result.json; benchmark lists in <work-dirs>/benchmark/*.json (default: %(default)s)')
    add('--out', help='output folder (default: <work-dirs>/leaderboard)')
    runs = parser.add_mutually_exclusive_group()
    runs.add_argument(
        '--best',
        action='store_true',
        help='per (model, setting) the best run by '
        'the main metric (default: the latest by date)')
    runs.add_argument('--mean', action='store_true', help='mean +- std over seeds')
    scale = parser.add_mutually_exclusive_group()
    scale.add_argument('--toy', action='store_true', help='only toy runs')
    scale.add_argument('--full', action='store_true', help='only full-scale runs')
    add('--metafiles',
        nargs='?',
        const=_bootstrap.ROOT,
        metavar='ROOT',
        help='also write ROOT/metafiles/<family>.yml and ROOT/model-index.yml (OpenMMLab model '
        'zoo; full-scale results only; ROOT defaults to the repository)')
    add('--complexity',
        metavar='FILE',
        help='JSON of tools/get_flops.py --all --json: '
        'FLOPs/params for the metafiles where no record has them')
    add('--quiet', action='store_true', help='do not print the table')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    work_dirs = Path(args.work_dirs)
    if not work_dirs.is_dir():
        raise ToolError(f'--work-dirs {work_dirs} is not a directory')
    if args.complexity and not Path(args.complexity).is_file():
        raise ToolError(f'--complexity {args.complexity} is not a file')
    mode = 'best' if args.best else 'mean' if args.mean else 'latest'
    board = lb.build_leaderboard(work_dirs, mode,
                                 'toy' if args.toy else 'full' if args.full else 'auto')
    paths = lb.write_outputs(board, Path(args.out) if args.out else work_dirs / 'leaderboard')
    if not args.quiet:
        print(lb.render_markdown(board))
    print(f'wrote {", ".join(str(p) for p in paths.values())}', file=sys.stderr)
    if args.metafiles is not None:
        complexity = (
            lb.load_complexity(Path(args.complexity), board.warnings) if args.complexity else [])
        families = lb.build_metafiles(board.entries, complexity)
        if families:
            written = lb.write_metafiles(families, Path(args.metafiles))
            print(f'wrote {", ".join(str(p) for p in written)}', file=sys.stderr)
        else:  # keep what is there rather than write an empty model index
            message = 'no full-scale result and no complexity record: metafiles not written'
            print(f'warning: {message}', file=sys.stderr)
    return 0


if __name__ == '__main__':
    run_tool(main)
