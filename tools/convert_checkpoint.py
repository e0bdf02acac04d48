"""Convert a released checkpoint of the official code for a model of this project.

    python tools/convert_checkpoint.py SRC DST --from demystify --model ddwconv_t
    python tools/convert_checkpoint.py SRC DST --from swin-official --model swin_t --backbone-only
    python tools/convert_checkpoint.py det.pth DST --from demystify --model dwconv_t  # mmdet 2.x

SRC is read with ``torch.load(weights_only=True)``: nothing in it is executed, and a checkpoint
that pickles anything but tensors and plain containers is refused. The result is loaded into the
model it is meant for (mmpretrain's ``ImageClassifier`` of ``configs/_base_/imagenet_in1k.py``
with the zoo backbone, the backbone alone with ``--backbone-only`` or for mmdet/mmseg
checkpoints) and must fit it exactly; only then is DST written, atomically, as
``{'state_dict': ..., 'meta': ...}``. Keys keep the ``backbone.`` prefix that the dense-task
configs' ``init_cfg=dict(type='Pretrained', prefix='backbone.')`` expects.

Exit status 0 on success, 2 with one ``error: ...`` line otherwise.
"""
import argparse
import hashlib
import json
import os
import sys
import tempfile
from typing import Dict, List, Optional, Tuple

import _bootstrap  # noqa: F401
import torch
import torch.nn as nn

from backbones.convert import SOURCES, ConversionError, convert_checkpoint, detect_kind
from backbones.registry import MODELS
from backbones.zoo import get_backbone_cfg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSIFIER_CONFIG = os.path.join(ROOT, 'configs', '_base_', 'imagenet_in1k.py')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='released checkpoint')
    parser.add_argument('dst', help='where to write the converted checkpoint')
    parser.add_argument(
        '--from', dest='source', required=True, choices=SOURCES, help='which code released SRC')
    parser.add_argument('--model', required=True, help='zoo name, e.g. dwconv_t')
    parser.add_argument(
        '--backbone-only',
        action='store_true',
        help='keep the backbone only (drop classifier head / neck)')
    parser.add_argument(
        '--overrides',
        default='{}',
        metavar='JSON',
        help='backbone config overrides, e.g. \'{"arch": {"embed_dims": 64, '
        '"depths": [2, 2, 6, 2]}}\' for a checkpoint of a custom size')
    return parser.parse_args(argv)


class ToolError(Exception):
    """Anything that ends the tool with ``error: <message>``."""


def load_weights(path: str) -> object:
    if not os.path.isfile(path):
        raise ToolError(f'{path}: no such file')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # noqa: BLE001 (pickle / zip / torch errors alike)
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ToolError(f'{path} is not a weights-only checkpoint (torch.load with '
                        f'weights_only=True refused it: {first}); re-save just its state dict '
                        'in a trusted environment') from None


def build_backbone_module(model: str, overrides: dict) -> nn.Module:
    cfg = get_backbone_cfg(model)
    cfg.update(overrides)
    return MODELS.build(cfg)


def build_classifier(backbone: nn.Module) -> nn.Module:
    """``configs/_base_/imagenet_in1k.py``'s ImageClassifier around ``backbone``."""
    from mmengine.config import Config
    from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS

    cfg = Config.fromfile(CLASSIFIER_CONFIG, import_custom_modules=False).model.to_dict()
    cfg['backbone'] = backbone
    cfg['head']['in_channels'] = int(backbone.num_features[-1])
    for key in ('init_cfg', 'train_cfg'):  # weights only: no init, no batch augments
        cfg.pop(key, None)
    return MMPRETRAIN_MODELS.build(cfg)


def build_fpn(neck_cfg: dict) -> nn.Module:
    from mmdet.registry import MODELS as MMDET_MODELS
    return MMDET_MODELS.build(dict(neck_cfg))


def build_targets(args: argparse.Namespace, kind: str, overrides: dict,
                  checkpoint: object) -> Dict[str, nn.Module]:
    """Prefix -> module that the converted keys under that prefix must load into exactly."""
    if kind == 'classification':
        backbone = build_backbone_module(args.model, overrides)
        if args.backbone_only:
            return {'backbone.': backbone}
        return {'': build_classifier(backbone)}
    # dense: the shape of the backbone (out indices, out norms) comes from the checkpoint
    _, report = convert_checkpoint(checkpoint, args.source, args.model, args.backbone_only)
    cls = MODELS.get(get_backbone_cfg(args.model)['type'])
    dense = dict(getattr(cls, 'dense_task_cfg', {}))
    dense.update(report.backbone_overrides)
    dense.update(overrides)
    targets = {'backbone.': build_backbone_module(args.model, dense)}
    if report.neck_cfg:
        targets['neck.'] = build_fpn(report.neck_cfg)
    return targets


def target_shapes(targets: Dict[str, nn.Module]) -> Dict[str, Tuple[int, ...]]:
    return {
        prefix + k: tuple(v.shape)
        for prefix, module in targets.items()
        for k, v in module.state_dict().items()
    }


def verify_loads(state_dict: Dict[str, torch.Tensor], targets: Dict[str, nn.Module],
                 model: str) -> None:
    """Load every key into its module; any missing or unexpected key is an error."""
    claimed = set()
    problems = []
    for prefix, module in targets.items():
        part = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        claimed.update(prefix + k for k in part)
        try:
            result = module.load_state_dict(part, strict=False)
        except RuntimeError as e:
            raise ToolError(f'the result does not load into {model}: '
                            f'{" ".join(str(e).split())[:300]}') from None
        problems += [f'missing {prefix + k!r}' for k in result.missing_keys]
        problems += [f'unexpected {prefix + k!r}' for k in result.unexpected_keys]
    problems += [f'unexpected {k!r}' for k in state_dict if k not in claimed]
    if problems:
        more = f' (and {len(problems) - 1} more)' if len(problems) > 1 else ''
        raise ToolError(f'the result does not load into {model}: {problems[0]}{more}')


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def save_atomic(obj: dict, dst: str) -> None:
    directory = os.path.dirname(os.path.abspath(dst))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix='.' + os.path.basename(dst) + '.', suffix='.tmp', dir=directory)
    try:
        with os.fdopen(fd, 'wb') as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dst)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def run(args: argparse.Namespace) -> str:
    try:
        overrides = json.loads(args.overrides)
    except json.JSONDecodeError as e:
        raise ToolError(f'--overrides is not JSON: {e}') from None
    if not isinstance(overrides, dict):
        raise ToolError('--overrides must be a JSON object')
    try:
        get_backbone_cfg(args.model)
    except KeyError as e:
        raise ToolError(e.args[0]) from None

    checkpoint = load_weights(args.src)
    kind, _ = detect_kind(checkpoint)
    targets = build_targets(args, kind, overrides, checkpoint)
    state_dict, report = convert_checkpoint(checkpoint, args.source, args.model, args.backbone_only,
                                            target_shapes(targets))
    verify_loads(state_dict, targets, args.model)
    meta = dict(
        converted_by='tools/convert_checkpoint.py',
        source_file=os.path.basename(args.src),
        source_sha256=sha256(args.src),
        overrides=overrides,
        **report.summary())
    save_atomic({'state_dict': state_dict, 'meta': meta}, args.dst)
    return report.format() + f'\nwrote {args.dst} ({len(state_dict)} tensors)'


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        print(run(args))
    except (ToolError, ConversionError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
