#!/usr/bin/env bash
# Slurm: tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py args]
# Runs GPUS processes of tools/test.py --launcher slurm in one job step; the environment is that
# of tools/slurm_train.sh (GPUS, GPUS_PER_NODE, CPUS_PER_TASK, GRES, SRUN_ARGS; see _srun.sh),
# and so is the check of the inputs before srun.
#     GPUS=2 GPUS_PER_NODE=2 GRES= tools/slurm_test.sh local toy CONFIG CKPT --toy --work-dir W
set -euo pipefail
# shellcheck source=tools/_launch.sh
source "$(dirname "$0")/_launch.sh"
take_args "PARTITION JOB_NAME CONFIG CHECKPOINT [test.py args...]" "$@"
# shellcheck source=tools/_srun.sh
source "$HERE/_srun.sh"
set -- "$HERE/test.py" "$CONFIG" "$CHECKPOINT" ${REST[@]+"${REST[@]}"}

preflight slurm_test.sh "$@"
srun_job slurm_test.sh "$PARTITION" "$JOB_NAME" "$@"
