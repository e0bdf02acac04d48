#!/usr/bin/env bash
# A throwaway Slurm cluster on this machine (one node, one partition named `local`), for the tests
# and for trying tools/grid.py / tools/slurm_train.sh without a real cluster:
#
#     eval "$(tools/local_slurm.sh start)"     # prints: export SLURM_CONF=<dir>/slurm.conf
#     sinfo; srun -n2 hostname
#     tools/local_slurm.sh status              # exit 0 when the node answers
#     tools/local_slurm.sh stop                # cancels its jobs, stops the daemons, removes <dir>
#
# Needs the Debian/Ubuntu packages `slurm-wlm munge` (apt-get install -y slurm-wlm munge) and
# root (slurmd starts the jobs' processes). Every file lives under LOCAL_SLURM_DIR (default
# ${TMPDIR:-/tmp}/local-slurm): its own munge key and munged socket, slurm.conf, state, spool,
# logs and pid files; nothing under /etc or /run is written. Environment:
#   LOCAL_SLURM_DIR   where the cluster lives (start/stop/status look there)
#   LOCAL_SLURM_CPUS  CPUs of the node (default: the processors this process may use)
#   LOCAL_SLURM_MEM   memory of the node in MB (default: 80% of MemTotal)
#   LOCAL_SLURM_PORT  slurmctld port (default 6817; slurmd uses the next one)
# `start` is idempotent: with the cluster up, it prints the export line again.
set -euo pipefail
PROG=$(basename "$0")
DIR=${LOCAL_SLURM_DIR:-${TMPDIR:-/tmp}/local-slurm}
CONF=$DIR/slurm.conf
PORT=${LOCAL_SLURM_PORT:-6817}

die() { echo "$PROG: error: $*" >&2; exit 2; }
say() { echo "$PROG: $*" >&2; }

pid_alive() {  # pid_alive PIDFILE: the process named by PIDFILE is running
    [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

node_answers() {  # slurmctld answers and the node is up (idle / mixed / allocated)
    [ -f "$CONF" ] || return 1
    local state
    state=$(SLURM_CONF=$CONF timeout 10 sinfo -h -N -o '%T' 2>/dev/null | head -n1) || return 1
    case "$state" in
        idle*|mix*|alloc*|completing*) return 0 ;;
        *) return 1 ;;
    esac
}

start() {
    local cmd
    for cmd in munged munge slurmctld slurmd sinfo sbatch; do
        command -v "$cmd" >/dev/null || die "'$cmd' not found: install the packages with" \
            "'apt-get install -y slurm-wlm munge'"
    done
    [ "$(id -u)" -eq 0 ] || die "must run as root (slurmd starts the jobs' processes)"
    if pid_alive "$DIR/slurmctld.pid" && node_answers; then
        say "already running ($DIR)"
        echo "export SLURM_CONF=$CONF"
        return 0
    fi
    stop_daemons
    mkdir -p "$DIR"/{state,spool,log,munge}
    chmod 711 "$DIR" "$DIR/munge"
    local key=$DIR/munge/munge.key socket=$DIR/munge/munge.socket
    if [ ! -s "$key" ]; then
        dd if=/dev/urandom bs=1 count=1024 of="$key" 2>/dev/null
        chmod 400 "$key"
    fi
    munged --force --socket="$socket" --key-file="$key" --log-file="$DIR/log/munged.log" \
        --pid-file="$DIR/munged.pid" --seed-file="$DIR/munge/munged.seed" \
        || die "munged did not start; see $DIR/log/munged.log"

    local host cpus mem
    host=$(hostname -s)
    # nproc counts OMP_NUM_THREADS as the processors (a test worker's 1 made a 1-CPU node, and a
    # 2-task job waited forever): the machine's processors, as this process may use them
    cpus=${LOCAL_SLURM_CPUS:-$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)}
    mem=${LOCAL_SLURM_MEM:-$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.8}' /proc/meminfo)}
    cat > "$CONF" <<CONF
# written by tools/local_slurm.sh: a one-node cluster for tests; everything under $DIR
ClusterName=local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$socket,cred_expire=10
CredType=cred/munge
# a job requeued by Slurm (node failure) may start again after cred_expire seconds (120 by default)
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
KillWait=10
MinJobAge=600
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
    slurmctld -f "$CONF" || die "slurmctld did not start; see $DIR/log/slurmctld.log"
    slurmd -f "$CONF" || die "slurmd did not start; see $DIR/log/slurmd.log"
    local i
    for i in $(seq 60); do
        if node_answers; then
            say "up: node $host, $cpus CPUs, ${mem} MB, partition 'local' ($DIR)"
            echo "export SLURM_CONF=$CONF"
            return 0
        fi
        sleep 0.5
    done
    die "the node did not come up within 30 s; see $DIR/log/slurmctld.log and slurmd.log"
}

stop_daemons() {  # ends the daemons this script started (by their pid files), in order
    local name pid i
    for name in slurmd slurmctld munged; do
        pid_alive "$DIR/$name.pid" || continue
        pid=$(cat "$DIR/$name.pid")
        kill "$pid" 2>/dev/null || true
        for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    done
    return 0
}

stop() {
    if [ -f "$CONF" ] && pid_alive "$DIR/slurmctld.pid"; then
        # the jobs first: their steps would outlive slurmd
        SLURM_CONF=$CONF timeout 10 scancel --full --partition=local 2>/dev/null || true
        local i
        for i in $(seq 40); do
            [ -z "$(SLURM_CONF=$CONF timeout 10 squeue -h -o %i 2>/dev/null)" ] && break
            sleep 0.5
        done
    fi
    stop_daemons
    case "$DIR" in
        /|'') ;;
        # only a folder this script made (its slurm.conf says so)
        *) if grep -qs '^# written by tools/local_slurm.sh' "$CONF"; then rm -rf "$DIR"; fi ;;
    esac
    say "stopped"
}

status() {
    if pid_alive "$DIR/slurmctld.pid" && node_answers; then
        SLURM_CONF=$CONF sinfo
        echo "export SLURM_CONF=$CONF"
        return 0
    fi
    say "not running ($DIR)"
    return 1
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $PROG start|stop|status   (files under LOCAL_SLURM_DIR=$DIR)" >&2; exit 2 ;;
esac
