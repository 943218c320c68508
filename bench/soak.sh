#!/bin/sh
# Glue of `make bench-soak` (bench/soak.mk): a soak test of elbod, not a unit test. For
# BENCH_SOAK_SECONDS (600) it keeps BENCH_SOAK_CONNS (64) connections busy with mixed traffic
# while the agent trains, and watches for errors, latency and resident memory minute by minute.
#
# It starts elbod (its defaults, plus BENCH_SOAK_ELBOD_ARGS) on a free 127.0.0.1 port with a
# temporary data directory, creates a pendulum-like agent (observation 3, action 1, box [-2, 2],
# default settings but train_ratio 0: it trains throughout), fills its replay to capacity with
# episodes of 8 steps, waits for training to start and opens one session per session
# connection. Then, minute by
# minute, four wrk processes (one thread each, bench/soak.lua) run side by side:
#   policy   half of the connections: POST .../act in policy mode (the HTTP threads), each
#            connection pausing BENCH_SOAK_POLICY_DELAY_MS (5) before each request, as robots
#            with a 200 Hz control loop (unpaced, policy acts take the 2-core machine's CPU
#            from the planning workers and the trainer, which are niced);
#   session  3/16: plan-mode session acts, one session per connection, each recorded for
#            training, episodes of 200 steps;
#   plan     1/8: POST .../plan (whole plans);
#   submit   the rest (3/16): POST .../transitions with one 8-step episode each.
# With 64 connections the three kinds that take a worker hold 32 connections: as many as
# max_agent_inflight allows one agent (32), so a 429 is not expected; a 429, or a 503 with
# Retry-After, is counted apart as an intended refusal and is not an error.
#
# After each minute the wrk processes end; the script waits until no request is queued for or
# held by a worker (elbod_http_worker_jobs in /metrics: the plans of connections wrk closed still
# run) so that the next minute starts from an idle pool, and reads elbod's VmRSS from
# /proc/PID/status. One line per minute: requests served per kind, intended refusals, errors
# (any other non-2xx, and wrk's socket errors: connect, read, write, timeouts), p99 latency per
# kind (wrk --latency: sending a request to its full response), VmRSS (and of it RssAnon, the
# heap and thread stacks: RssFile is the binary, libraries and the store's mapped pages), the
# training step.
#
# At the end: a summary, then `RESULT soak_minutes=.. requests=.. errors=.. rss_first_mb=..
# rss_last_mb=.. rss_growth_after_warmup_mb=.. p99_max_ms=..`, and the verdict: errors must be 0,
# VmRSS after the warm-up (BENCH_SOAK_WARMUP_MIN, 2 minutes) may not exceed its value at the end
# of the warm-up by more than BENCH_SOAK_RSS_SLACK_MB (4), training must advance every minute,
# and elbod, stopped by its PID with SIGTERM, must exit 0. Exit status 0 when all hold, 1 if not.
#
# Usage: sh bench/soak.sh [ELBOD_BINARY]
# Knobs (environment): BENCH_SOAK_SECONDS (600), BENCH_SOAK_CONNS (64), BENCH_SOAK_WARMUP_MIN
# (2), BENCH_SOAK_RSS_SLACK_MB (4), BENCH_SOAK_POLICY_DELAY_MS (5; 0: as fast as they are
# answered), BENCH_SOAK_ELBOD_ARGS (extra elbod flags), BENCH_SOAK_KEEP=1
# keeps the temporary directory (elbod.log, every wrk output, minutes.txt).
set -eu

elbod=${1:-build/elbod}
secs=${BENCH_SOAK_SECONDS:-600}
conns=${BENCH_SOAK_CONNS:-64}
warmup=${BENCH_SOAK_WARMUP_MIN:-2}
slack=${BENCH_SOAK_RSS_SLACK_MB:-4}
elbod_args=${BENCH_SOAK_ELBOD_ARGS:-}
policy_delay=${BENCH_SOAK_POLICY_DELAY_MS:-5}
here=$(cd "$(dirname "$0")" && pwd)
agent=soak
host=127.0.0.1

for tool in wrk curl python3; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "bench-soak: $tool is missing (sh scripts/deps.sh bench installs it)" >&2
		exit 1
	fi
done
if [ ! -x "$elbod" ]; then
	echo "bench-soak: no elbod at $elbod (make $elbod)" >&2
	exit 1
fi
if [ "$conns" -lt 16 ]; then
	echo "bench-soak: BENCH_SOAK_CONNS must be at least 16" >&2
	exit 1
fi
c_policy=$((conns / 2))
c_session=$((conns * 3 / 16))
c_plan=$((conns / 8))
c_submit=$((conns - c_policy - c_session - c_plan))

tmp=$(mktemp -d /tmp/elbod-bench-soak.XXXXXX)
elbod_pid=""
stop_status=""
wrk_pids=""

# stop_elbod: SIGTERM to elbod's PID, waits, sets stop_status to its exit status
stop_elbod() {
	[ -n "$elbod_pid" ] || return 0
	kill -TERM "$elbod_pid" 2>/dev/null || true
	stop_status=0
	wait "$elbod_pid" || stop_status=$?
	elbod_pid=""
}

cleanup() {
	rc=$?
	trap - EXIT INT TERM
	for p in $wrk_pids; do
		kill "$p" 2>/dev/null || true
	done
	if [ -n "$elbod_pid" ]; then
		stop_elbod
		if [ "$stop_status" -ne 0 ]; then
			echo "bench-soak: elbod exited with status $stop_status after SIGTERM" >&2
			[ "$rc" -ne 0 ] || rc=1
		fi
	fi
	if [ "$rc" -ne 0 ] || [ "${BENCH_SOAK_KEEP:-0}" = 1 ]; then
		echo "bench-soak: kept $tmp (elbod.log, wrk outputs, minutes.txt)" >&2
	else
		rm -rf "$tmp"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

minutes=$(((secs + 59) / 60))
echo "bench-soak: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) before the run;" \
	"$minutes minute(s), $conns connections: policy $c_policy (${policy_delay} ms pauses)," \
	"session plan $c_session, plan $c_plan, submit $c_submit"

# ---- elbod ---------------------------------------------------------------------------------
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
# shellcheck disable=SC2086 # elbod_args is a list of flags
start_elbod bench-soak $elbod_args

cat >"$tmp/agent.json" <<EOF
{"name":"$agent","observation_dim":3,"action_dim":1,"action_low":[-2],"action_high":[2],
 "training":{"train_ratio":0}}
EOF
code=$(post /v1/agents "$tmp/agent.json" "$tmp/agent.out")
[ "$code" = 201 ] || {
	echo "bench-soak: creating the agent gave $code: $(cat "$tmp/agent.out")" >&2
	exit 1
}

# Episodes of 8 steps with random actions, the size of the submissions to come, enough to fill
# the replay (replay_capacity steps) before the soak starts: from the first minute on the oldest
# episodes make room for the new ones, and the replay holds about as many episodes as it will
# throughout, so its memory is at its steady state from the start. (An episode's arrays have
# room for 16 steps at least: 100000 steps take about 6.5 MB in 8-step episodes and 3.7 MB in
# 200-step ones. Filled with long episodes first, the replay grew by 3 MB over the first 6
# minutes as they left, which looked like a leak.) Eviction is soaked too.
capacity=$(sed -n 's/.*"replay_capacity":\([0-9]*\).*/\1/p' "$tmp/agent.out")
python3 "$here/random_episodes.py" "$tmp/episodes" 8 $((${capacity:-100000} / 9 + 100)) \
	--per-file 1000
for f in "$tmp"/episodes-*.json; do
	code=$(post "/v1/agents/$agent/transitions" "$f" "$tmp/episodes.out")
	[ "$code" = 200 ] || {
		echo "bench-soak: submitting episodes gave $code: $(cat "$tmp/episodes.out")" >&2
		exit 1
	}
done
rm -f "$tmp"/episodes-*.json

# train_step: the agent's training step
train_step() {
	curl -s "$base/v1/agents/$agent/training" | sed -n 's/^{"step":\([0-9]*\).*/\1/p'
}
i=0
while [ "$(train_step)" = 0 ] || [ -z "$(train_step)" ]; do
	i=$((i + 1))
	if [ $i -gt 600 ]; then
		echo "bench-soak: training did not start within 60 s" >&2
		exit 1
	fi
	sleep 0.1
done

printf '{}' >"$tmp/empty.json"
sids=""
i=0
while [ $i -lt "$c_session" ]; do
	code=$(post "/v1/agents/$agent/sessions" "$tmp/empty.json" "$tmp/session.out")
	[ "$code" = 201 ] || {
		echo "bench-soak: opening a session gave $code: $(cat "$tmp/session.out")" >&2
		exit 1
	}
	sids="$sids $(sed -n 's/.*"session_id":"\([^"]*\)".*/\1/p' "$tmp/session.out")"
	i=$((i + 1))
done

# rss_mb FIELD: a line of elbod's /proc/PID/status (VmRSS, RssAnon, ...) in MB, one decimal
rss_mb() {
	awk -v f="$1:" '$1 == f { printf "%.1f", $2 / 1024 }' "/proc/$elbod_pid/status"
}

# worker_jobs: requests queued for or held by a worker (elbod_http_worker_jobs), or "?"
worker_jobs() {
	curl -s -m 5 "$base/metrics" |
		awk '/^elbod_http_worker_jobs\{/ { n += $2; seen = 1 } END { print seen ? n : "?" }'
}

# drain: waits (60 s at most) until no request is queued for or held by a worker
drain() {
	i=0
	while [ "$(worker_jobs)" != 0 ] && [ $i -lt 600 ]; do
		sleep 0.1
		i=$((i + 1))
	done
}

# parse FILE: "requests p99_ms socket_errors ok r429 r503 other" of one wrk --latency output
parse() {
	awk '
	function ms(v) {
		if (v ~ /us$/) { sub(/us$/, "", v); return v / 1000 }
		if (v ~ /ms$/) { sub(/ms$/, "", v); return v + 0 }
		if (v ~ /m$/) { sub(/m$/, "", v); return v * 60000 }
		if (v ~ /s$/) { sub(/s$/, "", v); return v * 1000 }
		return v + 0
	}
	/^ +99% / { p99 = ms($2) }
	/ requests in / { req = $1 }
	/Socket errors:/ { gsub(/,/, ""); sock += $4 + $6 + $8 + $10 }
	/^soak_status / {
		for (i = 2; i <= NF; i++) { split($i, kv, "="); st[kv[1]] = kv[2] }
	}
	END { printf "%d %.1f %d %d %d %d %d\n", req, p99, sock, st["ok"], st["r429"], st["r503"], st["other"] }
	' "$1"
}

lua="$here/soak.lua"
export SOAK_AGENT="$agent"
minutes_txt="$tmp/minutes.txt"
: >"$minutes_txt"

fmt='%6s %8s %8s %8s %8s %6s %6s %6s %9s %9s %9s %9s %8s %8s %8s\n'
# shellcheck disable=SC2059 # fmt is the table's format
printf "\n$fmt" minute policy session plan submit r429 r503 errors "p99 pol" "p99 ses" \
	"p99 plan" "p99 sub" "rss MB" "anon MB" step
# shellcheck disable=SC2059
printf "$fmt" "" served served served served "" "" "" ms ms ms ms "" "" ""
m=1
while [ "$m" -le "$minutes" ]; do
	d=60
	left=$((secs - (m - 1) * 60))
	[ "$left" -lt 60 ] && d=$left
	wrk_pids=""
	for k in policy session plan submit; do
		c=$(eval "echo \$c_$k")
		args=""
		[ "$k" = session ] && args="-- $sids"
		delay_ms=0
		[ "$k" = policy ] && delay_ms=$policy_delay
		# shellcheck disable=SC2086 # args: wrk's separator and the session ids
		SOAK_KIND=$k SOAK_DELAY_MS=$delay_ms wrk -t1 -c"$c" -d"${d}s" --timeout 30s --latency -s "$lua" "$base/" $args \
			>"$tmp/wrk-$m-$k.txt" 2>&1 &
		wrk_pids="$wrk_pids $!"
	done
	failed=""
	for p in $wrk_pids; do
		wait "$p" || failed=1
	done
	wrk_pids=""
	if [ -n "$failed" ]; then
		cat "$tmp"/wrk-"$m"-*.txt >&2
		echo "bench-soak: wrk failed in minute $m" >&2
		exit 1
	fi
	if ! kill -0 "$elbod_pid" 2>/dev/null; then
		tail -n 30 "$tmp/elbod.log" >&2
		echo "bench-soak: elbod died in minute $m" >&2
		elbod_pid=""
		exit 1
	fi
	drain
	rss=$(rss_mb VmRSS)
	anon=$(rss_mb RssAnon)
	step=$(train_step)
	line="$m"
	r429=0 r503=0 errs=0 p99s=""
	for k in policy session plan submit; do
		# shellcheck disable=SC2046 # parse prints seven fields
		set -- $(parse "$tmp/wrk-$m-$k.txt")
		line="$line $k $4 $2"
		r429=$((r429 + $5))
		r503=$((r503 + $6))
		errs=$((errs + $3 + $7))
		p99s="$p99s $2"
		eval "ok_$k=\$4"
	done
	# minutes.txt: minute, served per kind, r429, r503, errors, p99 per kind, VmRSS, step, RssAnon
	# shellcheck disable=SC2154,SC2086 # ok_* are set by the eval above
	echo "$m $ok_policy $ok_session $ok_plan $ok_submit $r429 $r503 $errs$p99s $rss ${step:-0}" \
		"$anon" >>"$minutes_txt"
	# shellcheck disable=SC2086
	set -- $p99s
	# shellcheck disable=SC2059
	printf "$fmt" "$m" "$ok_policy" "$ok_session" "$ok_plan" "$ok_submit" "$r429" "$r503" \
		"$errs" "$1" "$2" "$3" "$4" "$rss" "$anon" "${step:-?}"
	grep -h '^soak_error' "$tmp"/wrk-"$m"-*.txt 2>/dev/null | head -n 5 | sed 's/^/       /' || true
	m=$((m + 1))
done

replay=$(curl -s "$base/v1/agents/$agent/training" | sed -n 's/.*"replay_size":\([0-9]*\).*/\1/p')
rejected=$(curl -s "$base/metrics" | awk '/^elbod_http_rejected_total/ { printf "%s%s", sep, $0; sep = ", " }')
stop_elbod

# ---- summary, RESULT and verdict -------------------------------------------------------------
awk -v warm="$warmup" -v slack="$slack" -v stop="$stop_status" -v tmpd="$tmp" '
{
	n++; m[n] = $1
	pol += $2; ses += $3; pla += $4; sub_ += $5; r429 += $6; r503 += $7; err += $8
	for (k = 9; k <= 12; k++) if ($k > p99max) p99max = $k
	rss[n] = $13; step[n] = $14
}
END {
	req = pol + ses + pla + sub_
	first = rss[1]; last = rss[n]
	wi = (n > warm) ? warm : n
	base = rss[wi]; peak = base
	for (i = wi + 1; i <= n; i++) if (rss[i] > peak) peak = rss[i]
	growth = peak - base
	stalled = 0
	for (i = 2; i <= n; i++) if (step[i] <= step[i - 1]) stalled++
	printf "\nbench-soak: %d minute(s): %d requests served (policy %d, session plan %d, plan %d, " \
		"submit %d), %d intended 429, %d intended 503, %d errors\n", n, req, pol, ses, pla, sub_, \
		r429, r503, err
	printf "bench-soak: VmRSS %.1f MB after minute 1, %.1f MB after the warm-up (minute %d), " \
		"peak %.1f MB after it, %.1f MB at the end: growth after warm-up (peak - warm-up) " \
		"%.1f MB (allowed %s)\n", first, base, wi, peak, last, growth, slack
	printf "bench-soak: worst p99 of a minute %.1f ms; training step %d after minute 1, %d at " \
		"the end\n", p99max, step[1], step[n]
	printf "RESULT soak_minutes=%d requests=%d errors=%d rss_first_mb=%.1f rss_last_mb=%.1f " \
		"rss_growth_after_warmup_mb=%.1f p99_max_ms=%.1f\n", n, req, err, first, last, growth, \
		p99max
	bad = 0
	if (err > 0) { print "bench-soak: FAIL: " err " errors (see " tmpd "/wrk-*.txt)"; bad = 1 }
	if (n > warm && growth > slack) {
		printf "bench-soak: FAIL: VmRSS grew %.1f MB after the warm-up (allowed %s)\n", growth, \
			slack
		bad = 1
	}
	if (stalled > 0) { print "bench-soak: FAIL: training did not advance in " stalled " minute(s)"; bad = 1 }
	if (stop != 0) { print "bench-soak: FAIL: elbod exited with status " stop " after SIGTERM"; bad = 1 }
	if (!bad) print "bench-soak: PASS: no errors, no memory growth after warm-up, training ran, clean exit"
	exit bad
}' "$minutes_txt" || {
	echo "bench-soak: replay $replay transitions at the end; $rejected" >&2
	exit 1
}
echo "bench-soak: elbod stopped cleanly (exit 0); replay ${replay:-?} transitions; ${rejected:-no refusals}"
