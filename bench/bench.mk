# Benchmark of the training step (included by the Makefile).
#
# make bench-train   C training steps per second of the default-sized agent against the same
#                    model and step in PyTorch (Debian's python3-torch, /usr/bin/python3), on the
#                    same number of threads; checks first that the PyTorch step computes the C
#                    objective and gradient. Ends with `RESULT c_steps_per_s=.. torch_steps_per_s=..
#                    ratio=..`.
# make bench-train-c only the C side (no install step, no PyTorch).
# Knobs: BENCH_TRAIN_THREADS (1), BENCH_TRAIN_ROUNDS (3: C and PyTorch alternate, each keeps its
# best round), BENCH_TRAIN_SECONDS (3: timed seconds per round and side), BENCH_TRAIN_Z_DIM (16;
# 32 is the other default size).

BENCH_TRAIN_BIN := $(BUILD)/bench_train
BENCH_TRAIN_THREADS ?= 1
BENCH_TRAIN_SECONDS ?= 3
BENCH_TRAIN_ROUNDS ?= 3
BENCH_TRAIN_Z_DIM ?= 16

.PHONY: bench-train bench-train-c

$(BENCH_TRAIN_BIN): $(BUILD)/bench/bench_train.o $(CORE_LIB)
	$(CC) $(CFLAGS_ALL) -o $@ $(BUILD)/bench/bench_train.o $(CORE_LIB) $(LDLIBS_ALL)

# deps first, then a fresh make: the pkg-config flags are read when the Makefile is parsed.
bench-train:
	@sh scripts/deps.sh bench
	@$(MAKE) --no-print-directory $(BENCH_TRAIN_BIN)
	@sh bench/train.sh $(BENCH_TRAIN_BIN) $(BENCH_TRAIN_THREADS) $(BENCH_TRAIN_SECONDS) \
		$(BENCH_TRAIN_ROUNDS) $(BENCH_TRAIN_Z_DIM)

bench-train-c: $(BENCH_TRAIN_BIN)
	$(BENCH_TRAIN_BIN) --threads $(BENCH_TRAIN_THREADS) --seconds $(BENCH_TRAIN_SECONDS) \
		--z-dim $(BENCH_TRAIN_Z_DIM)

-include $(BUILD)/bench/bench_train.d
