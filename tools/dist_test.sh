#!/usr/bin/env bash
# Distributed evaluation with torchrun: tools/dist_test.sh CONFIG CHECKPOINT NGPUS [test.py args]
# NNODES, NODE_RANK, MASTER_ADDR and PORT come from the environment; without CUDA the processes
# run on the CPU over gloo. Inputs are checked once first, as in dist_train.sh.
set -euo pipefail
# shellcheck source=tools/_launch.sh
source "$(dirname "$0")/_launch.sh"
take_args "CONFIG CHECKPOINT NGPUS [test.py args...]" "$@"
# shellcheck source=tools/_torchrun.sh
source "$HERE/_torchrun.sh"
set -- "$HERE/test.py" "$CONFIG" "$CHECKPOINT" ${REST[@]+"${REST[@]}"}

preflight dist_test.sh "$@"
torchrun_job dist_test.sh "$@" --launcher pytorch
