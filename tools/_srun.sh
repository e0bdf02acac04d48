# Sourced by tools/slurm_train.sh and tools/slurm_test.sh after tools/_launch.sh: the job step's
# shape from the environment, as in OpenMMLab's scripts -- GPUS (processes, default 8),
# GPUS_PER_NODE (8; at most GPUS), CPUS_PER_TASK (5), GRES (default gpu:GPUS_PER_NODE; GRES= on a
# CPU partition, where the processes use gloo), SRUN_ARGS -- and srun_job.
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-}
for _var in GPUS GPUS_PER_NODE CPUS_PER_TASK; do
    case "${!_var}" in
        ''|*[!0-9]*|0) echo "$(basename "$0"): error: $_var must be a positive integer," \
                            "got '${!_var}'" >&2
                       exit 2 ;;
    esac
done
if [ "$GPUS_PER_NODE" -gt "$GPUS" ]; then GPUS_PER_NODE=$GPUS; fi
GRES=${GRES-gpu:$GPUS_PER_NODE}

# srun_job NAME PARTITION JOB_NAME SCRIPT ARGS...: GPUS processes of SCRIPT (--launcher slurm)
# in one job step (inside an sbatch allocation, or a new job); an empty PARTITION is the
# cluster's default. Each job gets its own rendezvous port (several jobs may share a node).
# --kill-on-bad-exit ends the step when one process dies; a failure ends with one line.
srun_job() {
    local name=$1 partition=$2 job_name=$3 rc=0
    shift 3
    # shellcheck disable=SC2086  # SRUN_ARGS is a list of options
    OMP_NUM_THREADS=${OMP_NUM_THREADS:-$CPUS_PER_TASK} PYTHONPATH="$HERE/..:${PYTHONPATH:-}" \
    srun ${partition:+--partition="$partition"} --job-name="$job_name" ${GRES:+--gres="$GRES"} \
        --ntasks="$GPUS" --ntasks-per-node="$GPUS_PER_NODE" --cpus-per-task="$CPUS_PER_TASK" \
        --kill-on-bad-exit=1 $SRUN_ARGS \
        bash -c 'export MASTER_PORT=${MASTER_PORT:-$((20000 + ${SLURM_JOB_ID:-0} % 20000))}
                 exec "$@"' srun_task "$PYTHON" -u "$@" --launcher slurm || rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "$name: error: srun exited with code $rc: a process of the job failed or was" \
             "killed (the first error is above)" >&2
    fi
    return "$rc"
}
