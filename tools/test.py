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
    from harness.running import build_runner, finish_distributed, prepare_config, run_parser
    args = run_parser('test', __doc__).parse_args(argv)
    if args.dry_run:
        cfg = prepare_config(args, mode='test')[0]
        print(f'work_dir={cfg.work_dir}')
        return 0
    build_runner(args, mode='test').test()
    finish_distributed()
    return 0


if __name__ == '__main__':
    run_tool(main)
