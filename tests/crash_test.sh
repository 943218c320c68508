#!/bin/bash
# Crash safety of elbod: acknowledged experience survives SIGKILL exactly once, and the agent
# always loads again, also when the kill lands in the middle of training and checkpointing.
#
# Usage: tests/crash_test.sh [ELBOD_BIN] (make crash-test). Knobs: CRASH_ROUNDS (20).
#
# One agent (tiny model, training from 10 transitions on, no cap, a checkpoint every second).
# Every round: two client loops submit one episode per request, each with a unique "id",
# writing the id to `sent` before the request and to `acked` when elbod answered 200; after a
# random 0.1-2 s elbod gets SIGKILL; it restarts on the same data directory. Then:
#  - every id ever acknowledged, submitted again, must come back as a duplicate (the request's
#    "duplicates" equals the episodes sent, "accepted" is 0); one that is accepted was lost;
#  - the ids in flight at the kill (sent, no answer) are submitted again: stored or not before,
#    they are acknowledged now;
#  - GET .../training: replay_size and transitions_total equal the acknowledged transitions (the
#    replay holds far more than the test sends: nothing is evicted); more is a duplicate;
#  - the agent loads: GET .../agents/crash is 200, an act is 200, its model version is at least
#    the last checkpoint step elbod reported before the kill, and the log names no unusable
#    checkpoint or failed load.
# Only 127.0.0.1, a free port (elbod's --port 0) and a temporary data directory.
set -u

ELBOD=${1:-build/elbod}
ROUNDS=${CRASH_ROUNDS:-20}
AGENT=crash
[ -x "$ELBOD" ] || { echo "crash test: $ELBOD is not built (make)"; exit 2; }
command -v curl >/dev/null || { echo "crash test: needs curl"; exit 2; }

work=$(mktemp -d /tmp/elbod-crash.XXXXXX)
data=$work/data
pid=""
clients=()
# shellcheck disable=SC2317 # (the EXIT trap)
cleanup() {
	[ "${#clients[@]}" -gt 0 ] && kill "${clients[@]}" 2>/dev/null
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	wait 2>/dev/null
	if [ "${failed:-0}" = 0 ]; then rm -rf "$work"; else echo "crash test: kept $work"; fi
}
trap cleanup EXIT

failed=0
fail() {
	echo "crash test: FAIL: $*"
	failed=1
}

# Starts elbod on a free port; sets pid, port, base. Log in $work/elbod.<n>.log.
start_elbod() {
	log=$work/elbod.$1.log
	: >"$log" # exists before the poll below reads it (the shell opens it only in the child)
	"$ELBOD" --host 127.0.0.1 --port 0 --data-dir "$data" --log-level info >"$log" 2>&1 &
	pid=$!
	port=""
	for _ in $(seq 1 300); do
		port=$(sed -n 's/.* event=listening .* port=\([0-9]*\).*/\1/p' "$log" | head -n 1)
		[ -n "$port" ] && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.02
	done
	if [ -z "$port" ]; then
		cat "$log"
		echo "crash test: elbod did not start"
		exit 1
	fi
	base=http://127.0.0.1:$port
	for _ in $(seq 1 300); do
		[ "$(curl -s -o /dev/null -w '%{http_code}' "$base/readyz")" = 200 ] && return 0
		sleep 0.02
	done
	echo "crash test: elbod not ready"
	exit 1
}

# Sets ep_json to the episode of an id with T transitions (obs_dim 3, act_dim 1); no subshell,
# so that thousands of them stay cheap.
episode_json() {
	local id=$1 T=$2 t obs="" act="" rew="" done=false
	for ((t = 0; t <= T; t++)); do
		obs+="${obs:+,}[0.$t,-0.5,1.$t]"
		if ((t < T)); then
			act+="${act:+,}[0.$((t % 10))]"
			rew+="${rew:+,}-1.$t"
		fi
	done
	((T % 2)) && done=true
	printf -v ep_json '{"id":"%s","observations":[%s],"actions":[%s],"rewards":[%s],"done":%s}' \
		"$id" "$obs" "$act" "$rew" "$done"
}

# POST episodes; prints "HTTP_CODE accepted duplicates" (accepted/duplicates empty on errors).
post_episodes() {
	local out code
	out=$(curl -s -m 30 -w '\n%{http_code}' -H 'Content-Type: application/json' \
		--data-binary "{\"episodes\":[$1]}" "$base/v1/agents/$AGENT/transitions") || return 1
	code=${out##*$'\n'}
	out=${out%$'\n'*}
	echo "$code $(json_int "$out" accepted) $(json_int "$out" duplicates)"
}

json_int() {
	echo "$1" | sed -n "s/.*\"$2\":\([0-9-]*\).*/\1/p"
}

# A client loop of one round: one episode per request until elbod is gone.
client_loop() {
	local round=$1 k=0 id T res code acc dup
	while :; do
		k=$((k + 1))
		id=r$round-$k
		T=$((1 + k * 7 % 5))
		echo "$id $T" >>"$work/sent"
		episode_json "$id" "$T"
		res=$(post_episodes "$ep_json") || break
		read -r code acc dup <<<"$res"
		if [ "$code" = 200 ] && [ "$acc" = "$T" ] && [ "$dup" = 0 ]; then
			echo "$id $T" >>"$work/acked"
		elif [ "$code" = 200 ]; then
			echo "$id $T answered $res" >>"$work/bad"
		else
			# 429/503 (training behind, shutting down): not acknowledged, try another
			sleep 0.05
		fi
	done
}

# Submits the episodes of "id T" lines in batches of 200; sets sub_acc, sub_dup, sub_n.
resubmit() {
	local file=$1 batch="" n=0 id T res code acc dup
	sub_acc=0 sub_dup=0 sub_n=0
	flush() {
		[ "$n" = 0 ] && return 0
		res=$(post_episodes "$batch") || { fail "resubmission: elbod did not answer"; return 1; }
		read -r code acc dup <<<"$res"
		[ "$code" = 200 ] || { fail "resubmission answered $res"; return 1; }
		sub_acc=$((sub_acc + acc))
		sub_dup=$((sub_dup + dup))
		sub_n=$((sub_n + n))
		batch=""
		n=0
	}
	while read -r id T; do
		episode_json "$id" "$T"
		batch+="${batch:+,}$ep_json"
		n=$((n + 1))
		[ "$n" -ge 200 ] && flush
	done <"$file"
	flush
}

: >"$work/sent"
: >"$work/acked"
: >"$work/bad"
start_elbod 0
code=$(curl -s -o "$work/create.json" -w '%{http_code}' -H 'Content-Type: application/json' \
	--data-binary '{"name":"'$AGENT'","observation_dim":3,"action_dim":1,"action_low":[-1],
	  "action_high":[1],"model":{"h_dim":8,"z_dim":4,"hidden":16,"seq_len":8,"batch":4,
	  "overshoot_len":4,"info_samples":2,"replay_capacity":1000000},
	  "planner":{"horizon":5,"population":32,"elites":4,"iterations":2},
	  "training":{"min_transitions":10,"train_ratio":0,"checkpoint_every_s":1}}' \
	"$base/v1/agents")
[ "$code" = 201 ] || { cat "$work/create.json"; fail "create answered $code"; exit 1; }

lost=0
duplicated=0
kills=0
inflight=0
inflight_stored=0
t0=$(date +%s)
for round in $(seq 1 "$ROUNDS"); do
	# Two clients, so that the kill also meets requests sharing a group commit.
	client_loop "${round}a" &
	clients=("$!")
	client_loop "${round}b" &
	clients+=("$!")
	delay_ms=$((100 + RANDOM % 1901))
	sleep "$((delay_ms / 1000)).$(printf '%03d' $((delay_ms % 1000)))"
	ckpt=$(json_int "$(curl -s -m 5 "$base/v1/agents/$AGENT/training")" last_checkpoint_step)
	kill -9 "$pid"
	wait "$pid" 2>/dev/null
	kills=$((kills + 1))
	wait "${clients[@]}"
	clients=()
	start_elbod "$round"

	# Every acknowledged episode is there, exactly once.
	resubmit "$work/acked"
	if [ "$sub_dup" != "$sub_n" ] || [ "$sub_acc" != 0 ]; then
		fail "round $round: $((sub_n - sub_dup)) of $sub_n acknowledged episodes lost"
		lost=$((lost + sub_n - sub_dup))
	fi
	# The episodes in flight at the kill: acknowledged from now on.
	sort "$work/sent" >"$work/sent.s"
	sort "$work/acked" >"$work/acked.s"
	comm -23 "$work/sent.s" "$work/acked.s" >"$work/inflight"
	resubmit "$work/inflight"
	cat "$work/inflight" >>"$work/acked"
	inflight=$((inflight + sub_n))
	inflight_stored=$((inflight_stored + sub_dup))
	want=$(awk '{ s += $2 } END { print s + 0 }' "$work/acked")
	st=$(curl -s -m 10 "$base/v1/agents/$AGENT/training")
	replay=$(json_int "$st" replay_size)
	total=$(json_int "$st" transitions_total)
	if [ "$replay" != "$want" ] || [ "$total" != "$want" ]; then
		fail "round $round: replay_size $replay, transitions_total $total, acknowledged $want"
		[ "${replay:-0}" -gt "$want" ] && duplicated=$((duplicated + replay - want))
		[ "${replay:-0}" -lt "$want" ] && lost=$((lost + want - replay))
	fi
	# The agent loads and acts, with its training kept up to the last checkpoint.
	code=$(curl -s -o /dev/null -w '%{http_code}' -m 10 "$base/v1/agents/$AGENT")
	[ "$code" = 200 ] || fail "round $round: GET agent answered $code"
	act=$(curl -s -m 30 -w '\n%{http_code}' -H 'Content-Type: application/json' \
		--data-binary '{"observation":[0.1,-0.5,1.2]}' "$base/v1/agents/$AGENT/act")
	[ "${act##*$'\n'}" = 200 ] || fail "round $round: act answered ${act##*$'\n'}"
	version=$(json_int "${act%$'\n'*}" model_version)
	if [ -n "$ckpt" ] && [ "${version:-0}" -lt "$ckpt" ]; then
		fail "round $round: model version $version after restart, checkpoint of step $ckpt before"
	fi
	if grep -E 'checkpoint_unusable|replay_load_failed|agent_load_failed|store_open_failed' \
		"$work/elbod.$round.log"; then
		fail "round $round: elbod did not load cleanly"
	fi
	if [ -s "$work/bad" ]; then
		cat "$work/bad"
		fail "round $round: a new episode was answered as a duplicate"
		duplicated=$((duplicated + $(wc -l <"$work/bad")))
		: >"$work/bad"
	fi
	echo "crash test: round $round: killed after ${delay_ms} ms; $(wc -l <"$work/acked")" \
		"episodes ($want transitions) acknowledged, model version ${version:-?}" \
		"(checkpoint ${ckpt:-none} before the kill)"
done

# A clean stop at the end.
kill -TERM "$pid"
wait "$pid"
rc=$?
pid=""
[ "$rc" = 0 ] || fail "elbod exited $rc on SIGTERM"

n=$(wc -l <"$work/acked")
echo "crash test: $(($(date +%s) - t0)) s; $inflight episodes were in flight at the kills" \
	"($inflight_stored of them stored before the kill, unanswered)"
echo "crash test: $kills of $ROUNDS kills, $n episodes acknowledged, $lost lost," \
	"$duplicated duplicated"
exit "$failed"
