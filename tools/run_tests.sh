#!/usr/bin/env bash
# Lint (configured in setup.cfg), then the whole test suite, slow end-to-end tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
SOURCES="backbones harness configs contrib tools tests"
echo "[lint] flake8"; "$PY" -m flake8 $SOURCES
echo "[lint] isort";  "$PY" -m isort --check-only --diff $SOURCES
echo "[lint] yapf";   "$PY" -m yapf --diff --recursive $SOURCES
echo "[lint] clean"
"$PY" -m pytest "$@"
