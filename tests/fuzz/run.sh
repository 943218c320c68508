#!/bin/sh
# Runs one libFuzzer target for a while and prints a summary of its final statistics.
# Usage: tests/fuzz/run.sh TARGET SECONDS OUT_CORPUS [libFuzzer options...]
# The fuzzer replays OUT_CORPUS and tests/fuzz/corpus/TARGET first, writes new inputs to
# OUT_CORPUS (- for a temporary one, removed afterwards) and crashes to build/fuzz/artifacts/
# TARGET/. The log ends up in build/fuzz/TARGET.log. Exits 1 on a crash, leak or timeout.
set -u
target=$1 secs=$2 out=$3
shift 3
bin=build/fuzz/$target
seeds=tests/fuzz/corpus/$target
art=build/fuzz/artifacts/$target
mkdir -p "$art"
# Own files, so that runs at the same time (make -j, two people in one tree) do not mix.
log=$(mktemp "build/fuzz/$target.XXXXXX.log")
tmp=""
if [ "$out" = - ]; then
	tmp=$(mktemp -d "build/fuzz/corpus-$target.XXXXXX")
	out=$tmp
fi
mkdir -p "$out"
# A smaller quarantine than ASan's 256 MB: far fewer fresh pages per input, same checks.
ASAN_OPTIONS=${ASAN_OPTIONS:-quarantine_size_mb=32}
export ASAN_OPTIONS
echo "fuzz: $target for ${secs}s (log build/fuzz/$target.log)"
"$bin" -max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
	-artifact_prefix="$art/" "$@" "$out" "$seeds" >"$log" 2>&1
rc=$?
[ -n "$tmp" ] && rm -rf "$tmp"
mv "$log" "build/fuzz/$target.log"
log=build/fuzz/$target.log
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
last=$(grep -a -E '^#[0-9]+' "$log" | tail -n 1)
cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
corp=$(echo "$last" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')
if [ "$rc" -ne 0 ]; then
	tail -n 60 "$log"
	echo "fuzz: $target FAILED (exit $rc) after ${execs:-?} executions; input in $art/"
	exit 1
fi
echo "fuzz: $target: ${execs:-?} executions, ${rate:-?} exec/s, cov ${cov:-?}, ft ${ft:-?}," \
	"corpus ${corp:-?}, 0 crashes"
