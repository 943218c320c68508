# elbod build. `make help` lists the targets.
#
# Release objects go to build/, the sanitizer build (ASan + UBSan) to build/san/.
# `make SANITIZER=address,undefined <target>` builds any target with the sanitizers.

SHELL := /bin/sh
CC ?= cc
PKGS := openblas jansson libmicrohttpd sqlite3 libcurl libsystemd nettle
SANITIZER ?=

ifeq ($(SANITIZER),)
BUILD := build
OPT := -O2 -g
else
BUILD := build/san
OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=$(SANITIZER) -fno-sanitize-recover=all
endif

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_CFLAGS = $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS = $(shell pkg-config --libs check 2>/dev/null)

# -fno-trapping-math lets the elementwise loops (selects on float compares) vectorise; elbod never
# reads floating-point exception flags. -fopenmp-simd honours `#pragma omp simd` without OpenMP.
WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla
CFLAGS_ALL = -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $(OPT) $(WARN) \
	-fno-trapping-math -fopenmp-simd -pthread -I. $(PKG_CFLAGS) $(CFLAGS)
LDLIBS_ALL = $(PKG_LIBS) -lm -pthread $(LDLIBS)

CORE_SRCS := $(wildcard core/*.c)
API_SRCS := $(wildcard api/*.c)
SERVER_SRCS := $(filter-out server/main.c,$(wildcard server/*.c))
TEST_SRCS := $(wildcard tests/check_*.c) tests/testutil.c
ALL_C := $(CORE_SRCS) $(wildcard api/*.c server/*.c clients/c/*.c tests/*.c bench/*.c)
ALL_H := $(wildcard core/*.h api/*.h server/*.h clients/c/*.h tests/*.h bench/*.h)

CORE_OBJS := $(CORE_SRCS:%.c=$(BUILD)/%.o)
API_OBJS := $(API_SRCS:%.c=$(BUILD)/%.o)
SERVER_OBJS := $(SERVER_SRCS:%.c=$(BUILD)/%.o)
TEST_OBJS := $(TEST_SRCS:%.c=$(BUILD)/%.o)
CORE_LIB := $(BUILD)/libelbocore.a
# server and api depend on each other through api/service.h: one archive, linked as a group.
SERVER_LIB := $(BUILD)/libelboserver.a
CHECK_BIN := $(BUILD)/tests/check_elbo

.PHONY: all deps deps-build deps-bench check-openapi test test-python test-unit test-san check-format format check-layering \
	run clean help

ELBOD_BIN := $(BUILD)/elbod

all: $(ELBOD_BIN) $(CHECK_BIN)

$(ELBOD_BIN): $(BUILD)/server/main.o $(SERVER_LIB) $(CORE_LIB)
	$(CC) $(CFLAGS_ALL) -o $@ $(BUILD)/server/main.o $(SERVER_LIB) $(CORE_LIB) $(LDLIBS_ALL)

help:
	@echo "make deps        install missing Debian packages (a no-op when all are present)"
	@echo "make run         deps, build, and start elbod on 127.0.0.1:8080 (RUN_ARGS=... adds flags)"
	@echo "make             build build/elbod and the test runner"
	@echo "make test        deps, format and layering checks, tests, then the ASan+UBSan tests"
	@echo "make test-unit   only the release test run (CK_RUN_SUITE=name picks one suite)"
	@echo "make fuzz        the libFuzzer targets, FUZZ_SECONDS (600) each (tests/fuzz/fuzz.mk)"
	@echo "make crash-test  SIGKILL elbod 20 times under load: nothing acknowledged may be lost"
	@echo "make torture-test  every request with its 1st, 2nd, ... allocation failing; a full disk"
	@echo "make test-browser  the dashboard and the game in headless Chromium (web/web.mk)"
	@echo "make format      apply .clang-format to every C file"
	@echo "make install     install under PREFIX (/usr/local) and DESTDIR (deploy.mk); make uninstall"
	@echo "make clean       remove build/"

deps:
	@sh scripts/deps.sh test

deps-build:
	@sh scripts/deps.sh build

# `make run`: install what is missing, build, and start elbod on 127.0.0.1:8080 with ./elbod-data.
# RUN_ARGS adds flags, e.g. make run RUN_ARGS="--port 9000 --log-level debug".
RUN_ARGS ?=
run: deps-build
	@$(MAKE) --no-print-directory $(ELBOD_BIN)
	@echo ""
	@echo "elbod: starting on http://127.0.0.1:8080 (data in ./elbod-data; Ctrl-C stops it cleanly)"
	@echo "Try, from another terminal:"
	@echo "  curl -s -X POST http://127.0.0.1:8080/v1/agents -H 'Content-Type: application/json' \\"
	@echo "       -d '{\"name\":\"pendulum\",\"observation_dim\":3,\"action_dim\":1,\"action_low\":[-2],\"action_high\":[2]}'"
	@echo "  curl -s -X POST http://127.0.0.1:8080/v1/agents/pendulum/act -H 'Content-Type: application/json' \\"
	@echo "       -d '{\"observation\":[1,0,0]}'"
	@echo ""
	exec $(ELBOD_BIN) $(RUN_ARGS)

deps-bench:
	@sh scripts/deps.sh bench

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(CHECK_CFLAGS) -MMD -MP -c $< -o $@

$(CORE_LIB): $(CORE_OBJS)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(SERVER_LIB): $(API_OBJS) $(SERVER_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

$(CHECK_BIN): $(TEST_OBJS) $(SERVER_LIB) $(CORE_LIB)
	$(CC) $(CFLAGS_ALL) -o $@ $(TEST_OBJS) $(SERVER_LIB) $(CORE_LIB) $(CHECK_LIBS) $(LDLIBS_ALL)

# The test command of the README: install, check, build, run release and sanitizer builds.
test: deps
	@$(MAKE) --no-print-directory check-format check-layering check-openapi
	@$(MAKE) --no-print-directory test-python
	@$(MAKE) --no-print-directory test-deploy
	@$(MAKE) --no-print-directory test-unit
	@$(MAKE) --no-print-directory test-fuzz
	@$(MAKE) --no-print-directory crash-test
	@$(MAKE) --no-print-directory torture-test
	@$(MAKE) --no-print-directory test-browser
	@$(MAKE) --no-print-directory test-san
	@$(MAKE) --no-print-directory torture-test-san

# The end-to-end suite (tests/check_e2e.c) starts the elbod named by ELBOD_BIN: the one of the
# same build.
test-unit: $(CHECK_BIN) $(ELBOD_BIN)
	ELBOD_BIN=$(ELBOD_BIN) ELBOCTL_BIN=$(ELBOCTL_BIN) $(CHECK_BIN)

# The Python client's tests (tests/test_python_client.py) start the release build/elbod.
test-python:
	@$(MAKE) --no-print-directory SANITIZER= build/elbod
	ELBOD_BIN=build/elbod python3 tests/test_python_client.py

# CK_FORK=no runs every test in one process so that LeakSanitizer sees the whole run; the
# daemons the e2e suite starts inherit the sanitizer options.
test-san:
	@$(MAKE) --no-print-directory SANITIZER=address,undefined build/san/tests/check_elbo \
		build/san/elbod build/san/elboctl build/san/robot_pendulum build/san/robot_cartpole
	CK_FORK=no ELBOD_BIN=build/san/elbod ELBOCTL_BIN=build/san/elboctl ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 build/san/tests/check_elbo

# api/openapi.yaml names every route of api/api.c and every field the api reads or writes.
check-openapi:
	@python3 tests/check_openapi.py

check-format:
	@clang-format --dry-run --Werror $(ALL_C) $(ALL_H) && echo "format: ok"

format:
	clang-format -i $(ALL_C) $(ALL_H)

# core/ is the math: no HTTP, JSON, SQL or socket headers. api/ never touches sockets.
check-layering:
	@bad=$$(grep -nE '#include *[<"](microhttpd|jansson|curl/|sqlite3|sys/socket|netinet/|arpa/)' core/*.c core/*.h 2>/dev/null); \
	if [ -n "$$bad" ]; then echo "layering: core/ includes a forbidden header:"; echo "$$bad"; exit 1; fi; \
	bad=$$(grep -nE '#include *[<"](microhttpd|sqlite3|sys/socket|netinet/|arpa/)' api/*.c api/*.h 2>/dev/null); \
	if [ -n "$$bad" ]; then echo "layering: api/ touches sockets or the store:"; echo "$$bad"; exit 1; fi; \
	echo "layering: ok"

clean:
	rm -rf build

# Benchmarks (bench/*.mk): make bench-train, bench-plan, ...
-include bench/*.mk clients/*.mk
-include tests/fuzz/fuzz.mk tests/crash.mk tests/torture/torture.mk
-include web/web.mk
-include deploy.mk

-include $(BUILD)/server/main.d $(CORE_OBJS:.o=.d) $(API_OBJS:.o=.d) $(SERVER_OBJS:.o=.d) $(TEST_OBJS:.o=.d)
