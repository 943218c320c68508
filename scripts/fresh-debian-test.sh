#!/bin/sh
# Checks the README's install story on a fresh machine: in a minimal Debian 12 root where only
# `make` and `git` were added, as root, `git clone <repo> && cd <repo> && make test` must install
# every missing package (scripts/deps.sh), build and pass the tests.
# Developer tool, not run by `make test`. Needs root, debootstrap and network to Debian's mirror.
#
# Usage: sudo sh scripts/fresh-debian-test.sh [ROOT]      (ROOT defaults to /var/tmp/elbod-fresh)
#   The first run creates ROOT (debootstrap --variant=minbase bookworm, plus make and git) and
#   leaves it for reuse. Every run works on a throwaway overlay on top of ROOT (ROOT stays
#   pristine, so each run is a fresh machine), clones the committed HEAD of this repository
#   (uncommitted changes are not tested), runs `make test` and exits with its status.
#   KEEP=1 keeps the overlay's changes (the run's directory is printed) for inspection.
set -eu

root=${1:-/var/tmp/elbod-fresh}
mirror=${MIRROR:-http://deb.debian.org/debian}
repo=$(cd "$(dirname "$0")/.." && pwd)

say() { echo "fresh-debian-test: $*" >&2; }

[ "$(id -u)" -eq 0 ] || { say "must run as root (debootstrap, mount, chroot)"; exit 1; }
head=$(git -C "$repo" rev-parse HEAD)
start=$(date +%s)

# 1. The base root, created once: minbase bookworm, the host's apt sources, make and git.
if [ ! -e "$root/.elbod-fresh-ready" ]; then
	if [ -e "$root/debootstrap" ]; then
		say "$root holds an unfinished debootstrap; remove it and re-run"
		exit 1
	fi
	if [ -e "$root" ] && [ -n "$(ls -A "$root" 2>/dev/null)" ] && [ ! -e "$root/etc/debian_version" ]; then
		say "$root exists, is not empty and is not a Debian root; refusing to use it"
		exit 1
	fi
	if ! command -v debootstrap >/dev/null 2>&1; then
		say "installing debootstrap"
		apt-get update -q
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap
	fi
	if [ ! -e "$root/etc/debian_version" ]; then
		say "creating $root (debootstrap minbase bookworm)"
		debootstrap --variant=minbase bookworm "$root" "$mirror"
	fi
	if [ -f /etc/apt/sources.list.d/debian.sources ]; then
		cp /etc/apt/sources.list.d/debian.sources "$root/etc/apt/sources.list.d/debian.sources"
		rm -f "$root/etc/apt/sources.list" # debootstrap's one-line copy; avoids duplicate entries
	fi
	cp -L /etc/resolv.conf "$root/etc/resolv.conf"
	# Without recommends (git's would add perl, patch, ssh...): a stricter test than a default install.
	say "installing make and git in $root"
	chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
		/bin/sh -c 'apt-get update -q && apt-get install -y -q --no-install-recommends make git && apt-get clean'
	touch "$root/.elbod-fresh-ready"
fi

# 2. A throwaway overlay on top of the base, with /proc, /sys, /dev and the repository mounted.
run=$(mktemp -d "${root%/}.run.XXXXXX")
mnt=$run/merged
mounted="" # mount points, innermost first

# shellcheck disable=SC2317 # invoked by the traps
cleanup() {
	status=$?
	trap - EXIT INT TERM HUP
	for m in $mounted; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || say "could not unmount $m"
	done
	# Only upper/ and work/ hold files; merged/ is just the mount point and is never recursed into.
	if [ "${KEEP:-0}" = 1 ]; then
		say "kept the run's changes in $run/upper"
	else
		rm -rf "$run/upper" "$run/work"
		rmdir "$mnt" "$run" 2>/dev/null || say "left $run (something is still mounted?)"
	fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

mkdir -p "$run/upper" "$run/work" "$mnt"
mount -t overlay overlay -o "lowerdir=$root,upperdir=$run/upper,workdir=$run/work" "$mnt"
mounted="$mnt"
cp -L /etc/resolv.conf "$mnt/etc/resolv.conf"
for d in proc sys dev; do
	mkdir -p "$mnt/$d"
	mount --bind "/$d" "$mnt/$d"
	mounted="$mnt/$d $mounted"
done
mkdir -p "$mnt/mnt/src"
mount --bind "$repo" "$mnt/mnt/src"
mounted="$mnt/mnt/src $mounted"
mount -o remount,bind,ro "$mnt/mnt/src"

# 3. As root on the fresh machine, with a clean environment: clone HEAD, make test.
say "testing $head in a fresh bookworm (base $root)"
set +e
# shellcheck disable=SC2016 # $HEAD expands inside the chroot
chroot "$mnt" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	LANG=C.UTF-8 TERM=dumb HEAD="$head" /bin/sh -c '
	set -e
	git -c safe.directory="*" clone -q /mnt/src /root/elbod
	cd /root/elbod
	git -c advice.detachedHead=false checkout -q "$HEAD"
	make test'
status=$?
set -e
end=$(date +%s)
if [ "$status" -eq 0 ]; then
	say "PASS: make test on a fresh bookworm ($head, $((end - start)) s)"
else
	say "FAIL: make test exited with $status ($head, $((end - start)) s)"
fi
exit "$status"
