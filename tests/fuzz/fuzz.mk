# Fuzzing with libFuzzer (clang 14), included by the Makefile.
#
# make fuzz        runs every target for FUZZ_SECONDS (600) each, growing build/fuzz/corpus/<target>
#                  from the seeds in tests/fuzz/corpus/<target>; prints executions and coverage
# make test-fuzz   the same for FUZZ_TEST_SECONDS (20) each from the seeds only (part of make test)
# make fuzz-seeds  rewrites the seeds: requests for every route (tests/fuzz/make_api_seeds.py),
#                  checkpoints (tests/fuzz/gen_checkpoints.c); crash-* regression inputs stay
#
# Targets: fuzz_api (api_handle on every route against tests/fuzz/stub_service.c) and
# fuzz_checkpoint (agent_checkpoint_config and agent_checkpoint_restore). Crashes are written to
# build/fuzz/artifacts/<target>/; keep each one in tests/fuzz/corpus/<target>/ once fixed, so that
# every run replays it (tests/fuzz/pending/ holds those of bugs reported, not fixed yet). One input
# again: build/fuzz/fuzz_api FILE.

FUZZ_CC ?= clang
FUZZ_SECONDS ?= 600
FUZZ_TEST_SECONDS ?= 20
FUZZ_DIR := build/fuzz
FUZZ_TARGETS := fuzz_api fuzz_checkpoint
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all
# -Wno-pass-failed: at -O1 clang does not vectorise the `omp simd` loops, and says so.
FUZZ_CFLAGS = -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -O1 -g -fno-omit-frame-pointer \
	$(WARN) -Wno-pass-failed -fno-trapping-math -fopenmp-simd -pthread -I. -Itests/fuzz \
	$(FUZZ_PKG_CFLAGS) $(FUZZ_SAN)
FUZZ_PKG_CFLAGS = $(shell pkg-config --cflags openblas jansson 2>/dev/null)
FUZZ_LIBS = $(shell pkg-config --libs openblas jansson 2>/dev/null) -lm -pthread

# libFuzzer options per target: the largest input, and a dictionary for the JSON one.
FUZZ_OPTS_fuzz_api := -max_len=8192 -dict=tests/fuzz/fuzz_api.dict
FUZZ_OPTS_fuzz_checkpoint := -max_len=16384

FUZZ_CORE_OBJS := $(CORE_SRCS:%.c=$(FUZZ_DIR)/%.o)
FUZZ_API_OBJS := $(API_SRCS:%.c=$(FUZZ_DIR)/%.o)
GEN_CKPT_BIN := $(BUILD)/gen_checkpoints
# The dashboard's files, when api/ serves them: a fake table instead of the one made from web/.
FUZZ_STUB_WEB := $(if $(wildcard api/webui.h),$(FUZZ_DIR)/tests/fuzz/stub_web.o)

ALL_C += $(wildcard tests/fuzz/*.c)
ALL_H += $(wildcard tests/fuzz/*.h)

.PHONY: fuzz test-fuzz fuzz-build fuzz-seeds $(FUZZ_TARGETS:%=fuzz-run-%) $(FUZZ_TARGETS:%=test-fuzz-%)

# The code under test: coverage instrumentation and the sanitizers.
$(FUZZ_DIR)/%.o: %.c tests/fuzz/coverage_ignore.txt
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link \
		-fsanitize-coverage-ignorelist=tests/fuzz/coverage_ignore.txt -MMD -MP -c $< -o $@

$(FUZZ_DIR)/fuzz_api: $(FUZZ_DIR)/tests/fuzz/fuzz_api.o $(FUZZ_DIR)/tests/fuzz/stub_service.o \
		$(FUZZ_STUB_WEB) $(FUZZ_API_OBJS) $(FUZZ_CORE_OBJS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(FUZZ_LIBS)

$(FUZZ_DIR)/fuzz_checkpoint: $(FUZZ_DIR)/tests/fuzz/fuzz_checkpoint.o $(FUZZ_CORE_OBJS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(FUZZ_LIBS)

fuzz-build: $(FUZZ_TARGETS:%=$(FUZZ_DIR)/%)

fuzz: $(FUZZ_TARGETS:%=fuzz-run-%)

$(FUZZ_TARGETS:%=fuzz-run-%): fuzz-run-%: $(FUZZ_DIR)/%
	@sh tests/fuzz/run.sh $* $(FUZZ_SECONDS) $(FUZZ_DIR)/corpus/$* $(FUZZ_OPTS_$*)

# A fresh output corpus each time: the run starts from (and replays) the committed seeds.
test-fuzz: $(FUZZ_TARGETS:%=test-fuzz-%)

$(FUZZ_TARGETS:%=test-fuzz-%): test-fuzz-%: $(FUZZ_DIR)/%
	@sh tests/fuzz/run.sh $* $(FUZZ_TEST_SECONDS) - $(FUZZ_OPTS_$*)

$(GEN_CKPT_BIN): $(BUILD)/tests/fuzz/gen_checkpoints.o $(CORE_LIB)
	$(CC) $(CFLAGS_ALL) -o $@ $(BUILD)/tests/fuzz/gen_checkpoints.o $(CORE_LIB) $(LDLIBS_ALL)

fuzz-seeds: $(GEN_CKPT_BIN)
	$(GEN_CKPT_BIN) tests/fuzz/corpus/fuzz_checkpoint
	python3 tests/fuzz/make_api_seeds.py api/api.c tests/fuzz/corpus/fuzz_api

-include $(FUZZ_CORE_OBJS:.o=.d) $(FUZZ_API_OBJS:.o=.d) $(FUZZ_DIR)/tests/fuzz/fuzz_api.d \
	$(FUZZ_DIR)/tests/fuzz/stub_service.d $(FUZZ_DIR)/tests/fuzz/fuzz_checkpoint.d \
	$(BUILD)/tests/fuzz/gen_checkpoints.d
