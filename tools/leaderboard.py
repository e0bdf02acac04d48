"""The paper's comparison table from the result records under work_dirs.

    python tools/leaderboard.py --work-dirs work_dirs --out work_dirs/leaderboard
    python tools/leaderboard.py --mean --full            # mean +- std over seeds, no toy runs
    python tools/leaderboard.py --metafiles --complexity flops.json   # + OpenMMLab metafiles

Writes leaderboard.{md,csv,html,png} and prints the markdown table; see backbones/leaderboard.py.
"""
import importlib.util
import os
import sys

import _bootstrap  # noqa: F401  # isort: skip  (puts the repository on sys.path)


def _load():
    """``backbones.leaderboard``; where the package cannot be imported (no mmcv), the module
    alone, which needs only the standard library (the property table then shows '?')."""
    try:
        from backbones import leaderboard
        return leaderboard
    except ImportError as exc:
        print(f'warning: backbones is not importable ({exc}); no property records', file=sys.stderr)
    path = os.path.join(_bootstrap.ROOT, 'backbones', 'leaderboard.py')
    spec = importlib.util.spec_from_file_location('_leaderboard', path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


if __name__ == '__main__':
    sys.exit(_load().main())
