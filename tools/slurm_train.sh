#!/usr/bin/env bash
# Slurm: tools/slurm_train.sh PARTITION JOB_NAME CONFIG [WORK_DIR] [train.py args]
# GPUS (total processes, default 8), GPUS_PER_NODE (8), CPUS_PER_TASK (5), SRUN_ARGS from the
# environment; GRES (default gpu:GPUS_PER_NODE; GRES= for a CPU partition, where the processes
# use gloo). --kill-on-bad-exit ends the job step when one process dies.
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
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-}
GRES=${GRES-gpu:$GPUS_PER_NODE}
HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-$(test -x "$HERE/../.venv/bin/python" && echo "$HERE/../.venv/bin/python" || echo python)}

PYTHONPATH="$HERE/..:${PYTHONPATH:-}" \
srun -p "$PARTITION" --job-name="$JOB_NAME" ${GRES:+--gres="$GRES"} \
    --ntasks="$GPUS" --ntasks-per-node="$GPUS_PER_NODE" --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 $SRUN_ARGS \
    "$PYTHON" -u "$HERE/train.py" "$CONFIG" "${WORK_DIR_ARGS[@]}" --launcher slurm "$@"
