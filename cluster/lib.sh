# shellcheck shell=bash
# Shared by cluster/up, cluster/down and cluster/try; sourced, not run.
#
# A state folder holds what `up` started: `pids` has one line per process,
# "NAME PID START", START being the process's start time (field 22 of
# /proc/PID/stat). A process is only ever signalled when its pid still has
# that start time, so a pid the kernel gave to another process since is
# left alone.

# Bounds, so that nothing waits forever.
STOP_TRIES=120        # x 0.1 s for a process to exit after SIGTERM
KILL_TRIES=30         # x 0.1 s for it to be gone after SIGKILL

# shellcheck disable=SC2034  # used by the scripts that source this file
if [ -t 1 ]; then
    BOLD=$'\e[1m' DIM=$'\e[2m' RED=$'\e[31m' GREEN=$'\e[32m' RESET=$'\e[0m'
else
    BOLD='' DIM='' RED='' GREEN='' RESET=''
fi

# The default state folder, cluster/.run, as an absolute path.
default_state() {
    printf '%s/.run\n' "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
}

# proc_field PID N: field N (3 or more) of /proc/PID/stat. The command name
# (field 2) may hold spaces, so fields are counted after its closing ')'.
proc_field() {
    local stat fields
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    read -r -a fields <<<"${stat##*) }"
    [ -n "${fields[$2 - 3]:-}" ] || return 1
    printf '%s\n' "${fields[$2 - 3]}"
}

# proc_start PID: the start time of the process, for `pids`.
proc_start() {
    proc_field "$1" 22
}

# alive PID START: whether that very process still runs. A zombie (exited,
# not yet reaped by its parent) counts as gone.
alive() {
    local start state
    start=$(proc_field "$1" 22) || return 1
    [ "$start" = "$2" ] || return 1
    state=$(proc_field "$1" 3) || return 1
    [ "$state" != Z ]
}

# any_alive STATE_DIR: whether a process recorded there still runs.
any_alive() {
    local name pid start
    [ -f "$1/pids" ] || return 1
    while read -r name pid start; do
        [ -n "$pid" ] || continue
        if alive "$pid" "$start"; then
            return 0
        fi
    done <"$1/pids"
    return 1
}

# stop_one NAME PID START: SIGTERM, a bounded wait, then SIGKILL. Prints
# what happened; status 1 only when the process could not be stopped.
stop_one() {
    local name=$1 pid=$2 start=$3 tries=0
    if ! alive "$pid" "$start"; then
        printf '  %-10s pid %-8s not running\n' "$name" "$pid"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    while alive "$pid" "$start" && [ "$tries" -lt "$STOP_TRIES" ]; do
        sleep 0.1
        tries=$((tries + 1))
    done
    if ! alive "$pid" "$start"; then
        printf '  %-10s pid %-8s stopped\n' "$name" "$pid"
        return 0
    fi
    kill -KILL "$pid" 2>/dev/null || true
    tries=0
    while alive "$pid" "$start" && [ "$tries" -lt "$KILL_TRIES" ]; do
        sleep 0.1
        tries=$((tries + 1))
    done
    if alive "$pid" "$start"; then
        printf '  %-10s pid %-8s %sstill running after SIGKILL%s\n' "$name" "$pid" "$RED" "$RESET"
        return 1
    fi
    printf '  %-10s pid %-8s killed (no exit %ss after SIGTERM)\n' \
        "$name" "$pid" "$((STOP_TRIES / 10))"
    return 0
}

# stop_all STATE_DIR: stops every recorded process, newest first (the load
# balancer, the nodes, the upstream, then Redis). Status 1 if one survived.
stop_all() {
    local name pid start status=0
    [ -f "$1/pids" ] || return 0
    while read -r name pid start; do
        [ -n "$pid" ] || continue
        stop_one "$name" "$pid" "$start" || status=1
    done < <(tac "$1/pids")
    return "$status"
}
