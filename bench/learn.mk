# Learning benchmark (included by the Makefile).
#
# make bench-learn   starts one build/elbod on a free 127.0.0.1 port and learns both reference
#                    tasks from scratch through the robots, with the product's default settings:
#                    pendulum 5 seeds x 15 episodes, cartpole swing-up 3 seeds x 20 episodes (plan
#                    mode), then per seed 3 episodes of the consolidated policy alone (--mode
#                    policy), and the pendulum ablations (2 seeds x 10 episodes each): planning
#                    initialised from a zero-mean Gaussian instead of the action prior, and no
#                    mutual-information bonus. Prints every episode, the curves with the ablations
#                    beside them, the targets, plan-mode act latency and the time taken; writes
#                    bench/out/learn.csv, bench/out/learn_summary.csv, bench/out/learn_pendulum.png
#                    and bench/out/learn_cartpole.png (gnuplot). About 30 minutes. Ends with
#                    `RESULT pendulum_3_10=.. pendulum_6_10=.. cartpole_8_10=.. plan_p50_ms=..
#                    plan_p99_ms=.. minutes=..`. See bench/learn.sh and bench/learn_report.py.
# Knobs (make variables or environment): BENCH_LEARN_SEEDS_PENDULUM (5),
# BENCH_LEARN_EPISODES_PENDULUM (15), BENCH_LEARN_SEEDS_CARTPOLE (3), BENCH_LEARN_EPISODES_CARTPOLE
# (20), BENCH_LEARN_POLICY_EPISODES (3), BENCH_LEARN_ABLATION_SEEDS (2),
# BENCH_LEARN_ABLATION_EPISODES (10), BENCH_LEARN_OUT (bench/out), BENCH_LEARN_ELBOD_ARGS (extra
# elbod flags), BENCH_LEARN_WAIT_TRAINING (30: seconds a robot waits at most between episodes for
# the trainer to reach its train_ratio; 0: no wait), BENCH_LEARN_KEEP=1 (keep the temporary
# directory: log, data, raw CSVs). 0 skips a part. A quick check of the plumbing (about 2 minutes):
#   make bench-learn BENCH_LEARN_SEEDS_PENDULUM=1 BENCH_LEARN_EPISODES_PENDULUM=3 \
#     BENCH_LEARN_SEEDS_CARTPOLE=1 BENCH_LEARN_EPISODES_CARTPOLE=3 BENCH_LEARN_ABLATION_SEEDS=1 \
#     BENCH_LEARN_ABLATION_EPISODES=3 BENCH_LEARN_POLICY_EPISODES=1

BENCH_LEARN_SEEDS_PENDULUM ?= 5
BENCH_LEARN_EPISODES_PENDULUM ?= 15
BENCH_LEARN_SEEDS_CARTPOLE ?= 3
BENCH_LEARN_EPISODES_CARTPOLE ?= 20
BENCH_LEARN_POLICY_EPISODES ?= 3
BENCH_LEARN_ABLATION_SEEDS ?= 2
BENCH_LEARN_ABLATION_EPISODES ?= 10
BENCH_LEARN_OUT ?= bench/out
BENCH_LEARN_ELBOD_ARGS ?=
BENCH_LEARN_WAIT_TRAINING ?= 30
# clients.mk is read after this file: name the binaries here rather than use its variables.
BENCH_LEARN_BINS = $(ELBOD_BIN) $(BUILD)/robot_pendulum $(BUILD)/robot_cartpole $(BUILD)/elboctl

.PHONY: bench-learn

# deps first, then a fresh make: the pkg-config flags are read when the Makefile is parsed.
bench-learn:
	@sh scripts/deps.sh bench
	@$(MAKE) --no-print-directory $(BENCH_LEARN_BINS)
	@BENCH_LEARN_SEEDS_PENDULUM='$(BENCH_LEARN_SEEDS_PENDULUM)' \
		BENCH_LEARN_EPISODES_PENDULUM='$(BENCH_LEARN_EPISODES_PENDULUM)' \
		BENCH_LEARN_SEEDS_CARTPOLE='$(BENCH_LEARN_SEEDS_CARTPOLE)' \
		BENCH_LEARN_EPISODES_CARTPOLE='$(BENCH_LEARN_EPISODES_CARTPOLE)' \
		BENCH_LEARN_POLICY_EPISODES='$(BENCH_LEARN_POLICY_EPISODES)' \
		BENCH_LEARN_ABLATION_SEEDS='$(BENCH_LEARN_ABLATION_SEEDS)' \
		BENCH_LEARN_ABLATION_EPISODES='$(BENCH_LEARN_ABLATION_EPISODES)' \
		BENCH_LEARN_OUT='$(BENCH_LEARN_OUT)' BENCH_LEARN_ELBOD_ARGS='$(BENCH_LEARN_ELBOD_ARGS)' \
		BENCH_LEARN_WAIT_TRAINING='$(BENCH_LEARN_WAIT_TRAINING)' \
		bash bench/learn.sh $(BENCH_LEARN_BINS)

# build/learn_inproc (bench/learn_inproc.c): the agent learning a task in one process without HTTP,
# with a true-dynamics planner for comparison (true_model=1) and a trace (TRACE=episode): the tool
# the defaults were tuned with. Usage in its header comment.
LEARN_INPROC_BIN := $(BUILD)/learn_inproc

.PHONY: learn-inproc
learn-inproc: $(LEARN_INPROC_BIN)

$(LEARN_INPROC_BIN): $(BUILD)/bench/learn_inproc.o $(CORE_LIB)
	$(CC) $(CFLAGS_ALL) -o $@ $(BUILD)/bench/learn_inproc.o $(CORE_LIB) $(LDLIBS_ALL)

-include $(BUILD)/bench/learn_inproc.d
