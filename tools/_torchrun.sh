# Sourced by tools/dist_train.sh and tools/dist_test.sh after they set NGPUS: the torchrun
# environment (NNODES, NODE_RANK, MASTER_ADDR, PORT), the NGPUS check and torchrun_job.
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
case "$NGPUS" in
    ''|*[!0-9]*|0) echo "$(basename "$0"): error: NGPUS must be a positive integer, got '$NGPUS'" >&2
                   exit 2 ;;
esac

# torchrun_job NAME SCRIPT ARGS...: torchrun in the background, so that a TERM / INT / HUP sent
# to this script reaches it (it then stops its processes). Rank 0's output is shown on the
# console; every process's output goes to WORK_DIR/torchrun/ (per attempt and rank). When a
# process fails, its error is shown once, with one summary line, instead of N copies and
# torchrun's traceback.
torchrun_job() {
    local name=$1 child rc logs
    shift
    logs="${WORK_DIR:-work_dirs}/torchrun/$(date +%Y%m%d_%H%M%S)"
    mkdir -p "$logs"
    OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} PYTHONPATH="$HERE/..:${PYTHONPATH:-}" \
    "$PYTHON" -m torch.distributed.run \
        --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
        --nproc_per_node="$NGPUS" --master_port="$PORT" \
        --log-dir "$logs" --redirects 3 --tee 3 --local-ranks-filter 0 \
        "$@" 2>"$logs/torchrun.err" &
    child=$!
    trap 'kill -TERM "$child" 2>/dev/null' TERM INT HUP
    while true; do
        rc=0
        wait "$child" || rc=$?
        kill -0 "$child" 2>/dev/null || break  # else wait was interrupted by a signal
    done
    trap - TERM INT HUP
    if [ "$rc" -ne 0 ]; then
        report_failure "$name" "$logs" "$rc"
    fi
    return "$rc"
}

# report_failure NAME LOGDIR RC: the first failed process's error once (its last 'error:' or
# exception line; for a process killed by a signal, torchrun's root-cause line), then one
# summary line.
report_failure() {
    local name=$1 logs=$2 rc=$3 file line='' rank
    for file in $(ls -tr "$logs"/*/attempt_*/*/stderr.log 2>/dev/null); do
        line=$(grep -E ': error: |^[A-Za-z_.]+(Error|Exception|Interrupt)\b' "$file" | tail -n1 || true)
        if [ -n "$line" ]; then
            rank=$(basename "$(dirname "$file")")
            echo "$name: rank $rank: $line" >&2
            break
        fi
    done
    if [ -z "$line" ]; then  # no error printed: killed, or died in native code
        rank=$(sed -n '/Root Cause/,$p' "$logs/torchrun.err" | grep -m1 -oE 'rank *: *[0-9]+' \
               | grep -oE '[0-9]+$' | head -n1 || true)
        line=$(sed -n '/Root Cause/,$p' "$logs/torchrun.err" | grep -m1 -E 'traceback *:' \
               | sed 's/^ *traceback *: *//' || true)
        if [ -n "$line" ]; then echo "$name: rank ${rank:-?}: $line" >&2; fi
    fi
    echo "$name: error: a process of the job failed (torchrun exit code $rc); every" \
         "process's output is under $logs" >&2
}
