#!/usr/bin/env bash
# Slurm: tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py args]
# Runs GPUS processes of tools/test.py --launcher slurm in one job step; the environment is that
# of tools/slurm_train.sh (GPUS, GPUS_PER_NODE, CPUS_PER_TASK, GRES, SRUN_ARGS; see _srun.sh).
#     GPUS=2 GPUS_PER_NODE=2 GRES= tools/slurm_test.sh local toy CONFIG CKPT --toy --work-dir W
set -euo pipefail
if [ $# -lt 4 ]; then
    echo "usage: $0 PARTITION JOB_NAME CONFIG CHECKPOINT [test.py args...]" >&2; exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
CHECKPOINT=$4
shift 4
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tools/_srun.sh
source "$HERE/_srun.sh"

srun_job slurm_test.sh "$PARTITION" "$JOB_NAME" "$HERE/test.py" "$CONFIG" "$CHECKPOINT" "$@"
