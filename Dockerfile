# elbod in a container (README, "Deployment"):
#
#   docker build -t elbod .
#   docker run -d --name elbod -p 8080:8080 -v elbod-data:/var/lib/elbod --stop-timeout 300 elbod
#
# Two stages on Debian 12: the build stage installs the build dependencies with the README's own
# script (scripts/deps.sh build) and runs `make install` into /out; the runtime stage installs
# only the shared libraries, by Debian package name (scripts/deps.sh runtime: the one list), and
# copies /out in.

FROM debian:bookworm-slim AS build
WORKDIR /src
# The dependency script alone first, so that the package layer is reused across source changes.
COPY scripts/deps.sh scripts/deps.sh
RUN sh scripts/deps.sh build && rm -rf /var/lib/apt/lists/*
COPY . .
# `make install` builds what it installs (the binaries, the man pages, the default config); a
# bare `make` would also build the test runner, which needs the test dependencies.
RUN make -j"$(nproc)" install DESTDIR=/out PREFIX=/usr

FROM debian:bookworm-slim
COPY scripts/deps.sh /tmp/deps.sh
# A fixed, numeric non-root user (10001) owns the store, so that runAsNonRoot-style checks and
# volume permissions are predictable.
RUN sh /tmp/deps.sh runtime \
    && rm -rf /var/lib/apt/lists/* /tmp/deps.sh \
    && groupadd --system --gid 10001 elbod \
    && useradd --system --uid 10001 --gid elbod --home-dir /var/lib/elbod --no-create-home \
        --shell /usr/sbin/nologin elbod \
    && install -d -o elbod -g elbod -m 0750 /var/lib/elbod
COPY --from=build /out/ /

USER 10001:10001
WORKDIR /var/lib/elbod
VOLUME /var/lib/elbod
EXPOSE 8080

# SIGTERM (docker stop) makes elbod finish in-flight requests, checkpoint every agent and exit
# 0. Docker sends SIGKILL 10 s later by default, which can cut the checkpoints short: give it
# longer (docker run --stop-timeout 300, docker stop -t 300, compose stop_grace_period: 5m).
# elbod runs as PID 1 without an init: it takes its signals synchronously (blocked, then
# sigtimedwait), which PID 1 receives like any process, and it starts no child processes.
STOPSIGNAL SIGTERM

# Liveness. The start period covers loading the stored agents, which comes before listening.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10m --retries=3 \
    CMD curl -fsS -o /dev/null http://127.0.0.1:8080/healthz || exit 1

# Listening on every interface: inside a container the published port is the way in. On a
# non-loopback address elbod refuses to start without API keys (keys_file) unless told
# --allow-no-auth, the explicit opt-out used here: every client that reaches the port may use
# every route. To require keys, mount a keys file and name it (-v ...:/etc/elbod/keys:ro
# -e ELBOD_KEYS_FILE=/etc/elbod/keys): keys are then checked, --allow-no-auth notwithstanding
# (README, Authentication). Settings not given here can be set with ELBOD_* variables (docker
# run -e ELBOD_LOG_FORMAT=json) or a config file mounted over /etc/elbod/elbod.conf.
CMD ["elbod", "--config", "/etc/elbod/elbod.conf", "--host", "0.0.0.0", "--port", "8080", \
     "--data-dir", "/var/lib/elbod", "--allow-no-auth"]
