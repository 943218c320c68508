#!/bin/bash
# Glue of `make bench-learn` (bench/learn.mk): the learning benchmark. One elbod, both reference
# tasks (/work/shared/envs/README.md) learned from scratch through the robots, learning curves as
# CSV and PNG, the issue's targets, and a RESULT line.
#
# It starts ONE elbod on a free 127.0.0.1 port (--port 0, read back from its log) with a temporary
# data directory, then runs, one robot at a time (planning needs both cores):
#   main      pendulum seeds 1..5 x 15 episodes, then cartpole seeds 1..3 x 20 episodes, in plan
#             mode; one fresh agent per seed (pendulum-s1, cartpole-s1, ...) created by the robot
#             with the product's defaults (no --create-args): the defaults are what is measured.
#             The agent learns only from what its robot sends.
#   policy    after each main seed's learning, 3 episodes with --mode policy (the consolidated
#             action prior alone, no planning) on the same agent, from unseen starts (robot seed
#             1000 + seed).
#   ablations pendulum, 2 seeds x 10 episodes each, with one planner setting changed at creation:
#             noprior  {"planner":{"init_from_prior":false}}  planning starts from a zero-mean
#                      Gaussian instead of the action prior's rollout;
#             noinfo   {"planner":{"beta_info":0}}            no mutual-information bonus.
# Once an agent's runs are over its training is paused, so that it takes no CPU from the next run.
# The robots' episode lines are printed as they come, prefixed and with 1-indexed episodes.
# Between plan-mode episodes a robot waits (--wait-training, at most BENCH_LEARN_WAIT_TRAINING
# seconds, default 30; 0: no wait) until its agent's trainer has caught up with the train_ratio
# cap, as a real robot being reset would: the trainer then gets the same number of steps per
# transition whether episodes are long (pendulum) or end after a few steps (cart-pole).
#
# Outputs (BENCH_LEARN_OUT, default bench/out):
#   learn.csv          every episode: run,mode,task,seed,env_seed,episode,return,steps,seconds,
#                      model_version,p50_ms,p99_ms (episode 1-indexed: 1 is the first; seed is the
#                      agent's seed index, env_seed the robot's --seed)
#   learn_summary.csv  per run, task, mode and episode: seeds, mean, std, min, max of the return
#   learn_pendulum.png, learn_cartpole.png   the curves (bench/learn_report.py draws them)
# Targets and figures (bench/learn_report.py): the mean over seeds of each seed's mean return over
# episodes 3-10 and 6-10 (pendulum) and 8-10 (cartpole); plan latency p50 = median of the main
# plan-mode episodes' p50_ms, p99 = the largest of their p99_ms (an upper bound of the pooled p99:
# no episode has more than 1% of its acts above its own p99). Ends with
#   RESULT pendulum_3_10=.. pendulum_6_10=.. cartpole_8_10=.. plan_p50_ms=.. plan_p99_ms=.. minutes=..
# where minutes is the wall time of the whole benchmark, and a figure is `na` when the run was too
# short for its episode range (a quick run).
#
# Usage: bash bench/learn.sh ELBOD ROBOT_PENDULUM ROBOT_CARTPOLE ELBOCTL
# Knobs (environment): BENCH_LEARN_SEEDS_PENDULUM (5), BENCH_LEARN_EPISODES_PENDULUM (15),
# BENCH_LEARN_SEEDS_CARTPOLE (3), BENCH_LEARN_EPISODES_CARTPOLE (20), BENCH_LEARN_POLICY_EPISODES
# (3), BENCH_LEARN_ABLATION_SEEDS (2), BENCH_LEARN_ABLATION_EPISODES (10),
# BENCH_LEARN_WAIT_TRAINING (30 seconds at most between episodes; 0: none), BENCH_LEARN_OUT
# (bench/out), BENCH_LEARN_ELBOD_ARGS (extra elbod flags), BENCH_LEARN_KEEP=1 keeps the temporary
# directory (elbod.log, the data directory with every trained agent, the robots' raw CSVs).
# A count of 0 skips that part. Quick plumbing check:
#   BENCH_LEARN_SEEDS_PENDULUM=1 BENCH_LEARN_EPISODES_PENDULUM=3 BENCH_LEARN_SEEDS_CARTPOLE=1 \
#   BENCH_LEARN_EPISODES_CARTPOLE=3 BENCH_LEARN_ABLATION_SEEDS=1 BENCH_LEARN_ABLATION_EPISODES=3 \
#   BENCH_LEARN_POLICY_EPISODES=1 make bench-learn
set -euo pipefail

if [ $# -ne 4 ]; then
	echo "usage: bash bench/learn.sh ELBOD ROBOT_PENDULUM ROBOT_CARTPOLE ELBOCTL" >&2
	exit 2
fi
elbod=$1
robot_pendulum=$2
robot_cartpole=$3
elboctl=$4
seeds_pendulum=${BENCH_LEARN_SEEDS_PENDULUM:-5}
episodes_pendulum=${BENCH_LEARN_EPISODES_PENDULUM:-15}
seeds_cartpole=${BENCH_LEARN_SEEDS_CARTPOLE:-3}
episodes_cartpole=${BENCH_LEARN_EPISODES_CARTPOLE:-20}
policy_episodes=${BENCH_LEARN_POLICY_EPISODES:-3}
ablation_seeds=${BENCH_LEARN_ABLATION_SEEDS:-2}
ablation_episodes=${BENCH_LEARN_ABLATION_EPISODES:-10}
out=${BENCH_LEARN_OUT:-bench/out}
elbod_args=${BENCH_LEARN_ELBOD_ARGS:-}
wait_training=${BENCH_LEARN_WAIT_TRAINING:-30}
here=$(cd "$(dirname "$0")" && pwd)
host=127.0.0.1
t_start=$EPOCHREALTIME

for knob in seeds_pendulum episodes_pendulum seeds_cartpole episodes_cartpole policy_episodes \
	ablation_seeds ablation_episodes; do
	case ${!knob} in
	'' | *[!0-9]*)
		echo "bench-learn: the BENCH_LEARN_* seed and episode counts are whole numbers (0 or" \
			"more): $knob is '${!knob}'" >&2
		exit 2
		;;
	esac
done
for bin in "$elbod" "$robot_pendulum" "$robot_cartpole" "$elboctl"; do
	if [ ! -x "$bin" ]; then
		echo "bench-learn: no executable $bin (make $bin)" >&2
		exit 1
	fi
done
for tool in python3 gnuplot; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "bench-learn: $tool is missing (sh scripts/deps.sh bench installs it)" >&2
		exit 1
	fi
done

mkdir -p "$out"
tmp=$(mktemp -d /tmp/elbod-bench-learn.XXXXXX)
mkdir -p "$tmp/raw" "$tmp/agents"
elbod_pid=""

cleanup() {
	rc=$?
	trap - EXIT INT TERM
	if [ -n "$elbod_pid" ] && kill -0 "$elbod_pid" 2>/dev/null; then
		kill -TERM "$elbod_pid" 2>/dev/null || true
		erc=0
		wait "$elbod_pid" || erc=$?
		if [ "$erc" -ne 0 ]; then
			echo "bench-learn: elbod exited with status $erc after SIGTERM (log: $tmp/elbod.log)" >&2
			tail -n 20 "$tmp/elbod.log" >&2 || true
			[ "$rc" -ne 0 ] || rc=1
		fi
	fi
	if [ "$rc" -ne 0 ] || [ "${BENCH_LEARN_KEEP:-0}" = 1 ]; then
		echo "bench-learn: kept $tmp (elbod.log, data/, raw/, agents/)" >&2
	else
		rm -rf "$tmp"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# minutes_since T0: minutes from the $EPOCHREALTIME T0 to now, 1 decimal
minutes_since() {
	awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", (b - a) / 60 }'
}

echo "bench-learn: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) before the run"
load=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load" -v n="$(nproc)" 'BEGIN { exit !(l > 0.5 * n) }'; then
	echo "bench-learn: note: other processes share the CPU: latencies are higher and learning" \
		"(training steps per transition) may be slower than on an idle machine"
fi
echo "bench-learn: main: pendulum $seeds_pendulum seed(s) x $episodes_pendulum episodes," \
	"cartpole $seeds_cartpole seed(s) x $episodes_cartpole episodes (plan mode, default settings);" \
	"policy mode: $policy_episodes episodes per main seed; ablations: pendulum" \
	"$ablation_seeds seed(s) x $ablation_episodes episodes each"

# ---- elbod ---------------------------------------------------------------------------------
# shellcheck source=bench/lib.sh
. "$here/lib.sh"
# shellcheck disable=SC2086 # elbod_args is a list of flags
start_elbod bench-learn $elbod_args

csv=$out/learn.csv
echo "run,mode,task,seed,env_seed,episode,return,steps,seconds,model_version,p50_ms,p99_ms" >"$csv"
rm -f "$out/learn_summary.csv" "$out/learn_pendulum.png" "$out/learn_cartpole.png"

# robot RUN TASK MODE AGENT SEED ENV_SEED EPISODES [CREATE_ARGS]: runs the task's robot, prints
# its episode lines prefixed, appends its rows to learn.csv; fails when the robot fails.
robot() {
	local run=$1 task=$2 mode=$3 agent=$4 seed=$5 env_seed=$6 n=$7 create=${8:-}
	local bin raw="$tmp/raw/$agent-$mode.csv" t0=$EPOCHREALTIME
	[ "$n" -gt 0 ] || return 0
	case $task in
	pendulum) bin=$robot_pendulum ;;
	cartpole) bin=$robot_cartpole ;;
	esac
	local args=(--url "$base" --agent "$agent" --episodes "$n" --seed "$env_seed" --mode "$mode"
		--csv "$raw")
	[ -z "$create" ] || args+=(--create-args "$create")
	[ "$mode" != plan ] || [ "$wait_training" = 0 ] || args+=(--wait-training "$wait_training")
	set +e
	"$bin" "${args[@]}" |
		awk -v tag="bench-learn: $run $task seed=$seed $mode" -v n="$n" '{
			for (i = 2; i <= NF; i++)
				if ($i ~ /^episode=/) $i = "episode=" (substr($i, 9) + 1) "/" n
			$1 = tag
			print
			fflush()
		}'
	local st=("${PIPESTATUS[@]}")
	set -e
	if [ "${st[0]}" -ne 0 ] || [ "${st[1]}" -ne 0 ]; then
		echo "bench-learn: $bin ${args[*]} failed (exit ${st[0]})" >&2
		exit 1
	fi
	# the robot's rows (episode 0-indexed) as learn.csv rows (1-indexed)
	awk -F, -v OFS=, -v run="$run" -v mode="$mode" -v seed="$seed" 'NR > 1 {
		print run, mode, $1, seed, $2, $3 + 1, $4, $5, $6, $7, $8, $9
	}' "$raw" >>"$csv"
	echo "bench-learn: $run $task seed=$seed $mode: $n episodes in $(minutes_since "$t0") min" \
		"(benchmark at $(minutes_since "$t_start") min)"
}

# retire AGENT: records the agent's settings and training status, then pauses its training so
# that it takes no CPU from the runs that follow.
retire() {
	"$elboctl" --url "$base" --json show "$1" >"$tmp/agents/$1.json"
	python3 - "$tmp/agents/$1.json" <<'EOF'
import json, sys
a = json.load(open(sys.argv[1]))
s, p = a["status"], a["planner"]
cap = a["training"]["train_ratio"] * s["transitions_total"]
print(f"bench-learn: agent {a['name']}: {s['step']} training steps on {s['transitions_total']} "
      f"transitions ({s['step'] / cap if cap else 0:.2f} of the train_ratio cap); planner "
      f"init_from_prior={str(p['init_from_prior']).lower()} beta_info={p['beta_info']:g} "
      f"horizon={p['horizon']} population={p['population']} iterations={p['iterations']}")
EOF
	"$elboctl" --url "$base" pause "$1" >/dev/null
}

t_main=0 t_policy=0 t_ablation=0
# phase VAR COMMAND...: runs COMMAND and adds its wall time (seconds) to VAR
phase() {
	local var=$1 t0=$EPOCHREALTIME
	shift
	"$@"
	printf -v "$var" '%s' "$(awk -v a="$t0" -v b="$EPOCHREALTIME" -v s="${!var}" \
		'BEGIN { printf "%.3f", s + b - a }')"
}

# ---- main curves, each seed followed by the policy mode alone ------------------------------
for task in pendulum cartpole; do
	if [ $task = pendulum ]; then
		seeds=$seeds_pendulum episodes=$episodes_pendulum
	else
		seeds=$seeds_cartpole episodes=$episodes_cartpole
	fi
	[ "$episodes" -gt 0 ] || continue
	for seed in $(seq "$seeds"); do
		agent=$task-s$seed
		phase t_main robot main $task plan "$agent" "$seed" "$seed" "$episodes"
		phase t_policy robot policy $task policy "$agent" "$seed" $((1000 + seed)) \
			"$policy_episodes"
		retire "$agent"
	done
done

# ---- ablations (pendulum) ------------------------------------------------------------------
if [ "$ablation_episodes" -gt 0 ]; then
	for seed in $(seq "$ablation_seeds"); do
		for variant in noprior noinfo; do
			case $variant in
			noprior) create='{"planner":{"init_from_prior":false}}' ;;
			noinfo) create='{"planner":{"beta_info":0}}' ;;
			esac
			agent=pendulum-$variant-s$seed
			phase t_ablation robot "$variant" pendulum plan "$agent" "$seed" "$seed" \
				"$ablation_episodes" "$create"
			retire "$agent"
		done
	done
fi

# ---- stop elbod (every agent checkpoints), then the report ---------------------------------
kill -TERM "$elbod_pid"
erc=0
wait "$elbod_pid" || erc=$?
elbod_pid=""
if [ "$erc" -ne 0 ]; then
	echo "bench-learn: elbod exited with status $erc after SIGTERM (log: $tmp/elbod.log)" >&2
	tail -n 20 "$tmp/elbod.log" >&2 || true
	exit 1
fi
echo "bench-learn: elbod stopped cleanly (exit 0)"

total=$(awk -v a="$t_start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')
python3 "$here/learn_report.py" --csv "$csv" --out "$out" --seconds-total "$total" \
	--seconds-main "$t_main" --seconds-policy "$t_policy" --seconds-ablation "$t_ablation"
