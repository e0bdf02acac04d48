"""Train a config of configs/ with mmengine's Runner.

    python tools/train.py configs/imagenet/dwconv_t_in1k.py
    python tools/train.py configs/coco/idynamic_t_maskrcnn.py --toy      # built-in toy data
    tools/dist_train.sh configs/ade20k/swin_t_upernet.py 8               # distributed

Inputs are checked before anything is written (one ``error:`` line, exit 2); a run ends with
``<work_dir>/result.json`` for the leaderboard.
"""
import _bootstrap  # noqa: F401  # isort: skip  (quiet imports, the repository on sys.path)
from harness.errors import run_tool


def main(argv=None) -> int:
    from harness.running import run_main
    return run_main('train', __doc__, argv)


if __name__ == '__main__':
    run_tool(main)
