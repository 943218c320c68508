#!/usr/bin/env python3
"""Fault injection against the torture build of elbod (tests/torture/torture.h; make torture-test).

Allocation failures. For each request of a representative set (every route: create, act, plan,
sessions, transitions, training, checkpoints, metrics, a 404, bad JSON, ...), the request is sent
with its 1st, 2nd, 3rd, ... allocation failing (header X-Torture-Fail-At: N) until one completes
with nothing injected (X-Torture-Injected: 0). After each:
  - the daemon is alive and answered, within the timeout: no empty reply, no crash, no hang;
  - the answer is the request's normal success, with the same JSON structure (every field) as
    without injection, or a clean JSON error {"error": {"code", "message"}} with status 500 or
    503;
  - what the request changes is all there or not at all (an agent that failed to be created does
    not exist and can be created; a failed close leaves the session open; an episode whose
    submission failed and was submitted again is accepted or a duplicate, never half);
  - the same request without injection succeeds.
Then the same with memory that stays short: every allocation from the N-th on fails (N = 1, 4,
7, ...: --sticky-stride), so that the error paths meet failures too. At the end the daemon stops
cleanly (exit 0: under the sanitizers, LeakSanitizer found no leak), starts again on the same
data, and every acknowledged transition and agent is there.

Disk full. A daemon whose data directory is full (ELBOD_TORTURE_DISKFULL: writes that need space
fail with ENOSPC) answers submissions with 507 storage_full and stores none of them, keeps
answering acts, plans and reads, stores submissions again once there is space, and stops and
restarts with every acknowledged transition intact, also when it stops while the disk is full.

Usage: torture.py [--sanitizer] [--case NAME ...] [--skip-disk] [--max-n N] ELBOD_BIN
"""
import argparse
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

TINY = {
    "observation_dim": 3, "action_dim": 1, "action_low": [-1], "action_high": [1],
    "model": {"h_dim": 8, "z_dim": 4, "hidden": 16, "seq_len": 8, "batch": 4,
              "overshoot_len": 4, "info_samples": 2, "replay_capacity": 100000},
    "planner": {"horizon": 4, "population": 16, "elites": 4, "iterations": 2},
    # No training: the daemon's answers stay the same from one run of a request to the next.
    "training": {"min_transitions": 100000000},
}
OBS = [0.1, -0.2, 0.3]


def agent_body(name, **extra):
    b = dict(TINY, name=name)
    b.update(extra)
    return b


def episode(eid, T):
    return {"id": eid, "observations": [[0.1 * t, -0.5, 1.0] for t in range(T + 1)],
            "actions": [[0.1 * (t % 10)] for t in range(T)],
            "rewards": [-1.0 + 0.01 * t for t in range(T)], "done": T % 2 == 1}


class Failure(Exception):
    pass


class Daemon:
    """One elbod on a free port of 127.0.0.1 with its data in `data`."""

    def __init__(self, binary, data, log, env=None, sanitizer=False):
        self.log = log
        self.sanitizer = sanitizer
        start = os.path.getsize(log) if os.path.exists(log) else 0  # the log of earlier runs
        self.proc = subprocess.Popen(
            [binary, "--host", "127.0.0.1", "--port", "0", "--data-dir", data,
             "--log-level", "info", "--workers", "2", "--http-threads", "1"],
            stdout=open(log, "ab"), stderr=subprocess.STDOUT, env=env)
        self.port = None
        deadline = time.monotonic() + (60 if sanitizer else 20)
        while time.monotonic() < deadline and self.port is None:
            if self.proc.poll() is not None:
                raise Failure("elbod exited at start (%s): %s"
                              % (self.proc.returncode, self.tail()))
            with open(log, "rb") as f:
                f.seek(start)
                m = re.findall(rb"event=listening .*? port=(\d+)", f.read())
            if m:
                self.port = int(m[-1])
            else:
                time.sleep(0.02)
        if self.port is None:
            raise Failure("elbod did not start: " + self.tail())
        self.conn = None
        self.timeout = 60 if sanitizer else 20

    def tail(self, n=30):
        try:
            with open(self.log, "rb") as f:
                return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-n:])
        except OSError:
            return ""

    def alive(self):
        return self.proc.poll() is None

    def request(self, method, path, body=None, ctype=None, fail_at=0, sticky=False):
        """(status, headers dict with lower-case names, body bytes); raises Failure when elbod
        answers nothing (connection closed, timeout)."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            ctype = ctype or "application/json"
        elif isinstance(body, str):
            body = body.encode()
        headers = {}
        if ctype:
            headers["Content-Type"] = ctype
        if fail_at:
            headers["X-Torture-Fail-At"] = "%d%s" % (fail_at, "+" if sticky else "")
        for attempt in range(2):
            reused = self.conn is not None
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=body, headers=headers)
                r = self.conn.getresponse()
                data = r.read()
                hs = {k.lower(): v for k, v in r.getheaders()}
                if hs.get("connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return r.status, hs, data
            except (http.client.HTTPException, OSError) as e:
                self.conn.close()
                self.conn = None
                # A kept-alive connection the daemon had closed in between: once more, fresh.
                if reused and attempt == 0 and not isinstance(e, TimeoutError):
                    continue
                raise Failure("no answer to %s %s (fail at %d): %r" % (method, path, fail_at, e))
        raise Failure("unreachable")

    def json(self, method, path, body=None, want=None):
        st, _, data = self.request(method, path, body)
        if want is not None and st != want:
            raise Failure("%s %s answered %d, expected %d: %s"
                          % (method, path, st, want, data[:300]))
        try:
            return st, json.loads(data) if data else None
        except ValueError:
            raise Failure("%s %s answered %d with no JSON: %r" % (method, path, st, data[:300]))

    def stop(self, expect_clean=True):
        if self.conn:
            self.conn.close()
            self.conn = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(120 if self.sanitizer else 60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise Failure("elbod did not stop on SIGTERM: " + self.tail())
        if expect_clean and self.proc.returncode != 0:
            raise Failure("elbod exited with %s: %s" % (self.proc.returncode, self.tail(60)))
        return self.proc.returncode


def lost_answer(res):
    """Whether an error is the server's last resort (no memory for the request's own answer,
    made after the handler did its work): it has no X-Request-Id."""
    return "x-request-id" not in res[1]


def shape(v):
    """The structure of a JSON value: object keys recursively, array element structure; numbers
    and null are alike (a non-finite number is written as null)."""
    if isinstance(v, dict):
        return {k: shape(x) for k, x in v.items()}
    if isinstance(v, list):
        return ["list"] + ([shape(v[0])] if v else [])
    if isinstance(v, bool):
        return "bool"
    if v is None or isinstance(v, (int, float)):
        return "num"
    return type(v).__name__


def same_shape(a, b):
    """Whether b has every field a has (arrays: element structure where both have elements)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(
            same_shape(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and (len(a) < 2 or len(b) < 2 or same_shape(a[1], b[1]))
    return a == b


class Torture:
    def __init__(self, d, args):
        self.d = d
        self.args = args
        self.failures = []
        self.points = 0
        self.sticky_points = 0
        self.requests = 0
        self.per_case = []
        self.acked = {}  # episode id -> transitions stored and acknowledged (agent "main")
        self.seq = 0

    def fail(self, case, n, msg):
        self.failures.append("%s, allocation %d: %s" % (case, n, msg))
        if len(self.failures) <= 40 or self.args.verbose:
            print("torture: FAIL: %s, allocation %d: %s" % (case, n, msg), flush=True)

    # ---- the reply check ----

    def check_reply(self, case, n, res, want, base):
        """Normal success (same structure as the baseline) or a clean 500/503 JSON error."""
        st, hs, data = res
        ctype = hs.get("content-type", "")
        if st == want:
            if base is None:
                return True
            bst, bhs, bdata = base
            if ctype != bhs.get("content-type", ""):
                self.fail(case, n, "success with Content-Type %r, %r without injection"
                          % (ctype, bhs.get("content-type")))
            elif ctype.startswith("application/json"):
                try:
                    v = json.loads(data)
                except ValueError:
                    self.fail(case, n, "success with a body that is no JSON: %r" % data[:200])
                    return False
                if not same_shape(shape(json.loads(bdata)), shape(v)):
                    self.fail(case, n, "success with fields missing or changed: %s" % data[:400])
                    return False
            elif ctype.startswith("text/plain"):
                if b"elbod_up 1\n" not in data:
                    self.fail(case, n, "metrics without elbod_up: %r" % data[-200:])
                    return False
            elif len(data) != len(bdata):
                self.fail(case, n, "success with %d bytes, %d without injection"
                          % (len(data), len(bdata)))
                return False
            return True
        if st in (500, 503):
            try:
                v = json.loads(data)
                ok = (ctype.startswith("application/json") and isinstance(v, dict)
                      and list(v) == ["error"] and isinstance(v["error"].get("code"), str)
                      and isinstance(v["error"].get("message"), str))
            except (ValueError, AttributeError):
                ok = False
            if not ok:
                self.fail(case, n, "error %d that is not a clean JSON error (%r): %r"
                          % (st, ctype, data[:300]))
            return False
        self.fail(case, n, "answered %d, expected %d or a 500/503 error: %r"
                  % (st, want, data[:300]))
        return False

    # ---- the loop ----

    def run_case(self, case, sticky=False, stride=1):
        name, method, path_fn, body_fn, ctype, want = (case[k] for k in (
            "name", "method", "path", "body", "ctype", "want"))
        prepare, after, cleanup = case.get("prepare"), case.get("after"), case.get("cleanup")
        d = self.d
        # Baseline without injection.
        ctx = prepare() if prepare else None
        base = d.request(method, path_fn(ctx), body_fn(ctx), ctype)
        if base[0] != want:
            raise Failure("%s: answered %d without injection: %r" % (name, base[0], base[2][:300]))
        if after:
            msg = after(ctx, True, base)
            if msg:
                raise Failure("%s without injection: %s" % (name, msg))
        if cleanup:
            cleanup(ctx, True)
        t0 = time.monotonic()
        n = 1 - stride
        allocs = 0
        points = 0
        label = name + (" (memory stays short)" if sticky else "")
        while True:
            n += stride
            if n > self.args.max_n:
                self.fail(label, n, "still injecting after %d allocations" % self.args.max_n)
                break
            ctx = prepare() if prepare else None
            try:
                res = d.request(method, path_fn(ctx), body_fn(ctx), ctype, fail_at=n,
                                sticky=sticky)
            except Failure as e:
                self.fail(label, n, str(e))
                if not d.alive():
                    raise Failure("elbod died (%s) at %s, allocation %d:\n%s"
                                  % (d.proc.returncode, name, n, d.tail(40)))
                continue
            self.requests += 1
            if not d.alive():
                raise Failure("elbod died (%s) after %s, allocation %d:\n%s"
                              % (d.proc.returncode, name, n, d.tail(40)))
            injected = res[1].get("x-torture-injected", "1") != "0"
            allocs = max(allocs, int(res[1].get("x-torture-allocs", "0")))
            ok = self.check_reply(label, n, res, want, base)
            if after:
                msg = after(ctx, ok, res)
                if msg:
                    self.fail(label, n, msg)
            # The same request without injection.
            if not (case.get("no_retry_after_success") and ok):
                ctx2 = case["retry_ctx"](ctx, ok) if case.get("retry_ctx") else ctx
                res2 = d.request(method, path_fn(ctx2), body_fn(ctx2), ctype)
                self.requests += 1
                want2 = case["retry_want"](ok) if case.get("retry_want") else want
                if res2[0] not in (want2 if isinstance(want2, tuple) else (want2,)):
                    self.fail(label, n, "without injection afterwards: %d, expected %s (%s): %r"
                              % (res2[0], want2, "answered %d before" % res[0], res2[2][:300]))
                elif case.get("after_retry"):
                    msg = case["after_retry"](ctx, ok, res, res2)
                    if msg:
                        self.fail(label, n, msg)
            if cleanup:
                cleanup(ctx, ok)
            if not injected:
                break
            points += 1
        if sticky:
            self.sticky_points += points
        else:
            self.points += points
            self.per_case.append((name, points, time.monotonic() - t0))
        if self.args.verbose:
            print("torture: %-40s %5d allocation points (%5d counted) %6.2f s"
                  % (label, points, allocs, time.monotonic() - t0), flush=True)

    # ---- the requests ----

    def cases(self):
        d = self.d
        js = "application/json"
        empty = lambda ctx: None  # noqa: E731

        def const(p):
            return lambda ctx: p

        def sessions(agent):
            return d.json("GET", "/v1/agents/" + agent, want=200)[1]["sessions"]

        def open_session(ctx=None):
            return d.json("POST", "/v1/agents/sess/sessions", {}, want=201)[1]["session_id"]

        def close_session(sid):
            d.request("DELETE", "/v1/agents/sess/sessions/" + sid)

        cs = []
        cs.append(dict(name="healthz", method="GET", path=const("/healthz"), body=empty,
                       ctype=None, want=200))
        cs.append(dict(name="readyz", method="GET", path=const("/readyz"), body=empty,
                       ctype=None, want=200))
        cs.append(dict(name="version", method="GET", path=const("/v1/version"), body=empty,
                       ctype=None, want=200))
        cs.append(dict(name="metrics", method="GET", path=const("/metrics"), body=empty,
                       ctype=None, want=200))
        cs.append(dict(name="not_found", method="GET", path=const("/v1/nothing/here"),
                       body=empty, ctype=None, want=404))
        cs.append(dict(name="bad_json", method="POST", path=const("/v1/agents/main/act"),
                       body=const('{"observation": [1, 2'), ctype=js, want=400))
        cs.append(dict(name="dashboard", method="GET", path=const("/"), body=empty, ctype=None,
                       want=200))

        # Create: an agent whose creation failed does not exist, and can be created.
        def create_after(ctx, ok, res):
            st, v = d.json("GET", "/v1/agents/t-create")
            if not ok and st == 200 and lost_answer(res):
                d.json("DELETE", "/v1/agents/t-create", want=200)
                return None
            if not ok and st != 404:
                return "creation failed (%d) but the agent exists (%d)" % (res[0], st)
            if ok and st != 200:
                return "created, but GET answers %d" % st
            if ok:
                d.json("DELETE", "/v1/agents/t-create", want=200)
            return None

        def create_cleanup(ctx, ok):
            d.request("DELETE", "/v1/agents/t-create")

        cs.append(dict(name="create_agent", method="POST", path=const("/v1/agents"),
                       body=const(agent_body("t-create")), ctype=js, want=201,
                       after=create_after, cleanup=create_cleanup))
        cs.append(dict(name="list_agents", method="GET", path=const("/v1/agents"), body=empty,
                       ctype=None, want=200))
        cs.append(dict(name="get_agent", method="GET", path=const("/v1/agents/main"), body=empty,
                       ctype=None, want=200))
        cs.append(dict(name="patch_agent", method="PATCH", path=const("/v1/agents/main"),
                       body=const({"planner": {"horizon": 4}}), ctype=js, want=200))
        cs.append(dict(name="act_policy", method="POST", path=const("/v1/agents/main/act"),
                       body=const({"observation": OBS, "mode": "policy"}), ctype=js, want=200))
        cs.append(dict(name="act_plan", method="POST", path=const("/v1/agents/main/act"),
                       body=const({"observation": OBS}), ctype=js, want=200))
        cs.append(dict(name="plan", method="POST", path=const("/v1/agents/main/plan"),
                       body=const({"observation": OBS}), ctype=js, want=200))

        # Sessions: a failed open leaves no session behind.
        def open_prepare():
            return sessions("sess")

        def open_after(before, ok, res):
            now = sessions("sess")
            if not ok and lost_answer(res) and now == before + 1:
                return None  # opened, its id lost with the answer: it expires when idle
            if now != before + (1 if ok else 0):
                return "open %s: %d sessions before, %d after" % (
                    "succeeded" if ok else "failed", before, now)
            if ok:
                close_session(json.loads(res[2])["session_id"])
            return None

        def open_retry_after(ctx, ok, res, res2):
            close_session(json.loads(res2[2])["session_id"])

        cs.append(dict(name="session_open", method="POST", path=const("/v1/agents/sess/sessions"),
                       body=const({}), ctype=js, want=201, prepare=open_prepare, after=open_after,
                       after_retry=open_retry_after))
        cs.append(dict(name="session_open_obs", method="POST",
                       path=const("/v1/agents/sess/sessions"),
                       body=const({"observation": OBS, "mode": "policy"}), ctype=js, want=201,
                       prepare=open_prepare, after=open_after, after_retry=open_retry_after))

        def act_prepare():
            return open_session()

        cs.append(dict(name="session_act", method="POST",
                       path=lambda sid: "/v1/agents/sess/sessions/%s/act" % sid,
                       body=const({"observation": OBS, "reward": 0.5, "mode": "policy"}),
                       ctype=js, want=200, prepare=act_prepare,
                       cleanup=lambda sid, ok: close_session(sid)))
        cs.append(dict(name="session_act_plan", method="POST",
                       path=lambda sid: "/v1/agents/sess/sessions/%s/act" % sid,
                       body=const({"observation": OBS, "reward": 0.5}), ctype=js, want=200,
                       prepare=act_prepare, cleanup=lambda sid, ok: close_session(sid)))

        # Close: a failed close leaves the session open (closing it again succeeds).
        # Close: a failed close either closed the session or left it open (closing it again
        # says which); either way, once closed it is no longer counted.
        def close_prepare():
            return open_session(), sessions("sess")

        cs.append(dict(name="session_close", method="DELETE",
                       path=lambda ctx: "/v1/agents/sess/sessions/" + ctx[0], body=empty,
                       ctype=None, want=200, prepare=close_prepare,
                       retry_want=lambda ok: 404 if ok else (200, 404),
                       after_retry=lambda ctx, ok, res, res2: None if sessions("sess") == ctx[1] - 1
                       else "closed, still counted: %d sessions" % sessions("sess")))

        # Transitions: acknowledged means stored; a failed submission sent again is accepted
        # whole or (stored before the failure) a whole duplicate.
        def submit_case(name, key, T):
            def prepare():
                self.seq += 1
                return "%s-%d" % (name, self.seq)

            def body(eid):
                if key == "episodes":
                    return {"episodes": [episode(eid, T)]}
                ep = episode(eid, 1)
                return {"transitions": [{"id": eid, "observation": ep["observations"][0],
                                         "action": ep["actions"][0], "reward": ep["rewards"][0],
                                         "next_observation": ep["observations"][1],
                                         "done": False}]}

            def after(eid, ok, res):
                if ok:
                    v = json.loads(res[2])
                    if v.get("accepted") != T or v.get("duplicates") != 0:
                        return "submission answered %s" % v
                    self.acked[eid] = T
                return None

            def after_retry(eid, ok, res, res2):
                v = json.loads(res2[2])
                if ok:
                    if v.get("accepted") != 0 or v.get("duplicates") != 1:
                        return "an acknowledged episode sent again: %s" % v
                elif (v.get("accepted"), v.get("duplicates")) == (T, 0):
                    self.acked[eid] = T
                elif (v.get("accepted"), v.get("duplicates")) == (0, 1):
                    self.acked[eid] = T  # stored, though the first answer was an error
                else:
                    return "a failed submission sent again: %s" % v
                return None

            return dict(name=name, method="POST", path=const("/v1/agents/main/transitions"),
                        body=body, ctype=js, want=200, prepare=prepare, after=after,
                        after_retry=after_retry)

        cs.append(submit_case("submit_episode", "episodes", 5))
        cs.append(submit_case("submit_transition", "transitions", 1))
        cs.append(dict(name="training_get", method="GET", path=const("/v1/agents/main/training"),
                       body=empty, ctype=None, want=200))
        cs.append(dict(name="training_pause", method="POST",
                       path=const("/v1/agents/main/training"), body=const({"action": "pause"}),
                       ctype=js, want=200))
        cs.append(dict(name="checkpoint_get", method="GET",
                       path=const("/v1/agents/main/checkpoint"), body=empty, ctype=None, want=200))
        ckpt = d.request("GET", "/v1/agents/main/checkpoint")[2]
        cs.append(dict(name="checkpoint_put", method="PUT",
                       path=const("/v1/agents/main/checkpoint"), body=const(ckpt),
                       ctype="application/octet-stream", want=200))
        cs.append(dict(name="episode_report", method="POST",
                       path=const("/v1/agents/main/episodes/report"),
                       body=const({"return": 1.5, "steps": 10}), ctype=js, want=200))
        cs.append(dict(name="episodes_get", method="GET", path=const("/v1/agents/main/episodes"),
                       body=empty, ctype=None, want=200))

        # Delete: a failed delete deleted the agent whole or left it whole (deleting it again
        # says which); a deleted one is gone (and stays gone after the restart at the end).
        def delete_prepare():
            d.json("POST", "/v1/agents", agent_body("t-delete"), want=201)
            return None

        def delete_after(ctx, ok, res):
            st, _ = d.json("GET", "/v1/agents/t-delete")
            if ok and st != 404:
                return "deleted, but GET answers %d" % st
            return None

        def delete_after_retry(ctx, ok, res, res2):
            st, _ = d.json("GET", "/v1/agents/t-delete")
            return None if st == 404 else "deleted twice, and GET answers %d" % st

        def delete_cleanup(ctx, ok):
            d.request("DELETE", "/v1/agents/t-delete")

        cs.append(dict(name="delete_agent", method="DELETE", path=const("/v1/agents/t-delete"),
                       body=empty, ctype=None, want=200, prepare=delete_prepare,
                       after=delete_after, after_retry=delete_after_retry,
                       retry_want=lambda ok: 404 if ok else (200, 404),
                       cleanup=delete_cleanup))
        return cs

    def setup(self):
        d = self.d
        d.json("POST", "/v1/agents", agent_body("main"), want=201)
        d.json("POST", "/v1/agents", agent_body("sess"), want=201)
        # A few transitions first, so that the checkpoint and the replay are not empty.
        d.json("POST", "/v1/agents/main/transitions",
               {"episodes": [episode("setup-%d" % i, 4) for i in range(3)]}, want=200)
        for i in range(3):
            self.acked["setup-%d" % i] = 4

    def verify_stored(self, d, when):
        """Agents main and sess (no others) and every acknowledged transition of main."""
        st, v = d.json("GET", "/v1/agents", want=200)
        names = sorted(a["name"] for a in v["agents"])
        if names != ["main", "sess"]:
            self.fail("stored state", 0, "%s: agents %s, expected main and sess" % (when, names))
        want = sum(self.acked.values())
        st, t = d.json("GET", "/v1/agents/main/training", want=200)
        # Stored and acknowledged transitions the replay could not take (out of memory, logged
        # replay_add_failed) are in it again after a restart.
        if t["transitions_total"] != want or t["replay_size"] > want or (
                when == "after the restart" and t["replay_size"] != want):
            self.fail("stored state", 0, "%s: transitions_total %s, replay_size %s, %d acknowledged"
                      % (when, t["transitions_total"], t["replay_size"], want))
        # Every acknowledged episode is stored exactly once: sent again, each is a duplicate.
        ids = sorted(self.acked)
        for i in range(0, len(ids), 200):
            chunk = ids[i:i + 200]
            st, v = d.json("POST", "/v1/agents/main/transitions",
                           {"episodes": [episode(e, 1) for e in chunk]}, want=200)
            if v["accepted"] != 0 or v["duplicates"] != len(chunk):
                self.fail("stored state", 0, "%s: acknowledged episodes sent again: %s" % (when, v))


def alloc_phase(args, work):
    data = os.path.join(work, "alloc-data")
    log = os.path.join(work, "alloc.log")
    d = Daemon(args.elbod, data, log, sanitizer=args.sanitizer)
    t = Torture(d, args)
    t0 = time.monotonic()
    try:
        t.setup()
        cases = t.cases()
        if args.case:
            unknown = set(args.case) - {c["name"] for c in cases}
            if unknown:
                raise Failure("no such case: %s" % ", ".join(sorted(unknown)))
            cases = [c for c in cases if c["name"] in args.case]
        for c in cases:
            t.run_case(c)
        # Memory that stays short: every allocation from the N-th on fails (N = 1, 1 + stride,
        # ...), so that the error paths meet failures too. The same checks.
        if args.sticky_stride > 0:
            for c in cases:
                t.run_case(c, sticky=True, stride=args.sticky_stride)
        t.verify_stored(d, "before the restart")
        d.stop()
        d = Daemon(args.elbod, data, log, sanitizer=args.sanitizer)
        t.d = d
        t.verify_stored(d, "after the restart")
        d.stop()
    except Failure as e:
        t.failures.append(str(e))
        print("torture: FAIL: %s" % e, flush=True)
        if d.alive():
            d.stop(expect_clean=False)
    dt = time.monotonic() - t0
    print("torture: allocation failures: %d requests x their allocations = %d allocation points "
          "injected, and %d more with every allocation from there on failing (%d requests in "
          "all), %.1f s" % (len(t.per_case), t.points, t.sticky_points, t.requests, dt))
    if args.verbose or t.failures:
        worst = sorted(t.per_case, key=lambda x: -x[1])[:5]
        print("torture: most allocations: " + ", ".join("%s %d" % (n, k) for n, k, _ in worst))
    return t.failures


def disk_phase(args, work):
    """A full disk under a daemon: clean 507s, nothing half stored, acts go on, space comes back."""
    failures = []

    def fail(msg):
        failures.append(msg)
        print("torture: FAIL: disk full: %s" % msg, flush=True)

    data = os.path.join(work, "disk-data")
    log = os.path.join(work, "disk.log")
    flag = os.path.join(work, "disk-full")
    env = dict(os.environ, ELBOD_TORTURE_DISKFULL=flag)
    t0 = time.monotonic()
    acked = {}
    refused = []
    d = Daemon(args.elbod, data, log, env=env, sanitizer=args.sanitizer)
    seq = [0]

    def submit(eid, T=6):
        st, hs, body = d.request("POST", "/v1/agents/disk/transitions",
                                 {"episodes": [episode(eid, T)]})
        try:
            v = json.loads(body)
        except ValueError:
            v = None
        return st, v, hs

    def next_id():
        seq[0] += 1
        return "d-%d" % seq[0]

    try:
        d.json("POST", "/v1/agents", agent_body("disk"), want=201)
        d.json("POST", "/v1/agents", agent_body("disk-s"), want=201)
        sid = d.json("POST", "/v1/agents/disk-s/sessions", {}, want=201)[1]["session_id"]
        for _ in range(5):
            eid = next_id()
            st, v, _ = submit(eid)
            if st != 200 or v.get("accepted") != 6:
                raise Failure("submission before the disk is full answered %d %s" % (st, v))
            acked[eid] = 6
        for rnd in range(2):
            open(flag, "w").close()  # the disk is full
            n_507 = 0
            for _ in range(20):
                eid = next_id()
                st, v, hs = submit(eid)
                if st == 200 and v and v.get("accepted") == 6:
                    acked[eid] = 6  # there was room still (an overwrite of the WAL)
                elif st == 507 and v and v.get("error", {}).get("code") == "storage_full" \
                        and hs.get("content-type", "").startswith("application/json"):
                    refused.append(eid)
                    n_507 += 1
                else:
                    fail("a submission on a full disk answered %d %r" % (st, v))
            if n_507 < 15:
                fail("only %d of 20 submissions on a full disk were refused" % n_507)
            # Acting, planning and reading go on.
            for method, path, body, want in (
                    ("POST", "/v1/agents/disk/act", {"observation": OBS, "mode": "policy"}, 200),
                    ("POST", "/v1/agents/disk/act", {"observation": OBS}, 200),
                    ("POST", "/v1/agents/disk/plan", {"observation": OBS}, 200),
                    ("POST", "/v1/agents/disk-s/sessions/%s/act" % sid,
                     {"observation": OBS, "reward": 1.0}, 200),
                    ("GET", "/v1/agents/disk/training", None, 200),
                    ("GET", "/metrics", None, 200),
                    ("GET", "/v1/agents/disk/checkpoint", None, 200)):
                st, _, body_ = d.request(method, path, body)
                if st != want:
                    fail("%s %s on a full disk answered %d: %r" % (method, path, st, body_[:200]))
            # Creating an agent needs the disk: a clean error, and no agent.
            st, v = d.json("POST", "/v1/agents", agent_body("disk-new"))
            if st != 507 or v.get("error", {}).get("code") != "storage_full":
                fail("creating an agent on a full disk answered %d %s" % (st, v))
            st, _ = d.json("GET", "/v1/agents/disk-new")
            if st != 404:
                fail("an agent whose creation failed on a full disk exists (%d)" % st)
            # Changing and deleting an agent need the disk too: refused, the agent as it was.
            st, v = d.json("PATCH", "/v1/agents/disk-s", {"planner": {"horizon": 7}})
            if st != 507:
                fail("a PATCH on a full disk answered %d %s" % (st, v))
            st, v = d.json("DELETE", "/v1/agents/disk-s")
            if st != 507 or v.get("error", {}).get("code") != "storage_full":
                fail("a DELETE on a full disk answered %d %s" % (st, v))
            st, v = d.json("GET", "/v1/agents/disk-s")
            if st != 200 or v["planner"]["horizon"] != TINY["planner"]["horizon"] \
                    or v["sessions"] != 1:
                fail("the agent after a PATCH and a DELETE refused on a full disk: %d %s"
                     % (st, v))
            st, _, body_ = d.request("POST", "/v1/agents/disk-s/sessions/%s/act" % sid,
                                     {"observation": OBS, "reward": 1.0, "mode": "policy"})
            if st != 200:
                fail("a session act after a DELETE refused on a full disk: %d %r" % (st, body_))
            if not d.alive():
                raise Failure("elbod died on a full disk: " + d.tail())
            os.unlink(flag)  # space again
            # The refused episodes were not stored: sent again, each is accepted whole.
            for eid in refused:
                st, v, _ = submit(eid)
                if st != 200 or v.get("accepted") != 6 or v.get("duplicates") != 0:
                    fail("a refused episode sent again once there is space: %d %s" % (st, v))
                else:
                    acked[eid] = 6
            refused.clear()
            st, v = d.json("POST", "/v1/agents", agent_body("disk-new"))
            if st != 201:
                fail("creating an agent once there is space answered %d %s" % (st, v))
            d.request("DELETE", "/v1/agents/disk-new")
            if rnd == 0:
                # Stop while the disk is full: the shutdown checkpoint fails, nothing is lost.
                open(flag, "w").close()
                d.stop(expect_clean=False)
                os.unlink(flag)
                d = Daemon(args.elbod, data, log, env=env, sanitizer=args.sanitizer)
                sid = d.json("POST", "/v1/agents/disk-s/sessions", {}, want=201)[1]["session_id"]
                check_disk_agent(d, acked, fail, "after a stop on a full disk")
        d.stop()
        d = Daemon(args.elbod, data, log, env=env, sanitizer=args.sanitizer)
        check_disk_agent(d, acked, fail, "after the restart")
        d.stop()
    except Failure as e:
        fail(str(e))
        if d.alive():
            d.stop(expect_clean=False)
    print("torture: disk full: %d episodes acknowledged and intact after restarts, refusals "
          "clean, acts served on the full disk, %.1f s" % (len(acked), time.monotonic() - t0))
    return failures


def check_disk_agent(d, acked, fail, when):
    want = 6 * len(acked)
    st, t = d.json("GET", "/v1/agents/disk/training", want=200)
    if t["transitions_total"] != want or t["replay_size"] != want:
        fail("%s: transitions_total %s, replay_size %s, %d acknowledged"
             % (when, t["transitions_total"], t["replay_size"], want))
    st, _ = d.json("GET", "/v1/agents/disk-s")
    if st != 200:
        fail("%s: agent disk-s, whose DELETE was refused, answers %d" % (when, st))
    ids = sorted(acked)
    st, v = d.json("POST", "/v1/agents/disk/transitions",
                   {"episodes": [episode(e, 6) for e in ids]}, want=200)
    if v["accepted"] != 0 or v["duplicates"] != len(ids):
        fail("%s: acknowledged episodes sent again: %s" % (when, v))
    d.json("POST", "/v1/agents/disk/act", {"observation": OBS, "mode": "policy"}, want=200)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("elbod")
    ap.add_argument("--sanitizer", action="store_true", help="longer timeouts (ASan build)")
    ap.add_argument("--case", action="append", help="run only this request (repeatable)")
    ap.add_argument("--skip-disk", action="store_true", help="only the allocation failures")
    ap.add_argument("--skip-alloc", action="store_true", help="only the disk-full test")
    ap.add_argument("--max-n", type=int, default=20000, help="most allocations per request")
    ap.add_argument("--sticky-stride", type=int, default=3,
                    help="allocation points between runs where every allocation from the N-th "
                    "on fails (0: none)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("-v", "--verbose", action="store_true", help="a line per request")
    args = ap.parse_args()
    if not os.access(args.elbod, os.X_OK):
        print("torture: %s is not built (make torture-test)" % args.elbod)
        return 2
    work = tempfile.mkdtemp(prefix="elbod-torture.")
    t0 = time.monotonic()
    failures = []
    if not args.skip_alloc:
        failures += alloc_phase(args, work)
    if not args.skip_disk and not args.case:
        failures += disk_phase(args, work)
    print("torture: %s, %.1f s%s" % ("ok" if not failures else "%d failures" % len(failures),
                                      time.monotonic() - t0,
                                      "" if not failures else "; logs in " + work))
    if not failures and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    elif args.keep:
        print("torture: kept " + work)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
