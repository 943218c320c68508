# Soak test of the daemon (included by the Makefile): a benchmark, not a unit test.
#
# make bench-soak   BENCH_SOAK_SECONDS (600) of mixed traffic from wrk at BENCH_SOAK_CONNS (64)
#                   connections against build/elbod on loopback while its agent trains:
#                   policy-mode act, plan-mode session act, plans and transition submissions.
#                   One line per minute (requests served per kind, intended 429/503 refusals,
#                   errors, p99 latency per kind, elbod's VmRSS, the training step), then a
#                   summary and `RESULT soak_minutes=.. requests=.. errors=.. rss_first_mb=..
#                   rss_last_mb=.. rss_growth_after_warmup_mb=.. p99_max_ms=..`. Fails (exit 1)
#                   on any error, VmRSS growth after the warm-up over BENCH_SOAK_RSS_SLACK_MB,
#                   a minute without training, or an unclean exit on SIGTERM. See bench/soak.sh.
# Knobs: BENCH_SOAK_SECONDS (600), BENCH_SOAK_CONNS (64), BENCH_SOAK_WARMUP_MIN (2),
# BENCH_SOAK_RSS_SLACK_MB (4), BENCH_SOAK_ELBOD_ARGS (extra elbod flags).

BENCH_SOAK_SECONDS ?= 600
BENCH_SOAK_CONNS ?= 64
BENCH_SOAK_WARMUP_MIN ?= 2
BENCH_SOAK_RSS_SLACK_MB ?= 4
BENCH_SOAK_ELBOD_ARGS ?=

.PHONY: bench-soak

# deps first, then a fresh make: the pkg-config flags are read when the Makefile is parsed.
bench-soak:
	@sh scripts/deps.sh bench
	@$(MAKE) --no-print-directory $(ELBOD_BIN)
	@BENCH_SOAK_SECONDS='$(BENCH_SOAK_SECONDS)' BENCH_SOAK_CONNS='$(BENCH_SOAK_CONNS)' \
		BENCH_SOAK_WARMUP_MIN='$(BENCH_SOAK_WARMUP_MIN)' \
		BENCH_SOAK_RSS_SLACK_MB='$(BENCH_SOAK_RSS_SLACK_MB)' \
		BENCH_SOAK_ELBOD_ARGS='$(BENCH_SOAK_ELBOD_ARGS)' sh bench/soak.sh $(ELBOD_BIN)
