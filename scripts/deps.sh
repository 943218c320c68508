#!/bin/sh
# Installs the Debian packages elbod needs, by name, and nothing else.
# A no-op when everything is present. Usage: scripts/deps.sh [build|test|bench|runtime]
#   build: what `make` and `make run` need; test: plus what `make test` needs;
#   bench: plus what the benchmarks need (wrk, nginx, gnuplot, PyTorch);
#   runtime: only the shared libraries an installed elbod and elboctl load (the Dockerfile's
#   runtime stage), plus curl for health checks.
set -eu
what=${1:-test}

build_pkgs="gcc libc6-dev make pkg-config libopenblas-dev libjansson-dev libmicrohttpd-dev
libsqlite3-dev libcurl4-openssl-dev libsystemd-dev nettle-dev curl ca-certificates"
test_pkgs="check clang-format python3 procps chromium clang libclang-rt-14-dev openssl"
bench_pkgs="wrk nginx-light gnuplot-nox python3-torch"
runtime_pkgs="libopenblas0-pthread libjansson4 libmicrohttpd12 libsqlite3-0 libcurl4 libsystemd0
libnettle8 ca-certificates curl"

case "$what" in
build) pkgs=$build_pkgs ;;
test) pkgs="$build_pkgs $test_pkgs" ;;
bench) pkgs="$build_pkgs $test_pkgs $bench_pkgs" ;;
runtime) pkgs=$runtime_pkgs ;;
*) echo "usage: $0 [build|test|bench|runtime]" >&2; exit 2 ;;
esac

missing=""
for p in $pkgs; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$status" in
	*" installed") ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0

echo "deps: installing missing Debian packages:$missing"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		sudo=sudo
	else
		echo "deps: not root and no sudo; install as root:$missing" >&2
		exit 1
	fi
fi
export DEBIAN_FRONTEND=noninteractive
# apt-cache needs package lists; a fresh debootstrap or container has none.
$sudo apt-get update -q
# shellcheck disable=SC2086
$sudo apt-get install -y -q --no-install-recommends $missing
