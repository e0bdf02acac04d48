#!/usr/bin/env bash
# Print the progress of a C++ build every PROGRESS_EVERY seconds until process PID ends:
#   [build_mmcv] 34/77 objects compiled, 12 min 05 s elapsed, ETA 15 min
# usage: build_progress.sh SOURCE_DIR TOTAL_OBJECTS PID
set -uo pipefail
src=$1 total=$2 pid=$3
every=${PROGRESS_EVERY:-30}
start=$(date +%s)
fmt() { local s=$1; if [ "$s" -lt 60 ]; then echo "${s} s"; else printf '%d min %02d s' $((s / 60)) $((s % 60)); fi; }
while kill -0 "$pid" 2>/dev/null; do
    sleep "$every"
    kill -0 "$pid" 2>/dev/null || break
    done_=$(find "$src" -name '*.o' 2>/dev/null | wc -l)
    elapsed=$(( $(date +%s) - start ))
    eta=''
    if [ "$done_" -gt 0 ] && [ "$done_" -lt "$total" ]; then
        eta=", ETA $(fmt $(( elapsed * (total - done_) / done_ )))"
    elif [ "$done_" -ge "$total" ]; then
        eta=', linking'
    fi
    echo "[build_mmcv] $done_/$total objects compiled, $(fmt "$elapsed") elapsed$eta"
done
