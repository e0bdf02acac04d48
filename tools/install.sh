#!/usr/bin/env bash
# Set up (or check) the project's environment: .venv at the repository root with the pinned
# OpenMMLab stack, mmcv built with its ops (cached outside the repo), and this package installed
# in editable mode. Idempotent: when nothing changed it only re-proves the stack (seconds).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
PY=$VENV/bin/python
STAMP=$VENV/.demystify-install-stamp
log() { echo "[install] $*"; }

if [ ! -x "$PY" ]; then
    log "creating $VENV with $($PYTHON --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
fi

# Everything that decides what gets installed goes into the stamp.
want=$(cat requirements/*.txt tools/install.sh tools/build_mmcv.sh setup.cfg pyproject.toml \
       | sha256sum | cut -d' ' -f1)
have=$(cat "$STAMP" 2>/dev/null || true)

if [ "$want" != "$have" ] || ! "$PY" -c "import mmcv.ops, backbones" >/dev/null 2>&1; then
    start=$(date +%s)
    log "installing the pinned stack (requirements/lock.txt)"
    "$PY" -m pip install -q --disable-pip-version-check "setuptools>=77.0.3,<81" wheel
    "$PY" -m pip install -q --disable-pip-version-check -r requirements/lock.txt
    bash tools/build_mmcv.sh "$PY"
    "$PY" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
    echo "$want" > "$STAMP"
    log "installed in $(( $(date +%s) - start )) s"
else
    log "environment up to date ($VENV)"
fi

"$PY" tools/verify_stack.py
