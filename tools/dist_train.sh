#!/usr/bin/env bash
# Distributed training with torchrun: tools/dist_train.sh CONFIG NGPUS [train.py args]
# NNODES, NODE_RANK, MASTER_ADDR and PORT come from the environment, as in OpenMMLab's scripts.
# Without CUDA the same command runs NGPUS processes on the CPU over gloo. The inputs are checked
# once before the processes start (a bad one: one error line, exit 2). When a process dies,
# torchrun ends the others; the script shows that process's error once and one summary line.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG NGPUS [train.py args...]" >&2; exit 2
fi
CONFIG=$1
GPUS=$2
shift 2
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tools/_torchrun.sh
source "$HERE/_torchrun.sh"

preflight dist_train.sh "$HERE/train.py" "$CONFIG" "$@"
torchrun_job dist_train.sh "$HERE/train.py" "$CONFIG" --launcher pytorch "$@"
