#!/usr/bin/env bash
# Lint (configured in setup.cfg), then the whole test suite, slow end-to-end tests included;
# arguments go to pytest (e.g. -m "not slow", -n 0).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
SOURCES="backbones harness configs contrib tools tests"
echo "[lint] flake8"; "$PY" -m flake8 $SOURCES
echo "[lint] isort";  "$PY" -m isort --check-only --diff $SOURCES
echo "[lint] yapf";   "$PY" -m yapf --diff --recursive $SOURCES
echo "[lint] clean"
# Two pytest-xdist workers (TEST_WORKERS; 0: one process), one per core of the machines this is
# measured on; each computes on one thread (tests/conftest.py). A module's tests (a test class's)
# run on one worker (--dist loadscope, setup.cfg): module fixtures are made once.
"$PY" -m pytest -n "${TEST_WORKERS:-2}" "$@"
