"""Convert a released checkpoint of the official code for a model of this project.

    python tools/convert_checkpoint.py SRC DST --from demystify --model ddwconv_t
    python tools/convert_checkpoint.py SRC DST --from swin-official --model swin_t --backbone-only
    python tools/convert_checkpoint.py det.pth DST --from demystify --model dwconv_t  # mmdet 2.x

SRC is read with ``torch.load(weights_only=True)``: nothing in it is executed, and a checkpoint
that pickles anything but tensors and plain containers is refused. The one exception is the
training configuration that the official training scripts save beside the weights (a yacs
``CfgNode``, an argparse ``Namespace``): it is read as plain data, by stand-ins that import
nothing, and ignored. The result is loaded into the model it is meant for (mmpretrain's
``ImageClassifier`` of ``configs/_base_/imagenet_in1k.py`` with the zoo backbone, the backbone
alone with ``--backbone-only`` or for mmdet/mmseg checkpoints) and must fit it exactly; only
then is DST written, atomically, as ``{'state_dict': ..., 'meta': ...}``. Keys keep the
``backbone.`` prefix that the dense-task configs' ``init_cfg=dict(type='Pretrained',
prefix='backbone.')`` expects.

Exit status 0 on success, 2 with one ``error: ...`` line otherwise.
"""
import _bootstrap  # noqa: F401  # isort: skip  (quiet imports, the repository on sys.path)
import argparse
import hashlib
import io
import json
import os
from typing import Dict, List, Optional

import torch
import torch.nn as nn

from backbones.engine import atomic_write
from backbones.registry import MODELS
from backbones.zoo import build_backbone, get_model_info
from harness.checkpoints import compare_keys
from harness.convert import SOURCES, config_note, convert_checkpoint, detect_kind, load_release
from harness.errors import ToolError, first_line, run_tool
from harness.models import build_in_scope

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


def build_classifier(backbone: nn.Module) -> nn.Module:
    """``configs/_base_/imagenet_in1k.py``'s ImageClassifier around ``backbone``."""
    from mmengine.config import Config
    cfg = Config.fromfile(CLASSIFIER_CONFIG, import_custom_modules=False).model.to_dict()
    cfg['backbone'] = backbone
    cfg['head']['in_channels'] = int(backbone.num_features[-1])
    for key in ('init_cfg', 'train_cfg'):  # weights only: no init, no batch augments
        cfg.pop(key, None)
    return build_in_scope(cfg, 'mmpretrain')


def build_targets(args: argparse.Namespace, kind: str, overrides: dict,
                  checkpoint: object) -> Dict[str, nn.Module]:
    """Prefix -> module that the converted keys under that prefix must load into exactly."""
    if kind == 'classification':
        backbone = build_backbone(args.model, **overrides)
        if args.backbone_only:
            return {'backbone.': backbone}
        return {'': build_classifier(backbone)}
    # dense: the shape of the backbone (out indices, out norms) comes from the checkpoint
    _, report = convert_checkpoint(checkpoint, args.source, args.model, args.backbone_only)
    cls = MODELS.get(get_model_info(args.model).backbone['type'])
    dense = dict(getattr(cls, 'dense_task_cfg', {}))
    dense.update(report.backbone_overrides)
    dense.update(overrides)
    targets = {'backbone.': build_backbone(args.model, **dense)}
    if report.neck_cfg:
        targets['neck.'] = build_in_scope(report.neck_cfg, 'mmdet')
    return targets


def target_state(targets: Dict[str, nn.Module]) -> Dict[str, torch.Tensor]:
    """The state dict of all targets, each under its prefix."""
    return {
        prefix + k: v
        for prefix, module in targets.items()
        for k, v in module.state_dict().items()
    }


def verify_loads(state_dict: Dict[str, torch.Tensor], targets: Dict[str, nn.Module],
                 model: str) -> None:
    """Load every key into its module; any missing, unexpected or reshaped key is an error."""
    diff = compare_keys(target_state(targets), state_dict)
    if diff:
        raise ToolError(f'the result does not load into {model}: {diff.describe()}')
    for prefix, module in targets.items():
        part = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        try:
            module.load_state_dict(part, strict=True)
        except RuntimeError as e:
            raise ToolError(f'the result does not load into {model}: {first_line(e)}') from None


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def convert(args: argparse.Namespace) -> str:
    """Convert, check and write; returns the report for the user."""
    try:
        overrides = json.loads(args.overrides)
    except json.JSONDecodeError as e:
        raise ToolError(f'--overrides is not JSON: {e}') from None
    if not isinstance(overrides, dict):
        raise ToolError('--overrides must be a JSON object')
    try:
        get_model_info(args.model)
    except KeyError as e:
        raise ToolError(e.args[0]) from None

    checkpoint, configs = load_release(args.src)
    kind, _ = detect_kind(checkpoint)
    targets = build_targets(args, kind, overrides, checkpoint)
    shapes = {k: tuple(v.shape) for k, v in target_state(targets).items()}
    state_dict, report = convert_checkpoint(checkpoint, args.source, args.model, args.backbone_only,
                                            shapes)
    verify_loads(state_dict, targets, args.model)
    if configs:
        report.notes.append(config_note(configs))
    meta = dict(
        converted_by='tools/convert_checkpoint.py',
        source_file=os.path.basename(args.src),
        source_sha256=sha256(args.src),
        overrides=overrides,
        **report.summary())
    buffer = io.BytesIO()
    torch.save({'state_dict': state_dict, 'meta': meta}, buffer)
    atomic_write(args.dst, buffer.getvalue())
    return report.format() + f'\nwrote {args.dst} ({len(state_dict)} tensors)'


def main(argv: Optional[List[str]] = None) -> int:
    print(convert(parse_args(argv)))
    return 0


if __name__ == '__main__':
    run_tool(main)
