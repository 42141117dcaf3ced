#!/usr/bin/env bash
# onair set-up and entry points. Installs what is missing (Debian packages), builds, then:
#   scripts/run.sh demo [onair-demo options]   runs the loopback demo (default: 5 s VP8)
#   scripts/run.sh test [ctest options]        runs the whole test suite
# Not root and packages missing: prints the exact apt-get command and stops.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(cmake g++ make pkg-config libasio-dev libopus-dev libvpx-dev doctest-dev libbenchmark-dev nlohmann-json3-dev libssl-dev ffmpeg libwebm-dev nginx chromium)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -eq 0 ]]; then
        echo "onair: installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
    else
        echo "onair: missing Debian packages. Run this, then run me again:"
        echo "  sudo apt-get install -y ${missing[*]}"
        exit 1
    fi
fi

what=${1:-}
shift || true
jobs=$(nproc 2>/dev/null || echo 2)
case "$what" in
demo)
    cmake --preset dev >/dev/null
    cmake --build --preset dev -j "$jobs" --target onair-demo
    args=("$@")
    ((${#args[@]})) || args=(--seconds 5 --out out/demo)
    exec build/dev/bin/onair-demo "${args[@]}"
    ;;
test)
    cmake --preset ci
    cmake --build --preset ci -j "$jobs"
    exec ctest --preset ci -j "$jobs" "$@"
    ;;
*)
    echo "usage: scripts/run.sh demo [onair-demo options] | test [ctest options]" >&2
    exit 2
    ;;
esac
