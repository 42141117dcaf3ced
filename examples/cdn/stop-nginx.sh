#!/usr/bin/env bash
# Stops the nginx that start-nginx.sh started for RUNTIME_DIR.
#
#   stop-nginx.sh RUNTIME_DIR
#
# Sends SIGTERM (fast shutdown: a graceful SIGQUIT would wait for live WebM responses, which
# never end) to the master, whose pid start-nginx.sh recorded in RUNTIME_DIR/nginx.master.pid
# (checked against /proc/PID/cmdline, so a reused pid is left alone). Its children (worker,
# cache manager, cache loader) are collected first, and whatever is still alive after
# ONAIR_NGINX_STOP_TIMEOUT seconds (default 10) gets SIGKILL, so no orphaned worker keeps
# the port. Exit status 0 when nothing is left running (also when nothing was), 1 otherwise.
set -uo pipefail

[ $# -eq 1 ] || { echo "usage: stop-nginx.sh RUNTIME_DIR" >&2; exit 1; }
[ -d "$1" ] || { echo "stop-nginx.sh: no directory $1" >&2; exit 1; }
runtime=$(cd "$1" && pwd)
pidfile=$runtime/nginx.master.pid

[ -f "$pidfile" ] || exit 0
pid=$(cat "$pidfile" 2>/dev/null || true)
[[ $pid =~ ^[0-9]+$ ]] || { rm -f "$pidfile"; exit 0; }

# Alive and not a zombie (a zombie whose parent does not reap it is as good as gone).
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

ours() {
    [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' < "/proc/$1/cmdline" | grep -qF -- "$runtime/nginx.conf"
}

if ! alive "$pid" || ! ours "$pid"; then
    rm -f "$pidfile"
    exit 0
fi

children=()
for stat_file in /proc/[0-9]*/stat; do
    stat=$(cat "$stat_file" 2>/dev/null) || continue
    rest=${stat##*) }
    read -r _state ppid _ <<< "$rest"
    if [ "$ppid" = "$pid" ]; then
        child=${stat_file#/proc/}
        children+=("${child%/stat}")
    fi
done

any_alive() {
    local p
    for p in "$pid" "${children[@]}"; do
        if alive "$p"; then return 0; fi
    done
    return 1
}

wait_gone() {
    local deadline=$(( SECONDS + $1 ))
    while any_alive; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.1
    done
}

kill -TERM "$pid" 2>/dev/null
if ! wait_gone "${ONAIR_NGINX_STOP_TIMEOUT:-10}"; then
    echo "stop-nginx.sh: nginx $pid did not stop on SIGTERM, killing" >&2
    for p in "$pid" "${children[@]}"; do
        if alive "$p"; then kill -KILL "$p" 2>/dev/null; fi
    done
    if ! wait_gone 5; then
        echo "stop-nginx.sh: nginx $pid (or a child) is still running" >&2
        exit 1
    fi
fi
rm -f "$pidfile" "$runtime/nginx.pid"
exit 0
