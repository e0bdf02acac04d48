#!/usr/bin/env bash
# Build (once) and install mmcv with its compiled ops into the given Python environment.
#
# mmcv 2.1.0 ships no wheel for torch 2.14, so it is built from the PyPI sdist. torch 2.14
# headers need C++20 while mmcv's setup.py forces -std=c++17, so the flag is raised in the
# unpacked copy. The wheel is cached outside the repository under a key that includes the torch
# version and the C++ ABI: pip's own wheel cache is keyed by the sdist alone and would hand back
# a wheel built against another torch.
set -euo pipefail

PYTHON=$(command -v "${1:?usage: build_mmcv.sh PYTHON}")
PYTHON=$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON")
MMCV_VERSION=${MMCV_VERSION:-2.1.0}
CACHE_ROOT=${DEMYSTIFY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/demystify-localvit}

key=$("$PYTHON" - <<'PY'
import sys, torch
print(f"torch{torch.__version__}-cxx11abi{int(torch._C._GLIBCXX_USE_CXX11_ABI)}-"
      f"cp{sys.version_info.major}{sys.version_info.minor}-"
      f"cuda{torch.version.cuda if torch.cuda.is_available() else 'none'}")
PY
)
wheel_dir="$CACHE_ROOT/wheels/mmcv-$MMCV_VERSION-$key"
wheel=$(ls "$wheel_dir"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n1 || true)

if [ -z "$wheel" ]; then
    echo "[build_mmcv] no cached wheel for $key: building mmcv $MMCV_VERSION from source (25-35 min on 2 cores)"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    "$PYTHON" -m pip download -q --no-deps --no-binary :all: "mmcv==$MMCV_VERSION" -d "$work"
    tar -xzf "$work"/mmcv-"$MMCV_VERSION".tar.gz -C "$work"
    src="$work/mmcv-$MMCV_VERSION"
    sed -i "s/'-std=c++17'/'-std=c++20'/g" "$src/setup.py"
    grep -q -- "-std=c++20" "$src/setup.py" || { echo "[build_mmcv] could not raise the C++ standard in setup.py" >&2; exit 1; }
    jobs=${MAX_JOBS:-$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)}  # nproc obeys OMP_NUM_THREADS
    # what setup.py compiles: the CPU ops, plus the CUDA ones where torch sees a GPU
    total=$(ls "$src"/mmcv/ops/csrc/pytorch/*.cpp "$src"/mmcv/ops/csrc/pytorch/cpu/*.cpp | wc -l)
    if "$PYTHON" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' 2>/dev/null; then
        total=$((total + $(ls "$src"/mmcv/ops/csrc/pytorch/cuda/*.c* | wc -l)))
    fi
    echo "[build_mmcv] compiling $total C++ sources with $jobs parallel jobs (a progress line every ${PROGRESS_EVERY:-30} s)"
    (cd "$src" && MMCV_WITH_OPS=1 MAX_JOBS=$jobs \
        "$PYTHON" -m pip wheel -q --no-deps --no-build-isolation . -w "$work/dist") &
    build=$!
    bash "$(dirname "$0")/build_progress.sh" "$src" "$total" "$build" &
    progress=$!
    status=0
    wait "$build" || status=$?
    kill "$progress" 2>/dev/null || true
    wait "$progress" 2>/dev/null || true
    [ "$status" -eq 0 ] || { echo "[build_mmcv] the mmcv build failed (exit $status)" >&2; exit "$status"; }
    mkdir -p "$wheel_dir"
    # Move into place atomically so an interrupted build never leaves a half-written wheel.
    built=$(ls "$work"/dist/mmcv-*.whl)
    cp "$built" "$wheel_dir/.partial.whl"
    mv "$wheel_dir/.partial.whl" "$wheel_dir/$(basename "$built")"
    wheel="$wheel_dir/$(basename "$built")"
fi
echo "[build_mmcv] installing $wheel"
"$PYTHON" -m pip install -q --no-deps --force-reinstall "$wheel"
