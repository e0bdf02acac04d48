#!/usr/bin/env bash
# Slurm: tools/slurm_train.sh PARTITION JOB_NAME CONFIG [WORK_DIR] [train.py args]
# Runs GPUS processes of tools/train.py --launcher slurm in one job step: a new job, or a step
# of the current one inside an sbatch script (tools/grid.py submit does that). The step's shape
# comes from the environment (see tools/_srun.sh): GPUS, GPUS_PER_NODE, CPUS_PER_TASK, GRES
# (GRES= for a CPU partition: gloo), SRUN_ARGS. PARTITION '' means the cluster's default.
# The config, data roots and checkpoints are checked once, in one process, before srun
# (PREFLIGHT=0 skips that): a bad input is one error line and exit 2, no job.
#     GPUS=16 tools/slurm_train.sh gpu swin_t configs/imagenet/swin_t_in1k.py work_dirs/swin_t
#     GPUS=2 GPUS_PER_NODE=2 GRES= tools/slurm_train.sh local toy CONFIG WORK_DIR --toy
set -euo pipefail
# shellcheck source=tools/_launch.sh
source "$(dirname "$0")/_launch.sh"
take_args "PARTITION JOB_NAME CONFIG [WORK_DIR] [train.py args...]" "$@"
set -- ${REST[@]+"${REST[@]}"}
if [ $# -gt 0 ] && [[ "$1" != --* ]]; then
    set -- --work-dir "$@"  # the optional WORK_DIR
fi
# shellcheck source=tools/_srun.sh
source "$HERE/_srun.sh"

preflight slurm_train.sh "$HERE/train.py" "$CONFIG" "$@"
srun_job slurm_train.sh "$PARTITION" "$JOB_NAME" "$HERE/train.py" "$CONFIG" "$@"
