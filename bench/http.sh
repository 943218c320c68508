#!/bin/sh
# Glue of `make bench-http` (bench/http.mk): the HTTP benchmark of elbod with wrk, next to nginx
# serving a static file of the same size on loopback in the same run, as this machine's ceiling.
#
# It starts elbod on a free 127.0.0.1 port with a temporary data directory, creates a
# pendulum-like agent (observation 3, action 1, box [-2, 2]), submits generated episodes so that
# the trainer runs (with train_ratio 0, no cap: it trains throughout, as a busy agent does), and
# checks that the training step advances during every run. Then wrk, with the same thread count
# for every target, measures requests per second and latency percentiles of
#   nginx     GET of a static JSON file the size of the policy act response (nginx-light,
#             unprivileged, foreground, keepalive);
#   policy    POST /v1/agents/NAME/act with "mode":"policy" (answered on the HTTP threads);
#   plan      POST /v1/agents/NAME/sessions/ID/act with "mode":"plan" (the default planner, on the
#             worker pool): each connection acts in a session of its own (bench/http_session.lua);
#   submit    POST /v1/agents/NAME/transitions with one 8-step episode;
# at 1, 16 and 64 connections, and last `policy+plan`: policy acts at 16 connections while a
# second wrk runs plan-mode session acts at 16 connections, to show that planning does not stall
# the fast path. nginx and policy alternate at each count for BENCH_HTTP_ROUNDS rounds and the
# table keeps each one's best round (most requests per second, with that round's latencies): on
# a shared 2-core machine other processes only ever slow a round down, and alternating exposes
# both servers to the same interference. elbod runs with its defaults (sync = full, http_threads 2, workers 4) unless
# BENCH_HTTP_ELBOD_ARGS says otherwise.
#
# wrk takes one of the two cores: -t1 by default (BENCH_HTTP_WRK_THREADS), for every target.
# Latencies are wrk's (--latency): from sending a request to its full response, per connection.
#
# Ends with `RESULT policy_rps=.. nginx_rps=.. ratio=.. policy_p99_ms=.. plan_p99_ms=..`: the
# policy and nginx figures at 16 connections (ratio = policy_rps / nginx_rps; target >= 0.70,
# policy p99 < 5 ms), plan_p99_ms the session plan act's p99 at 16 connections.
#
# Usage: sh bench/http.sh [ELBOD_BINARY]
# Knobs (environment): BENCH_HTTP_SECONDS (10 per run), BENCH_HTTP_CONNS ("1 16 64"),
# BENCH_HTTP_ROUNDS (3), BENCH_HTTP_WRK_THREADS (1), BENCH_HTTP_ELBOD_ARGS (extra elbod flags,
# e.g. "--http-threads 1"), BENCH_HTTP_TRAIN_RATIO (0), BENCH_HTTP_KEEP=1 keeps the temporary
# directory (elbod.log, nginx/, every wrk output).
set -eu

elbod=${1:-build/elbod}
secs=${BENCH_HTTP_SECONDS:-10}
conns=${BENCH_HTTP_CONNS:-"1 16 64"}
wt=${BENCH_HTTP_WRK_THREADS:-1}
elbod_args=${BENCH_HTTP_ELBOD_ARGS:-}
train_ratio=${BENCH_HTTP_TRAIN_RATIO:-0}
rounds=${BENCH_HTTP_ROUNDS:-3}
here=$(cd "$(dirname "$0")" && pwd)
agent=pendulum
host=127.0.0.1

for tool in wrk nginx curl python3; do
	if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ]; then
		echo "bench-http: $tool is missing (sh scripts/deps.sh bench installs it)" >&2
		exit 1
	fi
done
nginx_bin=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
if [ ! -x "$elbod" ]; then
	echo "bench-http: no elbod at $elbod (make $elbod)" >&2
	exit 1
fi

tmp=$(mktemp -d /tmp/elbod-bench-http.XXXXXX)
elbod_pid=""
nginx_started=""

cleanup() {
	rc=$?
	trap - EXIT INT TERM
	if [ -n "$nginx_started" ] && [ -s "$tmp/nginx/nginx.pid" ]; then
		kill -TERM "$(cat "$tmp/nginx/nginx.pid")" 2>/dev/null || true
	fi
	if [ -n "$elbod_pid" ] && kill -0 "$elbod_pid" 2>/dev/null; then
		kill -TERM "$elbod_pid" 2>/dev/null || true
		erc=0
		wait "$elbod_pid" || erc=$?
		if [ "$erc" -ne 0 ]; then
			echo "bench-http: elbod exited with status $erc after SIGTERM (log: $tmp/elbod.log)" >&2
			tail -n 20 "$tmp/elbod.log" >&2 || true
			[ "$rc" -ne 0 ] || rc=1
			BENCH_HTTP_KEEP=1
		else
			echo "bench-http: elbod stopped cleanly (exit 0)"
		fi
	fi
	if [ "$rc" -ne 0 ] || [ "${BENCH_HTTP_KEEP:-0}" = 1 ]; then
		echo "bench-http: kept $tmp (elbod.log, nginx/, wrk outputs)" >&2
	else
		rm -rf "$tmp"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

load=$(cut -d' ' -f1-3 /proc/loadavg)
echo "bench-http: $(nproc) CPUs, load average $load before the run; wrk -t$wt for every target," \
	"${secs}s per run"

# ---- elbod ---------------------------------------------------------------------------------
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
# shellcheck disable=SC2086 # elbod_args is a list of flags
start_elbod bench-http $elbod_args

cat >"$tmp/agent.json" <<EOF
{"name":"$agent","observation_dim":3,"action_dim":1,"action_low":[-2],"action_high":[2],
 "training":{"train_ratio":$train_ratio}}
EOF
code=$(post /v1/agents "$tmp/agent.json" "$tmp/agent.out")
[ "$code" = 201 ] || {
	echo "bench-http: creating the agent gave $code: $(cat "$tmp/agent.out")" >&2
	exit 1
}

# Pendulum episodes with random actions: 10 of 200 steps to train on, and one of 8 steps as the
# body of the submission runs.
python3 "$here/random_episodes.py" "$tmp/episodes.json" 200 10 --seed 7
python3 "$here/random_episodes.py" "$tmp/submit.json" 8 1 --seed 8 --compact
code=$(post "/v1/agents/$agent/transitions" "$tmp/episodes.json" "$tmp/episodes.out")
[ "$code" = 200 ] || {
	echo "bench-http: submitting episodes gave $code: $(cat "$tmp/episodes.out")" >&2
	exit 1
}

# train_step: the agent's training step (GET .../training)
train_step() {
	curl -s "$base/v1/agents/$agent/training" | sed -n 's/^{"step":\([0-9]*\).*/\1/p'
}
i=0
while [ "$(train_step)" = 0 ] || [ -z "$(train_step)" ]; do
	i=$((i + 1))
	if [ $i -gt 600 ]; then
		echo "bench-http: training did not start within 60 s" >&2
		exit 1
	fi
	sleep 0.1
done
echo "bench-http: training runs (step $(train_step) after $(cat "$tmp/episodes.out"))"

# ---- request bodies, sessions --------------------------------------------------------------
printf '%s' '{"observation":[0.5,0.8,0.1],"mode":"policy"}' >"$tmp/policy.json"
code=$(post "/v1/agents/$agent/act" "$tmp/policy.json" "$tmp/policy.out")
[ "$code" = 200 ] || {
	echo "bench-http: policy act gave $code: $(cat "$tmp/policy.out")" >&2
	exit 1
}
resp_bytes=$(wc -c <"$tmp/policy.out")

max_c=1
for c in $conns 16; do [ "$c" -gt "$max_c" ] && max_c=$c; done
sids=""
printf '{}' >"$tmp/empty.json"
i=0
while [ $i -lt "$max_c" ]; do
	code=$(post "/v1/agents/$agent/sessions" "$tmp/empty.json" "$tmp/session.out")
	[ "$code" = 201 ] || {
		echo "bench-http: opening a session gave $code: $(cat "$tmp/session.out")" >&2
		exit 1
	}
	sids="$sids $(sed -n 's/.*"session_id":"\([^"]*\)".*/\1/p' "$tmp/session.out")"
	i=$((i + 1))
done

# ---- nginx ---------------------------------------------------------------------------------
ng="$tmp/nginx"
mkdir -p "$ng/www" "$ng/tmp"
cp "$tmp/policy.out" "$ng/www/act.json" # the same bytes as a policy act response
# Started by root, nginx serves from unprivileged worker processes (user nobody): they need to
# read the file through the 0700 temporary directory. (Started by a user, nginx runs as that user.)
chmod 755 "$tmp" "$ng" "$ng/www"
chmod 644 "$ng/www/act.json"
nginx_port=$(free_port)
cat >"$ng/nginx.conf" <<EOF
worker_processes 1;
pid $ng/nginx.pid;
error_log $ng/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    types { application/json json; }
    default_type application/json;
    client_body_temp_path $ng/tmp;
    proxy_temp_path $ng/tmp;
    fastcgi_temp_path $ng/tmp;
    uwsgi_temp_path $ng/tmp;
    scgi_temp_path $ng/tmp;
    keepalive_timeout 65;
    keepalive_requests 100000000;
    # The file's descriptor stays open: without it nginx opens, stats and closes the file on
    # every request (about a third fewer requests per second here).
    open_file_cache max=16 inactive=3600s;
    open_file_cache_valid 3600s;
    server {
        listen $host:$nginx_port;
        root $ng/www;
    }
}
EOF
"$nginx_bin" -c "$ng/nginx.conf" -p "$ng" -e "$ng/error.log" -g 'daemon off;' >"$ng/out.log" 2>&1 &
nginx_started=1
i=0
while ! curl -sf -o /dev/null "http://$host:$nginx_port/act.json"; do
	i=$((i + 1))
	if [ $i -gt 100 ]; then
		cat "$ng/out.log" "$ng/error.log" >&2 2>/dev/null || true
		echo "bench-http: nginx did not start" >&2
		exit 1
	fi
	sleep 0.1
done
nginx_url="http://$host:$nginx_port/act.json"
echo "bench-http: nginx pid $(cat "$ng/nginx.pid") on http://$host:$nginx_port, serving" \
	"$resp_bytes bytes (the policy act response)"

# ---- runs ----------------------------------------------------------------------------------
results="$tmp/results.txt"
: >"$results"

# parse FILE: "rps p50_ms p99_ms errors" of a wrk --latency output
parse() {
	awk '
	function ms(v) {
		if (v ~ /us$/) { sub(/us$/, "", v); return v / 1000 }
		if (v ~ /ms$/) { sub(/ms$/, "", v); return v + 0 }
		if (v ~ /m$/) { sub(/m$/, "", v); return v * 60000 }
		if (v ~ /s$/) { sub(/s$/, "", v); return v * 1000 }
		return v + 0
	}
	/^ +50% / { p50 = ms($2) }
	/^ +99% / { p99 = ms($2) }
	/^Requests\/sec:/ { rps = $2 }
	/Non-2xx or 3xx responses:/ { err += $NF }
	/Socket errors:/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
	END { printf "%.0f %.3f %.3f %d\n", rps, p50, p99, err }
	' "$1"
}

# wrk_run NAME CONNS OUT SCRIPT URL [-- SCRIPT_ARGS...]: one wrk run (its output kept in OUT)
wrk_run() {
	name=$1 c=$2 out=$3 script=$4 url=$5
	shift 5
	t=$wt
	[ "$c" -lt "$t" ] && t=$c
	BENCH_HTTP_WRK_THREADS=$t wrk -t"$t" -c"$c" -d"${secs}s" --timeout 30s --latency \
		${script:+-s "$script"} "$url" "$@" >"$out" 2>&1 || {
		cat "$out" >&2
		echo "bench-http: wrk failed ($name, $c connections)" >&2
		exit 1
	}
}

# record NAME CONNS OUT STEP0 STEP1 SECONDS_MEASURED: appends a result row
record() {
	# shellcheck disable=SC2046 # parse prints four fields
	set -- "$1" "$2" "$3" "$4" "$5" "$6" $(parse "$3")
	sps=$(awk -v a="$4" -v b="$5" -v s="$6" 'BEGIN { printf "%.0f", (b - a) / s }')
	echo "$1 $2 $7 $8 $9 ${10} $sps" >>"$results"
	printf '  %-12s %3s conn  %8s req/s  p50 %8s ms  p99 %8s ms  errors %s  train %s steps/s\n' \
		"$1" "$2" "$7" "$8" "$9" "${10}" "$sps"
	if [ "$1" != nginx ] && [ "$5" -le "$4" ]; then
		echo "bench-http: WARNING: the training step did not advance during this run" >&2
	fi
}

now() { date +%s.%N; }

# drain: waits for the worker queue to empty. Requests whose client left (wrk closes its
# connections at the end of a run) still run their plans; a submission queues behind them.
drain() {
	d0=$(now)
	dcode=$(curl -s -m 300 -o /dev/null -w '%{http_code}' -X POST "$sub_url" \
		-H 'Content-Type: application/json' --data-binary "@$tmp/submit.json") || true
	del=$(awk -v a="$d0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
	echo "               (worker queue drained in ${del}s, status $dcode)"
}

# bench NAME CONNS SCRIPT URL [-- SCRIPT_ARGS...]: a measured run, with the training steps
# around it
bench() {
	name=$1 c=$2 script=$3 url=$4
	shift 4
	out="$tmp/wrk-$name-$c.txt"
	s0=$(train_step)
	t0=$(now)
	wrk_run "$name" "$c" "$out" "$script" "$url" "$@"
	t1=$(now)
	s1=$(train_step)
	record "$name" "$c" "$out" "$s0" "$s1" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')"
}

act_url="$base/v1/agents/$agent/act"
sub_url="$base/v1/agents/$agent/transitions"
post_lua="$here/http_post.lua"
session_lua="$here/http_session.lua"
export BENCH_HTTP_PREFIX="/v1/agents/$agent/sessions/"
# first_sids N: the first N session ids
first_sids() { echo "$sids" | tr ' ' '\n' | grep . | head -n "$1"; }

# A short warm-up of both servers (not reported).
secs_saved=$secs
secs=2
BENCH_HTTP_BODY="$tmp/policy.json" wrk_run warmup 16 "$tmp/warm1.txt" "$post_lua" "$act_url"
wrk_run warmup 16 "$tmp/warm2.txt" "" "$nginx_url"
secs=$secs_saved

echo "== policy-mode act against nginx (alternating, $rounds rounds: the table keeps each one's best)"
for c in $conns; do
	r=1
	while [ "$r" -le "$rounds" ]; do
		bench nginx "$c" "" "$nginx_url"
		BENCH_HTTP_BODY="$tmp/policy.json" bench policy "$c" "$post_lua" "$act_url"
		r=$((r + 1))
	done
done

echo "== session act with planning (mode plan, default planner; one session per connection)"
for c in $conns; do
	# shellcheck disable=SC2046 # the session ids are wrk script arguments
	BENCH_HTTP_MODE=plan bench plan "$c" "$session_lua" "$base/" -- $(first_sids "$c")
	tail -n 1 "$tmp/wrk-plan-$c.txt" | sed 's/^/               /'
	drain
done

echo "== policy act at 16 connections while a second wrk runs plan-mode session acts at 16"
s0=$(train_step)
t0=$(now)
# The planning run starts half a second earlier and ends half a second later.
secs=$((secs_saved + 1))
# shellcheck disable=SC2046
BENCH_HTTP_MODE=plan wrk_run plan-bg 16 "$tmp/wrk-plan-bg.txt" "$session_lua" "$base/" -- \
	$(first_sids 16) &
bg=$!
secs=$secs_saved
sleep 0.5
BENCH_HTTP_BODY="$tmp/policy.json" wrk_run policy+plan 16 "$tmp/wrk-policy+plan-16.txt" \
	"$post_lua" "$act_url"
wait "$bg" || exit 1
t1=$(now)
s1=$(train_step)
el=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
record policy+plan 16 "$tmp/wrk-policy+plan-16.txt" "$s0" "$s1" "$el"
record plan-bg 16 "$tmp/wrk-plan-bg.txt" "$s0" "$s1" "$el"
drain

# Last: it fills the replay with thousands of 8-step episodes.
echo "== transition submission (one 8-step episode per request, sync as configured)"
for c in $conns; do
	BENCH_HTTP_BODY="$tmp/submit.json" bench submit "$c" "$post_lua" "$sub_url"
done

# ---- table and RESULT ----------------------------------------------------------------------
load=$(cut -d' ' -f1-3 /proc/loadavg)
curl -s "$base/v1/agents/$agent/training" >"$tmp/training.json"
echo ""
echo "bench-http: load average $load after the run; training: $(sed -n \
	's/.*"step":\([0-9]*\).*"steps_per_sec":\([0-9.]*\).*/step \1, \2 steps\/s/p' \
	"$tmp/training.json")"
# The best round of each target and connection count (the most requests per second), in the
# order of the runs.
awk '{ k = $1 " " $2; if (!(k in best)) { order[++n] = k; best[k] = $0; rps[k] = $3 }
	else if ($3 > rps[k]) { best[k] = $0; rps[k] = $3 } }
	END { for (i = 1; i <= n; i++) print best[order[i]] }' "$results" >"$tmp/best.txt"
printf '%-12s %5s %10s %10s %10s %7s %12s\n' target conns "req/s" "p50 ms" "p99 ms" errors \
	"train st/s"
while read -r name c rps p50 p99 err sps; do
	printf '%-12s %5s %10s %10s %10s %7s %12s\n' "$name" "$c" "$rps" "$p50" "$p99" "$err" "$sps"
done <"$tmp/best.txt"

get() { awk -v n="$1" -v c="$2" -v f="$3" '$1 == n && $2 == c { print $f; exit }' "$tmp/best.txt"; }
policy_rps=$(get policy 16 3)
nginx_rps=$(get nginx 16 3)
policy_p99=$(get policy 16 5)
plan_p99=$(get plan 16 5)
mixed_p99=$(get policy+plan 16 5)
ratio=$(awk -v a="${policy_rps:-0}" -v b="${nginx_rps:-0}" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
echo ""
echo "policy act at 16 connections: $policy_rps req/s = $ratio of nginx ($nginx_rps; target" \
	">= 0.70), p99 $policy_p99 ms (target < 5), p99 $mixed_p99 ms while plans run alongside"
echo "RESULT policy_rps=${policy_rps:-0} nginx_rps=${nginx_rps:-0} ratio=$ratio" \
	"policy_p99_ms=${policy_p99:-0} plan_p99_ms=${plan_p99:-0}"
