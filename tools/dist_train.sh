#!/usr/bin/env bash
# Distributed training with torchrun: tools/dist_train.sh CONFIG NGPUS [train.py args]
# NNODES, NODE_RANK, MASTER_ADDR and PORT come from the environment, as in OpenMMLab's scripts.
# Without CUDA the same command runs NGPUS processes on the CPU over gloo. The inputs are checked
# once before the processes start (a bad one: one error line, exit 2). When a process dies,
# torchrun ends the others; the script shows that process's error once and one summary line.
set -euo pipefail
# shellcheck source=tools/_launch.sh
source "$(dirname "$0")/_launch.sh"
take_args "CONFIG NGPUS [train.py args...]" "$@"
# shellcheck source=tools/_torchrun.sh
source "$HERE/_torchrun.sh"
set -- "$HERE/train.py" "$CONFIG" ${REST[@]+"${REST[@]}"}

preflight dist_train.sh "$@"
torchrun_job dist_train.sh "$@" --launcher pytorch
