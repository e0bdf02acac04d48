#!/usr/bin/env bash
# Slurm: tools/slurm_train.sh PARTITION JOB_NAME CONFIG [WORK_DIR] [train.py args]
# Runs GPUS processes of tools/train.py --launcher slurm in one job step: a new job, or a step
# of the current one inside an sbatch script (tools/grid.py submit does that). The step's shape
# comes from the environment (see tools/_srun.sh): GPUS, GPUS_PER_NODE, CPUS_PER_TASK, GRES
# (GRES= for a CPU partition: gloo), SRUN_ARGS. PARTITION '' means the cluster's default.
#     GPUS=16 tools/slurm_train.sh gpu swin_t configs/imagenet/swin_t_in1k.py work_dirs/swin_t
#     GPUS=2 GPUS_PER_NODE=2 GRES= tools/slurm_train.sh local toy CONFIG WORK_DIR --toy
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: $0 PARTITION JOB_NAME CONFIG [WORK_DIR] [train.py args...]" >&2; exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
shift 3
WORK_DIR_ARGS=()
if [ $# -gt 0 ] && [[ "$1" != --* ]]; then
    WORK_DIR_ARGS=(--work-dir "$1")
    shift
fi
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tools/_srun.sh
source "$HERE/_srun.sh"

srun_job slurm_train.sh "$PARTITION" "$JOB_NAME" "$HERE/train.py" "$CONFIG" \
    ${WORK_DIR_ARGS[@]+"${WORK_DIR_ARGS[@]}"} "$@"
