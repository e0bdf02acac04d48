#!/usr/bin/env bash
# Distributed evaluation with torchrun: tools/dist_test.sh CONFIG CHECKPOINT NGPUS [test.py args]
# NNODES, NODE_RANK, MASTER_ADDR and PORT come from the environment; without CUDA the processes
# run on the CPU over gloo.
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: $0 CONFIG CHECKPOINT NGPUS [test.py args...]" >&2; exit 2
fi
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
shift 3
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tools/_torchrun.sh
source "$HERE/_torchrun.sh"

preflight dist_test.sh "$HERE/test.py" "$CONFIG" "$CHECKPOINT" "$@"
torchrun_job dist_test.sh "$HERE/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "$@"
