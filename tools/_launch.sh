# Sourced by the launchers (dist_train.sh, dist_test.sh, slurm_train.sh, slurm_test.sh): HERE
# (tools/), PYTHON (the project's .venv if there is one), the arguments and the preflight.
HERE=$(cd "$(dirname "$0")" && pwd)

PYTHON=${PYTHON:-$(test -x "$HERE/../.venv/bin/python" && echo "$HERE/../.venv/bin/python" || echo python)}

# take_args USAGE ARGS...: the usage line and exit 2 unless ARGS has a word for each name of
# USAGE before its first '['; sets the variable of each such name to its word, and REST to the
# arguments that follow.
take_args() {
    local usage=$1 names name
    shift
    read -ra names <<<"${usage%%[*}"
    if [ $# -lt ${#names[@]} ]; then
        echo "usage: $(basename "$0") $usage" >&2
        exit 2
    fi
    for name in "${names[@]}"; do
        printf -v "$name" '%s' "$1"
        shift
    done
    REST=("$@")
}

# preflight NAME SCRIPT ARGS...: check the config, data roots and checkpoints once, in one
# process, before starting N of them (a bad input then ends in seconds with one error line, not
# N copies after the processes started). Sets WORK_DIR from the tool's answer. PREFLIGHT=0
# skips it.
preflight() {
    local name=$1 out rc=0
    shift
    WORK_DIR=
    if [ "${PREFLIGHT:-1}" = 0 ]; then return 0; fi
    out=$(PYTHONPATH="$HERE/..:${PYTHONPATH:-}" "$PYTHON" "$@" --dry-run 2>&1) || rc=$?
    if [ "$rc" -ne 0 ]; then
        # the tool's own one-line error if it printed one, else the end of its output
        { grep -m1 ': error: ' <<<"$out" || tail -n 5 <<<"$out"; } | sed "s/^[a-z_]*\.py: /$name: /" >&2
        exit "$rc"
    fi
    WORK_DIR=$(sed -n 's/^work_dir=//p' <<<"$out" | tail -n1)
}
