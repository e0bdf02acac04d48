#!/usr/bin/env bash
# The GPU check: ops against their references on CUDA (Triton, fp32/fp16/bf16, gradients), our
# I-Dynamic op against an official-style CuPy kernel, one AMP fp16 training step of each T
# classifier, and the T backbones' images/s (batch 64, 224, fp16 and fp32). Prints ONE JSON
# line (tools/gpu_check.py says what is in it); exit code 0 when the checks pass.
#
# Made for a machine with a GPU and no network that has Python 3.12, torch, triton, cupy and
# pytest but no OpenMMLab packages (the NVIDIA H200 lent for ~15 minutes). What it lacks
# travels as pure-Python wheels in .whl/ (about 4 MiB, git-ignored), made here, once:
#
#     tools/gpu_check.sh --prepare    # downloads mmengine, mmpretrain and their small pure
#                                     # dependencies for Python 3.12, builds mmcv WITHOUT ops
#                                     # (MMCV_WITH_OPS=0 -> mmcv_lite-*.whl) from its sdist
#
# then on the GPU machine (the device tool: carry [".whl"], timeout_s 540):
#
#     tools/gpu_check.sh              # installs .whl/*.whl into /tmp/site, runs the check
#                                     # within GPU_CHECK_BUDGET seconds (default 420) and is
#                                     # killed at 480 s
#
# and here, on the CPU, to know that it starts (toy sizes, no CUDA; uses .whl/ too if present,
# which proves that the code runs with mmcv-lite):
#
#     tools/gpu_check.sh --dry-run
#
# --models NAME ... checks only those T models (default: all four).
# PYTHON selects the interpreter (default: .venv/bin/python for --prepare and --dry-run where it
# exists, python3 otherwise).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WHEELS="$ROOT/.whl"
MODE=${1:-}
if [ -z "${PYTHON:-}" ]; then
    if [ -n "$MODE" ] && [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"
    else PYTHON=python3; fi
fi

# name==version of every wheel the GPU machine lacks (pure Python, any 3.x)
DOWNLOADS=(mmengine==0.10.7 mmpretrain==1.2.0 addict==2.4.0 termcolor==3.3.0 yapf==0.43.0
           platformdirs==4.14.8 mat4py==0.6.0 model-index==0.1.11 ordered-set==4.1.0
           importlib-metadata==8.7.0 zipp==3.23.0)
MMCV_VERSION=2.1.0

prepare() {
    mkdir -p "$WHEELS"
    "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d "$WHEELS" "${DOWNLOADS[@]}"
    if ! ls "$WHEELS"/mmcv_lite-"$MMCV_VERSION"-*.whl >/dev/null 2>&1; then
        local work
        work=$(mktemp -d)
        "$PYTHON" -m pip download -q --no-deps --no-binary :all: "mmcv==$MMCV_VERSION" -d "$work"
        tar -xzf "$work/mmcv-$MMCV_VERSION.tar.gz" -C "$work"
        MMCV_WITH_OPS=0 "$PYTHON" -m pip wheel -q --no-deps --no-build-isolation \
            "$work/mmcv-$MMCV_VERSION" -w "$WHEELS"
        rm -rf "$work"
    fi
    du -sh "$WHEELS" >&2
    ls "$WHEELS" >&2
}

install_wheels() {  # into a fresh target, first on PYTHONPATH
    local site
    site=${GPU_CHECK_SITE:-/tmp/site}
    rm -rf "$site"
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$site" "$WHEELS"/*.whl >&2
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
}

case "$MODE" in
    --prepare)
        prepare
        ;;
    --dry-run)
        shift
        if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
            tmp=$(mktemp -d)
            trap 'rm -rf "$tmp"' EXIT
            GPU_CHECK_SITE="$tmp/site" install_wheels
        fi
        cd "$ROOT"
        "$PYTHON" tools/gpu_check.py --dry-run --budget "${GPU_CHECK_BUDGET:-900}" "$@"
        ;;
    ""|--models)
        ls "$WHEELS"/*.whl >/dev/null 2>&1 || { echo "no wheels in $WHEELS: run tools/gpu_check.sh --prepare here first, and carry .whl" >&2; exit 2; }
        install_wheels
        cd "$ROOT"
        export PYTHONUNBUFFERED=1
        exec timeout 480 "$PYTHON" tools/gpu_check.py --budget "${GPU_CHECK_BUDGET:-420}" "$@"
        ;;
    *)
        echo "usage: tools/gpu_check.sh [--prepare | --dry-run] [--models NAME ...]" >&2
        exit 2
        ;;
esac
