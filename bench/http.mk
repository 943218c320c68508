# HTTP benchmark of the daemon (included by the Makefile).
#
# make bench-http   wrk against build/elbod on loopback while its agent trains: requests per
#                   second and latency percentiles (p50, p99) of policy-mode act, session act
#                   with planning (one session per connection) and transition submission, at
#                   1, 16 and 64 connections; policy acts at 16 connections while plans run
#                   alongside; and, in the same run, nginx (nginx-light) serving a static JSON
#                   file of the policy act response's size, as this machine's ceiling. wrk uses
#                   one thread (one of the two cores) for every target. Ends with `RESULT
#                   policy_rps=.. nginx_rps=.. ratio=.. policy_p99_ms=.. plan_p99_ms=..` (16
#                   connections; target: ratio >= 0.70 and policy p99 < 5 ms). See bench/http.sh.
# Knobs: BENCH_HTTP_SECONDS (10, per run), BENCH_HTTP_CONNS ("1 16 64"), BENCH_HTTP_ROUNDS (3:
# nginx and policy act alternate, each keeps its best round), BENCH_HTTP_WRK_THREADS (1),
# BENCH_HTTP_ELBOD_ARGS (extra elbod flags), BENCH_HTTP_TRAIN_RATIO (0: train throughout).

BENCH_HTTP_SECONDS ?= 10
BENCH_HTTP_CONNS ?= 1 16 64
BENCH_HTTP_ROUNDS ?= 3
BENCH_HTTP_WRK_THREADS ?= 1
BENCH_HTTP_ELBOD_ARGS ?=
BENCH_HTTP_TRAIN_RATIO ?= 0

.PHONY: bench-http

# deps first, then a fresh make: the pkg-config flags are read when the Makefile is parsed.
bench-http:
	@sh scripts/deps.sh bench
	@$(MAKE) --no-print-directory $(ELBOD_BIN)
	@BENCH_HTTP_SECONDS='$(BENCH_HTTP_SECONDS)' BENCH_HTTP_CONNS='$(BENCH_HTTP_CONNS)' \
		BENCH_HTTP_ROUNDS='$(BENCH_HTTP_ROUNDS)' \
		BENCH_HTTP_WRK_THREADS='$(BENCH_HTTP_WRK_THREADS)' \
		BENCH_HTTP_ELBOD_ARGS='$(BENCH_HTTP_ELBOD_ARGS)' \
		BENCH_HTTP_TRAIN_RATIO='$(BENCH_HTTP_TRAIN_RATIO)' sh bench/http.sh $(ELBOD_BIN)
