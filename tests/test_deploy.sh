#!/bin/sh
# test-deploy: `make install` into a temporary DESTDIR (PREFIX=/usr), then checks what landed
# there: the files, the man pages, the default config (parses; lists every key with its default),
# the installed elbod run with the installed config (data_dir and port overridden by flags):
# ready, serving, its sd_notify messages (READY, WATCHDOG, RELOADING, STOPPING) to a fake
# NOTIFY_SOCKET, a clean SIGTERM stop with exit status 0, the same under prctl(PR_SET_MDWE)
# (what the unit's MemoryDenyWriteExecute=yes enforces), `systemd-analyze verify` of the unit,
# a re-install that keeps a changed config, and `make uninstall`.
#
# Run by `make test-deploy` (part of `make test`); needs curl; python3 for the sd_notify and
# W^X checks and systemd-analyze for the unit check (each skipped with a message otherwise).
set -u
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo" || exit 1
MAKE=${MAKE:-make}

passed=0
failed=0
ok() {
	passed=$((passed + 1))
	echo "  ok    $*"
}
bad() {
	failed=$((failed + 1))
	echo "  FAIL  $*"
}
skip() { echo "  skip  $*"; }
contains() { case $1 in *"$2"*) return 0 ;; esac; return 1; }
check() { # check DESCRIPTION COMMAND...
	d=$1
	shift
	if "$@"; then ok "$d"; else bad "$d"; fi
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/elbod-deploy.XXXXXX") || exit 1
root=$tmp/root
pids="" # processes this script started, killed on exit if still running
cleanup() {
	for p in $pids; do kill -KILL "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A clean environment for the daemon: no ELBOD_* variable of the caller changes the settings.
run_env() { env -i PATH="$PATH" HOME="$tmp" LANG=C "$@"; }
# run_env with stdout to file $1.
run_env_to() {
	o=$1
	shift
	run_env "$@" >"$o"
}
has_python() { command -v python3 >/dev/null 2>&1; }

echo "test-deploy: make install DESTDIR=$root PREFIX=/usr"
if ! $MAKE --no-print-directory install DESTDIR="$root" PREFIX=/usr >"$tmp/install.log" 2>&1; then
	cat "$tmp/install.log"
	bad "make install"
	echo "test-deploy: $passed passed, $failed failed"
	exit 1
fi
ok "make install DESTDIR=... PREFIX=/usr"

bin=$root/usr/bin/elbod
conf=$root/etc/elbod/elbod.conf
unit=$root/usr/lib/systemd/system/elbod.service
for f in usr/bin/elbod usr/bin/elboctl usr/lib/elbod/examples/robot_pendulum \
	usr/lib/elbod/examples/robot_cartpole; do
	check "installed executable /$f" test -x "$root/$f"
done
for f in usr/share/man/man1/elbod.1 usr/share/man/man1/elboctl.1 \
	usr/lib/elbod/python/elbod_client.py usr/lib/elbod/python/example_pendulum.py \
	usr/share/elbod/elbod.conf usr/lib/systemd/system/elbod.service etc/elbod/elbod.conf; do
	check "installed file /$f" test -s "$root/$f"
done
# shellcheck disable=SC2016 # ${STATE_DIRECTORY} is systemd's, literally in the unit
check "the unit runs /usr/bin/elbod with /etc/elbod/elbod.conf" \
	grep -qx 'ExecStart=/usr/bin/elbod --config /etc/elbod/elbod.conf --data-dir ${STATE_DIRECTORY}' "$unit"

# Man pages: roff from --help.
for p in elbod elboctl; do
	page=$root/usr/share/man/man1/$p.1
	check "$p.1 is a man page of section 1" grep -q "^\.TH $(echo "$p" | tr '[:lower:]' '[:upper:]') 1 " "$page"
	if command -v groff >/dev/null 2>&1; then
		out=$(groff -man -Tutf8 -ww -z "$page" 2>&1)
		check "$p.1 renders without groff warnings" test -z "$out"
	fi
done
check "elbod.1 lists the flags" grep -q '^  \\-\\-data\\-dir <text>' "$root/usr/share/man/man1/elbod.1"

# The default config: parses, names /var/lib/elbod, lists every key with its default.
defaults=$(run_env "$bin" --print-config)
check "the installed config parses (elbod --config ... --print-config)" \
	run_env_to "$tmp/effective.conf" "$bin" --config "$conf" --print-config
check "the installed config sets data_dir = /var/lib/elbod" \
	grep -qx 'data_dir = /var/lib/elbod' "$tmp/effective.conf"
missing=""
for k in $(printf '%s\n' "$defaults" | cut -d' ' -f1); do
	grep -Eq "^#?$k = " "$conf" || missing="$missing $k"
done
check "the installed config lists every key${missing:+ (missing:$missing)}" test -z "$missing"
sed -E 's/^#([a-z_]+ = )/\1/' "$conf" >"$tmp/uncommented.conf"
if [ "$(run_env "$bin" --config "$tmp/uncommented.conf" --print-config 2>&1)" = \
	"$(run_env "$bin" --data-dir /var/lib/elbod --print-config)" ]; then
	ok "every value in the config is the built-in default (but data_dir)"
else
	bad "every value in the config is the built-in default (but data_dir)"
fi
check "the installed config is the shipped default" cmp -s "$conf" "$root/usr/share/elbod/elbod.conf"

# Starts the installed elbod ($@ before it: a wrapper), sets $pid and $port; 0 when ready.
start() {
	log=$1
	shift
	# env itself in the background (not a function: that would fork a shell), so that $! is the
	# daemon's PID once env and any wrapper exec it.
	# shellcheck disable=SC2086 # notify_env is a list of VAR=value words
	env -i PATH="$PATH" HOME="$tmp" LANG=C ${notify_env:-} "$@" "$bin" --config "$conf" --data-dir "$tmp/data" --host 127.0.0.1 \
		--port 0 >"$log" 2>&1 &
	pid=$!
	pids="$pids $pid"
	port=""
	i=0
	while [ $i -lt 300 ]; do
		port=$(sed -n 's/.*event=listening .* port=\([0-9][0-9]*\).*/\1/p' "$log" | head -n 1)
		[ -n "$port" ] && break
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.1
		i=$((i + 1))
	done
	[ -n "$port" ] || return 1
	i=0
	while [ $i -lt 300 ]; do
		[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz")" = 200 ] && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}
# Sends SIGTERM to $pid and waits; 0 when it exited with status 0.
stop() {
	kill -TERM "$pid" 2>/dev/null
	wait "$pid"
	status=$?
	[ "$status" -eq 0 ]
}
# Waits up to 10 s for a line matching $1 in file $2.
wait_for() {
	i=0
	while [ $i -lt 100 ]; do
		grep -q "$1" "$2" 2>/dev/null && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# The notification states, in order, end with READY=1 RELOADING=1 READY=1 (waits up to 10 s).
reloaded() {
	i=0
	while [ $i -lt 100 ]; do
		states=$(grep -oE '^(READY|RELOADING|STOPPING)=1' "$tmp/notify.log" | tr '\n' ' ')
		[ "$states" = "READY=1 RELOADING=1 READY=1 " ] && return 0
		sleep 0.1
		i=$((i + 1))
	done
	echo "        states: $states"
	return 1
}

# A stand-in for systemd's notification socket: logs every datagram as one line.
notify_env=""
if has_python; then
	sock=$tmp/notify.sock
	python3 - "$sock" "$tmp/notify.log" <<'EOF' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(300)
with open(sys.argv[2], "a") as log:
    while True:
        try:
            msg = s.recv(4096)
        except socket.timeout:
            break
        log.write(msg.decode().replace("\n", " ") + "\n")
        log.flush()
EOF
	listener=$!
	pids="$pids $listener"
	i=0
	while [ ! -S "$sock" ] && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	notify_env="NOTIFY_SOCKET=$sock WATCHDOG_USEC=1000000"
else
	skip "sd_notify checks (no python3)"
fi

echo "test-deploy: running the installed elbod"
if start "$tmp/elbod.log"; then
	ok "the installed elbod starts with the installed config and answers /readyz 200"
	url=http://127.0.0.1:$port
	v=$(curl -s "$url/v1/version")
	check "GET /v1/version answers elbod's version" \
		contains "$v" "\"version\":\"$("$bin" --version | cut -d' ' -f2)\""
	check "the --data-dir flag wins over the config's data_dir" test -d "$tmp/data"
	check "the installed elboctl talks to it" \
		run_env_to /dev/null "$root/usr/bin/elboctl" --url "$url" version
	if has_python; then
		check "the installed Python client talks to it" run_env PYTHONPATH="$root/usr/lib/elbod/python" \
			python3 -c 'import sys, elbod_client; sys.exit(elbod_client.ElbodClient(sys.argv[1]).version()["name"] != "elbod")' "$url"
		check "sd_notify: READY=1 with a status once serving" wait_for "^READY=1 STATUS=serving on 127.0.0.1 port $port" "$tmp/notify.log"
		check "sd_notify: WATCHDOG=1 pings (WATCHDOG_USEC set)" wait_for '^WATCHDOG=1' "$tmp/notify.log"
		kill -HUP "$pid"
		check "SIGHUP reloads the config" wait_for 'event=reloaded' "$tmp/elbod.log"
		check "sd_notify: RELOADING=1 then READY=1 around the reload" reloaded
	fi
	check "SIGTERM stops it with exit status 0" stop
	check "it logged a clean stop" grep -q 'event=stopped status=clean' "$tmp/elbod.log"
	if has_python; then
		check "sd_notify: STOPPING=1 on SIGTERM" grep -q '^STOPPING=1' "$tmp/notify.log"
	fi
else
	bad "the installed elbod starts with the installed config and answers /readyz 200"
	cat "$tmp/elbod.log"
	kill -KILL "$pid" 2>/dev/null
fi
notify_env=""

# MemoryDenyWriteExecute=yes: elbod must never map memory writable and executable. Linux 6.3+
# enforces that on a process tree with prctl(PR_SET_MDWE); the daemon then plans and trains.
if has_python && python3 -c 'import ctypes, sys; sys.exit(ctypes.CDLL(None).prctl(65, 1, 0, 0, 0) != 0)' 2>/dev/null; then
	mdwe="python3 -c 'import ctypes, os, sys; ctypes.CDLL(None).prctl(65, 1, 0, 0, 0) == 0 or sys.exit(99); os.execv(sys.argv[1], sys.argv[1:])'"
	if start "$tmp/mdwe.log" sh -c "exec $mdwe \"\$@\"" mdwe; then
		ok "W^X (PR_SET_MDWE): the installed elbod starts"
		url=http://127.0.0.1:$port
		curl -s -o /dev/null -X POST "$url/v1/agents" -H 'Content-Type: application/json' \
			-d '{"name":"wx","observation_dim":3,"action_dim":1,"action_low":[-2],"action_high":[2],"training":{"min_transitions":5}}'
		sid=$(curl -s -X POST "$url/v1/agents/wx/sessions" | sed -n 's/.*"session_id":"\([^"]*\)".*/\1/p')
		acted=0
		for i in 1 2 3 4 5 6 7 8; do
			code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$url/v1/agents/wx/sessions/$sid/act" \
				-H 'Content-Type: application/json' -d "{\"observation\":[1,0.$i,0],\"reward\":-1}")
			[ "$code" = 200 ] && acted=$((acted + 1))
		done
		check "W^X: it plans (8 session acts answered 200)" test "$acted" -eq 8
		trained=0
		i=0
		while [ $i -lt 100 ]; do
			curl -s "$url/v1/agents/wx/training" | grep -q '"step":[1-9]' && trained=1 && break
			sleep 0.1
			i=$((i + 1))
		done
		check "W^X: it trains (training step > 0)" test "$trained" -eq 1
		check "W^X: SIGTERM stops it with exit status 0" stop
	else
		bad "W^X (PR_SET_MDWE): the installed elbod starts"
		cat "$tmp/mdwe.log"
		kill -KILL "$pid" 2>/dev/null
	fi
else
	skip "W^X check (needs python3 and Linux 6.3+ for PR_SET_MDWE)"
fi

# The unit, as systemd would load it. The binary must exist at ExecStart's path: a copy of the
# unit points into DESTDIR; MANPATH makes its Documentation= man pages the installed ones.
if command -v systemd-analyze >/dev/null 2>&1; then
	mkdir -p "$tmp/unit"
	sed "s|^ExecStart=/usr/bin/elbod |ExecStart=$bin |" "$unit" >"$tmp/unit/elbod.service"
	if command -v man >/dev/null 2>&1; then
		out=$(MANPATH="$root/usr/share/man" systemd-analyze verify "$tmp/unit/elbod.service" 2>&1)
	else
		out=$(systemd-analyze verify --man=no "$tmp/unit/elbod.service" 2>&1)
	fi
	status=$?
	if [ "$status" -eq 0 ] && [ -z "$out" ]; then
		ok "systemd-analyze verify elbod.service (no warnings)"
	else
		bad "systemd-analyze verify elbod.service: $out"
	fi
else
	skip "systemd-analyze verify (systemd-analyze not installed: apt-get install systemd)"
fi

# A re-install keeps a changed config; uninstall removes everything else, and the config too
# when it is unchanged.
echo "# changed by test-deploy" >>"$conf"
if $MAKE --no-print-directory install DESTDIR="$root" PREFIX=/usr >"$tmp/install2.log" 2>&1; then
	check "a re-install keeps a changed /etc/elbod/elbod.conf" grep -q '^# changed by test-deploy$' "$conf"
else
	cat "$tmp/install2.log"
	bad "make install (again)"
fi
$MAKE --no-print-directory uninstall DESTDIR="$root" PREFIX=/usr >"$tmp/uninstall.log" 2>&1
left=$(cd "$root" && find . ! -type d | sort | tr '\n' ' ')
check "make uninstall removes everything but the changed config (left: $left)" \
	test "$left" = "./etc/elbod/elbod.conf "
rm -f "$conf"
$MAKE --no-print-directory install DESTDIR="$root" PREFIX=/usr >"$tmp/install3.log" 2>&1
$MAKE --no-print-directory uninstall DESTDIR="$root" PREFIX=/usr >"$tmp/uninstall2.log" 2>&1
left=$(cd "$root" && find . ! -type d | sort | tr '\n' ' ')
check "make uninstall removes an unchanged config too (left: ${left:-nothing})" test -z "$left"

echo "test-deploy: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
