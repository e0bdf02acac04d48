"""Write the thin task configs of zoo models from the templates in configs/_base_.

    python tools/make_configs.py --all                 # the paper's eight models
    python tools/make_configs.py my_net --import my_pkg.my_backbone \
        --backbone "dict(type='MyNet', depth=4)"         # a submitted backbone
"""
import argparse
import ast
import importlib
import sys

import _bootstrap  # noqa: F401

from backbones import zoo
from backbones.configgen import TEMPLATES, write_configs


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('models', nargs='*', help='zoo names (default with --all: the paper\'s)')
    parser.add_argument('--all', action='store_true', help='all of the paper\'s models')
    parser.add_argument('--backbone', help='registry config of a new model, as a Python dict '
                        'literal, e.g. "dict(type=\'MyNet\', arch=\'tiny\')"')
    parser.add_argument('--import', dest='imports', action='append', default=[],
                        help='module that registers the backbone (repeatable)')
    parser.add_argument('--templates', nargs='+', choices=sorted(TEMPLATES),
                        help='which task configs (default: all)')
    parser.add_argument('--root', default='configs')
    return parser.parse_args(argv)


def _literal_dict(text: str) -> dict:
    node = ast.parse(text, mode='eval').body
    if isinstance(node, ast.Call) and getattr(node.func, 'id', '') == 'dict':
        return {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords}
    value = ast.literal_eval(node)
    if not isinstance(value, dict):
        raise ValueError('expected a dict')
    return value


def main(argv=None) -> int:
    args = parse_args(argv)
    for module in args.imports:
        importlib.import_module(module)
    models = list(args.models) or (zoo.MODEL_NAMES if args.all else [])
    if not models:
        print('error: name models or pass --all', file=sys.stderr)
        return 2
    if args.backbone:
        if len(models) != 1:
            print('error: --backbone describes exactly one model', file=sys.stderr)
            return 2
        try:
            zoo.register_model(models[0], _literal_dict(args.backbone))
        except (ValueError, SyntaxError) as exc:
            print(f'error: --backbone is not a dict literal: {exc}', file=sys.stderr)
            return 2
    for name in models:
        try:
            paths = write_configs(name, args.root, args.templates, args.imports)
        except KeyError as exc:
            print(f'error: {exc.args[0]}', file=sys.stderr)
            return 2
        for path in paths:
            print(f'wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
