#!/usr/bin/env bash
# Distributed training with torchrun: tools/dist_train.sh CONFIG NGPUS [train.py args]
# NNODES, NODE_RANK, MASTER_ADDR and PORT come from the environment, as in OpenMMLab's scripts.
# Without CUDA the same command runs NGPUS processes on the CPU over gloo. When a process dies,
# torchrun ends the others; the script then exits non-zero with one summary line.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG NGPUS [train.py args...]" >&2; exit 2
fi
CONFIG=$1
GPUS=$2
shift 2
HERE=$(cd "$(dirname "$0")" && pwd)
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
PYTHON=${PYTHON:-$(test -x "$HERE/../.venv/bin/python" && echo "$HERE/../.venv/bin/python" || echo python)}
case "$GPUS" in
    ''|*[!0-9]*|0) echo "$(basename "$0"): error: NGPUS must be a positive integer, got '$GPUS'" >&2
                   exit 2 ;;
esac

# torchrun_job NAME SCRIPT ARGS...: torchrun in the background, so that a TERM / INT / HUP sent
# to this script reaches it (it then stops its processes), and a failure ends with one line.
torchrun_job() {
    local name=$1 child rc
    shift
    OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} PYTHONPATH="$HERE/..:${PYTHONPATH:-}" \
    "$PYTHON" -m torch.distributed.run \
        --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
        --nproc_per_node="$GPUS" --master_port="$PORT" "$@" &
    child=$!
    trap 'kill -TERM "$child" 2>/dev/null' TERM INT HUP
    while true; do
        rc=0
        wait "$child" || rc=$?
        kill -0 "$child" 2>/dev/null || break  # else wait was interrupted by a signal
    done
    trap - TERM INT HUP
    if [ "$rc" -ne 0 ]; then
        echo "$name: error: torchrun exited with code $rc: a process of the job failed or was" \
             "killed; the first failure is the \"Root Cause\" above" >&2
    fi
    return "$rc"
}

torchrun_job dist_train.sh "$HERE/train.py" "$CONFIG" --launcher pytorch "$@"
