"""Write the thin task configs of zoo models from the setting templates in configs/_base_.

    python tools/make_configs.py --all                              # the paper's eight models
    python tools/make_configs.py lkconv_t --import contrib.lkconv   # registered on import
    python tools/make_configs.py my_net --import my_pkg.my_backbone \\
        --backbone "dict(type='MyNet', depth=4)"                      # a new zoo entry

The paper's models get their configs in configs/<task>/; a submitted model in its own folder
(its zoo entry's ``config_root``, e.g. contrib/lkconv/configs/<task>/). ``--import`` takes a
module name, a ``.py`` file or a package folder; the configs name the module in their
``custom_imports``. See docs/add_backbone.md.
"""
import argparse
from typing import List, Optional

import _bootstrap  # noqa: F401  # isort: skip  (quiet imports, the repository on sys.path)
from harness.errors import ToolError, run_tool
from harness.tasks import add_settings_argument


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('models', nargs='*', help='zoo names')
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
        help='module, .py file or package folder that registers the backbone (repeatable)')
    add_settings_argument(
        parser, 'which settings (default: every default setting, plus the model\'s extra ones)')
    parser.add_argument(
        '--root',
        help='output folder (default: the model\'s: configs for the paper\'s models, the '
        'submission\'s own folder, e.g. contrib/lkconv/configs)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    from backbones.zoo import PAPER_MODELS
    from harness.configgen import write_configs
    from harness.contract import import_backbone_module, parse_backbone_literal, register_submission
    models = list(args.models) or (list(PAPER_MODELS) if args.all else [])
    if not models:
        raise ToolError('name models or pass --all')
    if args.backbone and len(models) != 1:
        raise ToolError('--backbone describes exactly one model')
    imports = [import_backbone_module(spec) for spec in args.imports]
    backbone = parse_backbone_literal(args.backbone) if args.backbone else None
    for name in models:
        register_submission(name, backbone=backbone)
    for name in models:
        for path in write_configs(name, args.root, args.settings, imports):
            print(f'wrote {path}')
    return 0


if __name__ == '__main__':
    run_tool(main)
