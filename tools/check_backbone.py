"""Check a backbone against the contract of the benchmark before spending GPU hours on it.

    python tools/check_backbone.py lkconv_t --import contrib.lkconv     # the worked example
    python tools/check_backbone.py my_net --import my_pkg/my_net.py \\
        --backbone "dict(type='MyNet', arch='tiny')"                      # not in the zoo yet
    python tools/check_backbone.py idynamic_t --quick                    # a paper model, fast
    python tools/check_backbone.py swin_t --only outputs gradients       # some checks

Checks (see harness/contract/): build (mmpretrain, mmdet and mmseg MODELS), configs (the
generated configs are up to date), outputs (count, channels = num_features, strides 4/8/16/32),
input_sizes (non-square, not multiples of 32), frozen_stages, norm_eval, gradients (every
parameter), checkpoint (the ImageNet classifier's weights load into the dense backbones),
complexity (params/FLOPs of the task models in the table's settings, cached; --quick: of the
backbone alone, in seconds), toy_step (one training step of each task config on toy data).

Prints one ``[i/N] PASS / FAIL / SKIP`` line per check with the reason, its time and the ETA of
the rest; exits 0 when nothing fails, 1 when
a check fails, 2 on bad input (one ``error:`` line).
"""
import argparse
import sys
from typing import List, Optional

import _bootstrap  # noqa: F401  # isort: skip  (quiet imports, the repository on sys.path)
from harness.errors import run_tool
from harness.progress import Progress
from harness.tasks import add_settings_argument

IMPORT_HELP = ('module, .py file or package folder that registers the backbone (repeatable), '
               'as given to tools/make_configs.py')
BACKBONE_HELP = ('registry config of a model not in the zoo, as a Python dict literal, e.g. '
                 '"dict(type=\'MyNet\', arch=\'tiny\')"')
QUICK_HELP = ('count params/FLOPs of the backbone alone (224x224, dense tasks at toy scale), in '
              'seconds, instead of the task models in the table\'s settings (minutes on a CPU, '
              'cached)')
VERBOSE_HELP = 'keep the toolboxes\' logs and warnings, print tracebacks'


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    from harness.contract import CHECKS
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('model', help='zoo name, e.g. lkconv_t (new with --backbone)')
    parser.add_argument(
        '--import', dest='imports', action='append', default=[], metavar='MODULE', help=IMPORT_HELP)
    parser.add_argument('--backbone', help=BACKBONE_HELP)
    parser.add_argument('--quick', action='store_true', help=QUICK_HELP)
    parser.add_argument(
        '--only',
        nargs='+',
        choices=CHECKS,
        metavar='CHECK',
        help=f'run only these checks ({", ".join(CHECKS)})')
    parser.add_argument(
        '--skip',
        nargs='+',
        choices=CHECKS,
        metavar='CHECK',
        default=[],
        help='leave these checks out')
    add_settings_argument(
        parser, 'settings whose configs are checked and get a toy step (default: those every '
        'model gets)')
    parser.add_argument(
        '--config-root',
        help='where the generated configs are (default: the model\'s: configs for the paper\'s '
        'models, the submission\'s own folder, e.g. contrib/lkconv/configs)')
    parser.add_argument('--toy-root', default='data/toy', help='toy data (generated if absent)')
    parser.add_argument('--verbose', action='store_true', help=VERBOSE_HELP)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    from harness.contract import (CHECKS, BackboneChecker, parse_backbone_literal,
                                  register_submission)
    backbone = parse_backbone_literal(args.backbone) if args.backbone else None
    modules = register_submission(args.model, args.imports, backbone)
    checks = [c for c in (args.only or CHECKS) if c not in args.skip]
    checker = BackboneChecker(
        args.model,
        imports=modules,
        config_root=args.config_root,
        quick=args.quick,
        settings=args.settings,
        toy_root=args.toy_root,
        verbose=args.verbose)
    print(
        f'checking {args.model} ({checker.backbone_cfg["type"]}) against the backbone '
        'contract',
        flush=True)
    progress = Progress(checker.count(checks), stream=sys.stdout)
    results = checker.run(checks, report=lambda r: progress.step(r.line(), clock=False))
    failed = [r.name for r in results if r.failed]
    total = sum(r.seconds for r in results)
    if failed:
        print(f'{args.model}: {len(failed)} of {len(results)} checks FAILED ({", ".join(failed)})'
              f' in {total:.0f}s')
        return 1
    skipped = sum(r.status == 'skip' for r in results)
    passed = len(results) - skipped
    print(f'{args.model}: {"all " if passed > 1 else ""}{passed} check{"s" * (passed != 1)} '
          f'passed in {total:.0f}s' + (f' ({skipped} skipped)' if skipped else ''))
    return 0


if __name__ == '__main__':
    run_tool(main)
