"""Command-line input of a submitted backbone: the module that registers it, and a zoo entry for a
model that has none yet (``--import`` / ``--backbone`` of ``tools/make_configs.py`` and
``tools/check_backbone.py``)."""
import ast
import importlib
import os
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from backbones import zoo
from backbones.registry import MODELS
from ..errors import ToolError, first_line


def import_backbone_module(spec: str) -> str:
    """Import a module that registers a backbone.

    A file or folder inside a folder on ``sys.path`` (e.g. the submission ``contrib/lkconv`` of
    the repository) is imported under its dotted name; any other one's parent folder is put on
    ``sys.path`` first (runs of its configs then need that folder on ``PYTHONPATH`` too).

    Args:
        spec (str): a module name (``'my_pkg.my_net'``), a ``.py`` file, or a package folder
            (one with an ``__init__.py``).

    Returns:
        str: the module name, for the configs' ``custom_imports``.

    Raises:
        ToolError: there is no such file, or the module does not import.
    """
    name = spec
    if spec.endswith('.py') or os.sep in spec:
        path = Path(spec).resolve()
        if path.name == '__init__.py':
            path = path.parent
        if not (path.is_file() or (path / '__init__.py').is_file()):
            raise ToolError(f'cannot import {spec!r}: no such file')
        name = _module_name_of(path)
        if name is None:
            sys.path.insert(0, str(path.parent))
            name = path.stem
    try:
        importlib.import_module(name)
    except Exception as exc:  # a broken submission is bad input, not a crash of the tool
        raise ToolError(f'cannot import {spec!r}: {type(exc).__name__}: {first_line(exc)}')
    return name


def _module_name_of(path: Path) -> Optional[str]:
    """The dotted name under which the file or package ``path`` is importable from
    ``sys.path``, if any (the longest one)."""
    names = []
    for entry in sys.path:
        root = Path(entry or os.getcwd()).resolve()
        try:
            parts = path.with_suffix('').relative_to(root).parts
        except ValueError:
            continue
        if parts and all(p.isidentifier() for p in parts):
            names.append('.'.join(parts))
    return max(names, key=lambda n: n.count('.')) if names else None


def parse_backbone_literal(text: str) -> dict:
    """A backbone config given on the command line, read without evaluating code.

    Args:
        text (str): ``"dict(type='MyNet', arch='tiny')"`` or ``"{'type': 'MyNet'}"``.

    Returns:
        dict: the config.

    Raises:
        ToolError: ``text`` is not a literal dict.
    """
    try:
        node = ast.parse(text, mode='eval').body
        if isinstance(node, ast.Call) and getattr(node.func, 'id', '') == 'dict' \
                and not node.args:
            value = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords}
        else:
            value = ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError) as exc:
        raise ToolError(f'--backbone is not a dict literal: {first_line(exc)}')
    if not isinstance(value, dict) or None in value:
        raise ToolError(f'--backbone is not a dict literal: {text}')
    return value


def register_submission(model: str,
                        imports: Sequence[str] = (),
                        backbone: Optional[dict] = None) -> List[str]:
    """Import the modules of a submission, add its model to the zoo if a config is given, and
    check that the model's backbone type is registered.

    Args:
        model (str): the zoo name, e.g. ``'lkconv_t'``.
        imports (Sequence[str]): modules, files or folders for :func:`import_backbone_module`.
            Defaults to ().
        backbone (dict, optional): registry config of a model not in the zoo yet; it is
            registered under ``model``. Defaults to None.

    Returns:
        list[str]: the module names of ``imports``.

    Raises:
        ToolError: a module does not import, the model is unknown or its type unregistered.
    """
    modules = [import_backbone_module(spec) for spec in imports]
    if backbone is not None:
        try:
            zoo.register_model(model, backbone)
        except ValueError as exc:
            raise ToolError(str(exc))
    try:
        cfg = zoo.get_backbone_cfg(model)
    except KeyError as exc:
        raise ToolError(f'{exc.args[0]} (a new model needs --backbone, and --import for the '
                        'module that registers its type)')
    if MODELS.get(cfg['type']) is None:
        raise ToolError(f'unknown backbone type {cfg["type"]!r}: it is not in mmengine\'s root '
                        'MODELS (pass --import with the module that registers it)')
    return modules
