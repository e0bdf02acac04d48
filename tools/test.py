"""Evaluate a checkpoint with a config of configs/ (real evaluators: mmpretrain Accuracy and
ReaL, mmdet CocoMetric, mmseg IoUMetric).

    python tools/test.py configs/imagenet/dwconv_t_in1k.py checkpoints/dwconv_t_in1k.pth
    python tools/test.py configs/ade20k/swin_t_upernet.py CKPT --tta      # multi-scale
    python tools/test.py configs/coco/idynamic_t_maskrcnn.py CKPT --toy

A run ends with ``<work_dir>/test_result.json`` (``--tta``: the metric as ``miou_ms``).
"""
import _bootstrap  # noqa: F401  # isort: skip  (quiet imports, the repository on sys.path)
from harness.errors import run_tool


def main(argv=None) -> int:
    from harness.running import run_main
    return run_main('test', __doc__, argv)


if __name__ == '__main__':
    run_tool(main)
