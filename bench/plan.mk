# Benchmark of planning (included by the Makefile).
#
# make bench-plan   plans per second, ms per plan (p50, p99) and GFLOP/s of the default agent for
#                   a light, the default and a heavy planner setting, each next to cblas_sgemm alone
#                   on the same matrix shapes; one BLAS thread. Ends with a RESULT line.
# Knobs: BENCH_PLAN_SECONDS (3, per setting).

BENCH_PLAN_BIN := $(BUILD)/bench_plan
BENCH_PLAN_SECONDS ?= 3

.PHONY: bench-plan

$(BENCH_PLAN_BIN): $(BUILD)/bench/bench_plan.o $(CORE_LIB)
	$(CC) $(CFLAGS_ALL) -o $@ $(BUILD)/bench/bench_plan.o $(CORE_LIB) $(LDLIBS_ALL)

bench-plan: $(BENCH_PLAN_BIN)
	$(BENCH_PLAN_BIN) --seconds $(BENCH_PLAN_SECONDS)

-include $(BUILD)/bench/bench_plan.d
