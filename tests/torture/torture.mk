# Fault injection (included by the Makefile): allocation failures in the request path and a full
# disk under the store, against a torture build of elbod (tests/torture/torture.h).
#
# make torture-test      builds build/torture/elbod (the release objects, server/http.c and
#                        server/store.c again with -DELBOD_TORTURE, and the allocator of
#                        tests/torture/torture_alloc.c) and runs tests/torture/torture.py: every
#                        request of a representative set with its 1st, 2nd, 3rd, ... allocation
#                        failing until one completes with none failed, then the disk-full test.
#                        Part of make test.
# make torture-test-san  the same against build/san/torture/elbod (ASan + UBSan, LeakSanitizer
#                        on at the daemon's clean exits). Part of make test.
#
# TORTURE_ARGS passes options to the driver (python3 tests/torture/torture.py --help).

TORTURE_DIR = $(BUILD)/torture
TORTURE_BIN = $(TORTURE_DIR)/elbod
TORTURE_ARGS ?=

ALL_C += $(wildcard tests/torture/*.c)
ALL_H += $(wildcard tests/torture/*.h)

.PHONY: torture-test torture-test-san

# server/http.c (the request's count) and server/store.c (the writer counts for the request it
# commits for) with their hooks.
TORTURE_HOOKED := $(TORTURE_DIR)/server/http.o $(TORTURE_DIR)/server/store.o

$(TORTURE_HOOKED): $(TORTURE_DIR)/server/%.o: server/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -DELBOD_TORTURE -MMD -MP -c $< -o $@

# -fno-builtin: the compiler must not turn the allocator's own code into calls to itself.
$(TORTURE_DIR)/torture_alloc.o: tests/torture/torture_alloc.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -fno-builtin -MMD -MP -c $< -o $@

# The hooked objects come before the server archive, so that the archive's are never linked.
$(TORTURE_BIN): $(BUILD)/server/main.o $(TORTURE_HOOKED) $(TORTURE_DIR)/torture_alloc.o \
		$(SERVER_LIB) $(CORE_LIB)
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL)

torture-test:
	@$(MAKE) --no-print-directory SANITIZER= build/torture/elbod
	python3 tests/torture/torture.py $(TORTURE_ARGS) build/torture/elbod

torture-test-san:
	@$(MAKE) --no-print-directory SANITIZER=address,undefined build/san/torture/elbod
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		python3 tests/torture/torture.py --sanitizer $(TORTURE_ARGS) build/san/torture/elbod

-include $(TORTURE_HOOKED:.o=.d) $(TORTURE_DIR)/torture_alloc.d
