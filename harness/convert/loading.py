"""Reading a released checkpoint that carries its training configuration beside the weights.

DemystifyLocalViT's training script saves ``{'model': ..., 'config': CfgNode, ...}`` (a yacs
``CfgNode``), some scripts an argparse ``Namespace``. torch's weights-only unpickler refuses
both, as it refuses every class it does not know. Here exactly these two pickled names,
``yacs.config.CfgNode`` and ``argparse.Namespace``, are allow-listed for one load, bound to
stand-ins that build plain ``OrderedDict`` objects: nothing is imported from yacs or argparse and
nothing is called but the stand-ins, and every other global (any other class of those modules
included) is still refused by torch's unpickler.
"""
import pickle
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Tuple

import torch

from ..checkpoints import load_checkpoint_file

#: pickled name -> (what the user reads, how the object's data is reached): a CfgNode is a dict
#: (its attributes are yacs' flags), a Namespace keeps its data in its attributes
CONFIG_CLASSES: Dict[str, Tuple[str, Callable[[Any], dict]]] = {
    'yacs.config.CfgNode': ('yacs CfgNode', dict),
    'argparse.Namespace': ('argparse Namespace', vars),
}


def _stand_in(name: str, made: List[Tuple[OrderedDict, str]]) -> type:
    """A class to allow-list under ``name``: unpickling "creates" one by calling its
    ``__new__``, which returns a plain ``OrderedDict`` (recorded in ``made``). torch then
    fills it with the pickled items (``SETITEMS``) and attributes (``BUILD`` updates an
    ``OrderedDict``'s ``__dict__``), as it does for any ``OrderedDict``."""

    class ConfigStandIn:

        def __new__(cls, *args, **kwargs) -> OrderedDict:
            if args or kwargs:  # protocol 2 pickles of both classes have no arguments
                raise pickle.UnpicklingError(f'{name} with constructor arguments: not a plain '
                                             'configuration object')
            node: OrderedDict = OrderedDict()
            made.append((node, name))
            return node

    ConfigStandIn.__qualname__ = f'ConfigStandIn[{name}]'
    return ConfigStandIn


def _where(root: Any, nodes: Dict[int, str]) -> Dict[str, str]:
    """Path (``'config'``, ``'meta.args'``, ``'[0]'``) -> class title of the outermost config
    objects reachable from ``root`` through dicts, lists and tuples."""
    found: Dict[str, str] = {}
    seen = set()
    stack: List[Tuple[str, Any]] = [('', root)]
    while stack:
        path, obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if id(obj) in nodes:
            found[path or '<the checkpoint>'] = nodes[id(obj)]
        elif isinstance(obj, dict):
            stack += [(f'{path}.{k}' if path else str(k), v) for k, v in obj.items()]
        elif isinstance(obj, (list, tuple)):
            stack += [(f'{path}[{i}]', v) for i, v in enumerate(obj)]
    return dict(sorted(found.items()))


def load_release(path: str) -> Tuple[Any, Dict[str, str]]:
    """Load a released checkpoint as weights only, reading training configurations as data.

    A yacs ``CfgNode`` becomes an ``OrderedDict`` of its items (nested nodes too), an argparse
    ``Namespace`` an ``OrderedDict`` of its attributes. Anything else that is not a tensor or a
    plain container is refused as by :func:`harness.checkpoints.load_checkpoint_file`.

    Args:
        path (str): the checkpoint file.

    Returns:
        tuple[Any, dict]: the loaded checkpoint, and path in it -> class title of each
        configuration object read (e.g. ``{'config': 'yacs CfgNode'}``).
    """
    made: List[Tuple[OrderedDict, str]] = []
    stand_ins = [(_stand_in(name, made), name) for name in CONFIG_CLASSES]
    with torch.serialization.safe_globals(stand_ins):
        checkpoint = load_checkpoint_file(path)
    for node, name in made:
        data = dict(CONFIG_CLASSES[name][1](node))
        node.__dict__.clear()
        node.clear()
        node.update(data)
    return checkpoint, _where(checkpoint, {id(n): CONFIG_CLASSES[name][0] for n, name in made})


def config_note(configs: Dict[str, str]) -> str:
    """The one line that tells the user which configuration objects were not used.

    Args:
        configs (dict): path -> class title, as returned by :func:`load_release`.
    """
    where = ', '.join(f'{path!r} ({title})' for path, title in configs.items())
    return f'ignored the training configuration in the checkpoint: {where}'
