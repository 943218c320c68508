# bench/lib.sh: what the benchmark scripts (http.sh, soak.sh, learn.sh) share; POSIX sh, sourced.
# shellcheck shell=sh
# shellcheck disable=SC2154 # elbod, host and tmp are set by the script that sources this
#
# start_elbod TAG [FLAGS...]: starts $elbod on a free port of $host (--port 0, read back from its
# log $tmp/elbod.log) with the data directory $tmp/data and FLAGS; sets elbod_pid, port and base
# and prints one line. When elbod does not come up it prints the log and exits 1 (TAG names the
# benchmark in messages). The caller's EXIT trap stops elbod by its PID.
start_elbod() {
	_tag=$1
	shift
	: >"$tmp/elbod.log" # exists before the poll reads it
	"$elbod" --host "$host" --port 0 --data-dir "$tmp/data" "$@" >"$tmp/elbod.log" 2>&1 &
	elbod_pid=$!
	port=""
	_i=0
	while [ $_i -lt 300 ]; do
		port=$(sed -n 's/.*event=listening .*port=\([0-9]*\).*/\1/p' "$tmp/elbod.log" | head -n 1)
		[ -n "$port" ] && break
		if ! kill -0 "$elbod_pid" 2>/dev/null; then
			cat "$tmp/elbod.log" >&2
			echo "$_tag: elbod did not start" >&2
			elbod_pid=""
			exit 1
		fi
		sleep 0.1
		_i=$((_i + 1))
	done
	if [ -z "$port" ]; then
		echo "$_tag: elbod did not log its port" >&2
		exit 1
	fi
	base="http://$host:$port"
	echo "$_tag: elbod pid $elbod_pid on $base ($elbod $*)"
}

# post PATH BODY_FILE OUT_FILE: POSTs the JSON file to $base PATH, the answer into OUT_FILE;
# prints the status code.
post() {
	curl -s -o "$3" -w '%{http_code}' -X POST "$base$1" -H 'Content-Type: application/json' \
		--data-binary "@$2"
}
