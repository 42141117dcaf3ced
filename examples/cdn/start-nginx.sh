#!/usr/bin/env bash
# Starts nginx as the onair CDN egress in front of relay nodes, on 127.0.0.1 only.
#
#   start-nginx.sh RUNTIME_DIR LISTEN_PORT RELAY_ADDR[,RELAY_ADDR...] [DOC_ROOT]
#
# RUNTIME_DIR  created if needed; receives nginx.conf (from nginx.conf.in next to this
#              script), logs/, tmp/, cache/, nginx.pid and nginx.master.pid.
# LISTEN_PORT  1-65535; nginx cannot pick a free port itself (no port 0), the caller does.
# RELAY_ADDR   127.x.x.x:PORT or [::1]:PORT. Other addresses are refused: this script is for
#              local use and tests, where nothing may leave the machine. For a real
#              deployment copy nginx.conf.in and fill it in by hand (see README.md).
# DOC_ROOT     static files served at /; default RUNTIME_DIR/www, created with a copy of
#              player.html.
#
# nginx runs with "daemon off" in the background of this script, so its pid is known at
# once and a start that fails (a taken port) is seen as an exit; once the port answers the
# pid is printed on stdout. Stop it with stop-nginx.sh RUNTIME_DIR.
# As root the workers run as the owner of RUNTIME_DIR (override: ONAIR_NGINX_USER="user
# [group]"), because the default "nobody" may not read a doc root below /root.
#
# Environment: NGINX (default /usr/sbin/nginx, else nginx from PATH),
# ONAIR_NGINX_START_TIMEOUT seconds to wait for the port (default 20).
# Exit status: 0 started; 1 usage, bad argument, bad config or already running;
# 2 nginx did not start; 3 the listen port is taken (pick another and retry).
set -euo pipefail
shopt -u patsub_replacement 2>/dev/null || true

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() { echo "start-nginx.sh: $*" >&2; exit 1; }

[ $# -ge 3 ] && [ $# -le 4 ] ||
    die "usage: start-nginx.sh RUNTIME_DIR LISTEN_PORT RELAY_ADDR[,RELAY_ADDR...] [DOC_ROOT]"

nginx=${NGINX:-/usr/sbin/nginx}
if [ ! -x "$nginx" ]; then
    nginx=$(command -v nginx) || die "nginx not found (set NGINX)"
fi

# Paths end up inside quoted strings in nginx.conf.
check_path() {
    case "$1" in
        *[\"\\\$\;\{\}]* | *$'\n'*) die "unsupported character in path: $1" ;;
    esac
}

mkdir -p "$1"
runtime=$(cd "$1" && pwd)
check_path "$runtime"

port=$2
[[ $port =~ ^[0-9]{1,5}$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] ||
    die "bad listen port: $port"

upstreams=""
IFS=, read -r -a relays <<< "$3"
[ ${#relays[@]} -gt 0 ] || die "no relay address"
for relay in "${relays[@]}"; do
    if [[ $relay =~ ^127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}:([0-9]{1,5})$ ]] ||
       [[ $relay =~ ^\[::1\]:([0-9]{1,5})$ ]]; then
        rport=${BASH_REMATCH[1]}
        [ "$rport" -ge 1 ] && [ "$rport" -le 65535 ] || die "bad relay port: $relay"
    else
        die "relay address must be loopback (127.x.x.x:PORT or [::1]:PORT): $relay"
    fi
    [ -z "$upstreams" ] || upstreams+=$'\n        '
    upstreams+="server $relay;"
done

if [ $# -ge 4 ]; then
    mkdir -p "$4"
    docroot=$(cd "$4" && pwd)
else
    docroot=$runtime/www
    mkdir -p "$docroot"
    cp "$here/player.html" "$docroot/player.html"
fi
check_path "$docroot"

user_line=""
if [ "$(id -u)" = 0 ]; then
    user_line="user ${ONAIR_NGINX_USER:-$(stat -c '%U %G' "$runtime")};"
fi

# A running instance owns this directory: refuse to start a second one on top of it.
if [ -f "$runtime/nginx.master.pid" ]; then
    old=$(cat "$runtime/nginx.master.pid" 2>/dev/null || true)
    if [[ $old =~ ^[0-9]+$ ]] && [ -r "/proc/$old/cmdline" ] &&
       tr '\0' ' ' < "/proc/$old/cmdline" | grep -qF -- "$runtime/nginx.conf"; then
        die "nginx $old is already running for $runtime (stop-nginx.sh $runtime)"
    fi
    rm -f "$runtime/nginx.master.pid"
fi

mkdir -p "$runtime/logs" "$runtime/tmp" "$runtime/cache"
conf=$(cat "$here/nginx.conf.in")
conf=${conf//@LISTEN_PORT@/$port}
conf=${conf//@UPSTREAMS@/$upstreams}
conf=${conf//@RUNTIME_DIR@/$runtime}
conf=${conf//@DOC_ROOT@/$docroot}
conf=${conf//@USER_LINE@/$user_line}
if [[ $conf =~ @[A-Z_]+@ ]]; then die "placeholder ${BASH_REMATCH[0]} left in nginx.conf.in"; fi
printf '%s\n' "$conf" > "$runtime/nginx.conf"

args=(-p "$runtime/" -e "$runtime/logs/error.log" -c "$runtime/nginx.conf" -g "daemon off;")
if ! out=$("$nginx" -t -q "${args[@]}" 2>&1); then
    echo "start-nginx.sh: nginx -t rejected $runtime/nginx.conf:" >&2
    echo "$out" >&2
    exit 1
fi

touch "$runtime/logs/error.log"
log_offset=$(( $(stat -c %s "$runtime/logs/error.log") + 1 ))
rm -f "$runtime/nginx.pid"
"$nginx" "${args[@]}" < /dev/null >> "$runtime/logs/nginx.out" 2>&1 &
pid=$!
echo "$pid" > "$runtime/nginx.master.pid"

# Alive and not a zombie.
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

# An HTTP answer on the port (any status).
answers() {
    timeout 2 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "HEAD / HTTP/1.0\r\n\r\n" >&3
        IFS= read -r line <&3 && [[ $line == HTTP/* ]]' _ "$port" 2>/dev/null
}

deadline=$(( SECONDS + ${ONAIR_NGINX_START_TIMEOUT:-20} ))
while :; do
    if ! alive "$pid"; then
        rc=0
        wait "$pid" || rc=$?
        rm -f "$runtime/nginx.master.pid"
        log=$(tail -c "+$log_offset" "$runtime/logs/error.log" 2>/dev/null || true)
        echo "start-nginx.sh: nginx exited with status $rc:" >&2
        printf '%s\n' "$log" | tail -n 20 >&2
        if grep -q "Address already in use" <<< "$log"; then exit 3; fi
        exit 2
    fi
    # nginx writes its pid file only after it has bound the listen socket, so a port that
    # answers before that belongs to someone else.
    if [ "$(cat "$runtime/nginx.pid" 2>/dev/null || true)" = "$pid" ] && answers; then
        break
    fi
    if [ $SECONDS -ge $deadline ]; then
        echo "start-nginx.sh: nginx did not answer on 127.0.0.1:$port in time" >&2
        bash "$here/stop-nginx.sh" "$runtime" >&2 || true
        exit 2
    fi
    sleep 0.1
done

echo "$pid"
