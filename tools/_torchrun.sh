# Sourced by tools/dist_train.sh and tools/dist_test.sh after they set HERE and GPUS: the
# torchrun environment (NNODES, NODE_RANK, MASTER_ADDR, PORT, PYTHON), the NGPUS check and
# torchrun_job.
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

