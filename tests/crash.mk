# Crash safety (included by the Makefile).
#
# make crash-test   tests/crash_test.sh against the release build/elbod: 20 rounds (CRASH_ROUNDS)
#                   of clients submitting episodes, SIGKILL at a random moment (also while the
#                   agent trains and checkpoints), restart on the same data directory; every
#                   acknowledged episode must be stored exactly once and the agent must load.
#                   About 40-50 s; part of make test.

CRASH_ROUNDS ?= 20

.PHONY: crash-test

crash-test:
	@$(MAKE) --no-print-directory SANITIZER= build/elbod
	CRASH_ROUNDS=$(CRASH_ROUNDS) bash tests/crash_test.sh build/elbod
