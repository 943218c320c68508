#!/bin/sh
# Glue of `make bench-train`: checks that the PyTorch step computes the C objective and gradient,
# runs the C benchmark and the PyTorch one on the same number of threads, in alternating rounds,
# prints both and their ratio, and ends with the one RESULT line.
#
# Each side's figure is its best round (steps per second over the round's wall-clock time): on a
# shared 2-core machine other processes only ever slow a round down, and alternating the sides
# exposes both to the same interference. The CPU time per step is printed too, as a cross-check
# that does not count time spent waiting for the CPU.
# Usage: sh bench/train.sh BENCH_TRAIN_BINARY [THREADS] [SECONDS_PER_ROUND] [ROUNDS] [Z_DIM]
set -eu
bin=$1
threads=${2:-1}
seconds=${3:-3}
rounds=${4:-3}
zdim=${5:-16}
py=/usr/bin/python3 # Debian's python3-torch is installed for this interpreter only
here=$(dirname "$0")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT INT TERM

load=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo 0)
if awk "BEGIN { exit !($load > 0.7) }"; then
	echo "bench-train: note: load average $load before the run: other processes share the CPU," \
		"so the figures are lower and noisier than on an idle machine"
fi

echo "== the PyTorch mirror against one C evaluation (objective terms and gradients)," \
	"on the benchmark's data and on short episodes (padding, resets, terminals)"
for data in "" --mixed-episodes; do
	# shellcheck disable=SC2086 # $data is one flag or none
	"$bin" --dump "$out/dump" --warmup 20 --z-dim "$zdim" --threads "$threads" $data >/dev/null
	if ! "$py" "$here/torch_train.py" --check "$out/dump" --z-dim "$zdim" --threads "$threads" \
		>"$out/check.txt"; then
		cat "$out/check.txt"
		echo "bench-train: bench/torch_train.py no longer computes the C objective" \
			"(core/elbo.c changed?): update the mirror before comparing speeds" >&2
		exit 1
	fi
	tail -n 1 "$out/check.txt"
done

# Runs a benchmark with its output shown as it comes and kept in $1; fails when it fails.
run() {
	file=$1
	shift
	{
		if "$@"; then rc=0; else rc=$?; fi
		echo "$rc" >"$file.rc"
	} | tee "$file"
	[ "$(cat "$file.rc")" = 0 ]
}

# summary FILE KEY: the value of KEY on FILE's summary line
summary() {
	sed -n "s/^summary: .*$2=\([0-9.]*\).*/\1/p" "$1"
}

i=1
while [ "$i" -le "$rounds" ]; do
	ceiling=--no-ceiling
	[ "$i" = 1 ] && ceiling=
	echo "== round $i of $rounds: C, agent_train_step ($bin)"
	# shellcheck disable=SC2086 # $ceiling is one flag or none
	run "$out/c$i.txt" "$bin" --threads "$threads" --seconds "$seconds" --z-dim "$zdim" $ceiling
	echo "== round $i of $rounds: PyTorch, the same step ($py $here/torch_train.py)"
	run "$out/t$i.txt" "$py" "$here/torch_train.py" --threads "$threads" --seconds "$seconds" \
		--z-dim "$zdim"
	i=$((i + 1))
done

best_c=0 best_t=0 cpu_c="" cpu_t="" rounds_c="" rounds_t=""
i=1
while [ "$i" -le "$rounds" ]; do
	c=$(summary "$out/c$i.txt" c_steps_per_s)
	t=$(summary "$out/t$i.txt" torch_steps_per_s)
	if [ -z "$c" ] || [ -z "$t" ]; then
		echo "bench-train: a benchmark printed no summary line" >&2
		exit 1
	fi
	rounds_c="$rounds_c $c"
	rounds_t="$rounds_t $t"
	if awk "BEGIN { exit !($c > $best_c) }"; then
		best_c=$c
		cpu_c=$(summary "$out/c$i.txt" c_cpu_ms_per_step)
	fi
	if awk "BEGIN { exit !($t > $best_t) }"; then
		best_t=$t
		cpu_t=$(summary "$out/t$i.txt" torch_cpu_ms_per_step)
	fi
	i=$((i + 1))
done
ratio=$(awk "BEGIN { printf \"%.2f\", $best_c / $best_t }")
verdict=$(awk "BEGIN { print ($ratio >= 3.0) ? \"meets\" : \"is below\" }")
echo "== bench-train: steps/s per round: C$rounds_c; PyTorch$rounds_t"
echo "   best round: C $best_c steps/s, PyTorch $best_t steps/s on $threads thread(s):" \
	"C is ${ratio}x PyTorch ($verdict the 3x target)"
if [ -n "$cpu_c" ] && [ -n "$cpu_t" ]; then
	echo "   CPU time per step in those rounds: C $cpu_c ms, PyTorch $cpu_t ms" \
		"($(awk "BEGIN { printf \"%.2f\", $cpu_t / $cpu_c }")x)"
fi
echo "RESULT c_steps_per_s=$best_c torch_steps_per_s=$best_t ratio=$ratio"
