"""Write the thin task configs of zoo models from the templates in configs/_base_.

    python tools/make_configs.py --all                 # the paper's eight models
    python tools/make_configs.py my_net --import my_pkg.my_backbone \
        --backbone "dict(type='MyNet', depth=4)"         # a submitted backbone
    python tools/make_configs.py lkconv_t --import contrib.lkconv   # registered on import

``--import`` takes a module name or a ``.py`` file; the configs name the module in their
``custom_imports``. See docs/add_backbone.md.
"""
import argparse
import sys

import _bootstrap  # noqa: F401

from backbones import zoo
from backbones.configgen import TEMPLATES, write_configs
from backbones.contract import import_backbone_module, parse_backbone_literal, register_submission
from backbones.launch import UsageError


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('models', nargs='*', help='zoo names (default with --all: the paper\'s)')
    parser.add_argument('--all', action='store_true', help='all of the paper\'s models')
    parser.add_argument(
        '--backbone',
        help='registry config of a new model, as a Python dict '
        'literal, e.g. "dict(type=\'MyNet\', arch=\'tiny\')"')
    parser.add_argument(
        '--import',
        dest='imports',
        action='append',
        default=[],
        help='module or .py file that registers the backbone (repeatable)')
    parser.add_argument(
        '--templates',
        nargs='+',
        choices=sorted(TEMPLATES),
        help='which task configs (default: all)')
    parser.add_argument('--root', default='configs')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    models = list(args.models) or (zoo.MODEL_NAMES if args.all else [])
    if not models:
        print('error: name models or pass --all', file=sys.stderr)
        return 2
    if args.backbone and len(models) != 1:
        print('error: --backbone describes exactly one model', file=sys.stderr)
        return 2
    try:
        imports = [import_backbone_module(spec) for spec in args.imports]
        backbone = parse_backbone_literal(args.backbone) if args.backbone else None
        for name in models:
            register_submission(name, backbone=backbone)
    except UsageError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    for name in models:
        paths = write_configs(name, args.root, args.templates, imports)
        for path in paths:
            print(f'wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
