#!/usr/bin/env python3
"""Tests of the Python client (clients/python/elbod_client.py) against a real elbod.

Starts the daemon named by ELBOD_BIN (default build/elbod) on a free loopback port with a
temporary data directory, exercises every client method, the error model, the Gymnasium-style
adapter on the pure-Python pendulum of clients/python/example_pendulum.py, and stops the daemon
with SIGTERM (its exit status must be 0). Standard library only; Python 3.9+.

    python3 tests/test_python_client.py            # or: make test-python
    ELBOD_BIN=build/san/elbod python3 tests/test_python_client.py -v
"""

from __future__ import annotations

import http.server
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from unittest import mock
from typing import Any, Dict, List, Optional, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "clients", "python"))

import elbod_client as ec  # noqa: E402
from example_pendulum import PendulumEnv  # noqa: E402

SMALL_PLANNER = {"population": 64, "horizon": 10, "iterations": 2}
PENDULUM = dict(observation_dim=3, action_dim=1, action_low=[-2.0], action_high=[2.0])


def elbod_bin() -> str:
    """The daemon to test: $ELBOD_BIN, else build/elbod (relative to the cwd or the repo)."""
    path = os.environ.get("ELBOD_BIN", "build/elbod")
    if not os.path.isabs(path) and not os.path.exists(path):
        path = os.path.join(REPO, path)
    return os.path.abspath(path)


def free_port() -> int:
    """A loopback port that was free a moment ago (bind 127.0.0.1:0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Daemon:
    """One elbod process on a free loopback port with a temporary data directory."""

    def __init__(self) -> None:
        self.data_dir = tempfile.mkdtemp(prefix="elbod-pytest-")
        self.log_path = os.path.join(self.data_dir, "elbod.log")
        self.proc: Optional[subprocess.Popen] = None
        self.port = 0
        self.url = ""

    def start(self, ready_timeout: float = 20.0) -> None:
        """Starts the daemon and waits for /readyz (a port taken meanwhile: another one)."""
        binary = elbod_bin()
        if not os.access(binary, os.X_OK):
            raise RuntimeError(f"no elbod binary at {binary} (make, or set ELBOD_BIN)")
        for _attempt in range(3):
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            log = open(self.log_path, "ab")
            self.proc = subprocess.Popen(
                [binary, "--port", str(self.port), "--data-dir", self.data_dir,
                 "--log-level", "warn"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
            log.close()
            client = ec.ElbodClient(self.url, timeout=2.0)
            deadline = time.monotonic() + ready_timeout
            try:
                while time.monotonic() < deadline and self.proc.poll() is None:
                    try:
                        if client.ready():
                            return
                    except ec.ElbodConnectionError:
                        pass
                    time.sleep(0.05)
            finally:
                client.close()
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError(f"elbod not ready within {ready_timeout} s:\n{self.log()}")
        raise RuntimeError(f"elbod did not start:\n{self.log()}")

    def stop(self, timeout: float = 30.0) -> int:
        """Sends SIGTERM to the daemon's PID and returns its exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        return int(self.proc.returncode)

    def log(self) -> str:
        """The tail of the daemon's log."""
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-4000:].decode("utf-8", "replace")
        except OSError:
            return "(no log)"

    def cleanup(self) -> None:
        """Kills a daemon still running and removes the data directory."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.data_dir, ignore_errors=True)


DAEMON: Optional[Daemon] = None


def setUpModule() -> None:
    global DAEMON
    DAEMON = Daemon()
    try:
        DAEMON.start()
    except Exception:
        DAEMON.cleanup()
        raise


def tearDownModule() -> None:
    assert DAEMON is not None
    try:
        rc = DAEMON.stop()
        if rc != 0:
            raise AssertionError(f"elbod exited with status {rc} on SIGTERM:\n{DAEMON.log()}")
    finally:
        DAEMON.cleanup()


class FakeArray:
    """Quacks like a numpy array: only .tolist()."""

    def __init__(self, values: List[Any]) -> None:
        self.values = values

    def tolist(self) -> List[Any]:
        return list(self.values)


class DaemonTestCase(unittest.TestCase):
    """A client of the module's daemon, and helpers."""

    client: ec.ElbodClient

    @classmethod
    def setUpClass(cls) -> None:
        assert DAEMON is not None
        cls.client = ec.ElbodClient(DAEMON.url, token="test-token", timeout=30.0)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.client.close()

    def make_agent(self, name: str, **kw: Any) -> Dict[str, Any]:
        """Creates a pendulum-shaped agent with the small planner (deleted after the test)."""
        kw.setdefault("planner", SMALL_PLANNER)
        agent = self.client.create_agent(name, **PENDULUM, **kw)
        self.addCleanup(self.client.delete_agent, name, True)
        return agent

    def assertElbodError(self, status: int, code: str, fn: Any, *args: Any,
                         **kw: Any) -> ec.ElbodError:
        with self.assertRaises(ec.ElbodError) as cm:
            fn(*args, **kw)
        err = cm.exception
        self.assertEqual((err.status, err.code), (status, code), str(err))
        self.assertTrue(err.message)
        return err


class TestDaemonRoutes(DaemonTestCase):
    def test_health_ready_version_metrics(self) -> None:
        self.assertEqual(self.client.health(), {"status": "ok"})
        self.assertTrue(self.client.ready())
        self.client.wait_ready(timeout=5)
        v = self.client.version()
        self.assertEqual((v["name"], v["api"]), ("elbod", "v1"))
        self.assertIsInstance(v["checkpoint_format"], int)
        text = self.client.metrics()
        self.assertIn("elbod_http_requests_total", text)
        samples = ec.parse_metrics(text)
        self.assertEqual(samples["elbod_up"][0][1], 1.0)
        routes = {labels.get("route") for labels, _ in samples["elbod_http_requests_total"]}
        self.assertIn("/healthz", routes)

    def test_keep_alive_reuses_the_connection(self) -> None:
        with ec.ElbodClient(DAEMON.url) as c:  # type: ignore[union-attr]
            c.health()
            first = c._local.conn
            c.version()
            c.health()
            self.assertIs(c._local.conn, first)
            self.assertIsNotNone(first.sock)


class TestAgents(DaemonTestCase):
    def test_create_list_get_patch_delete(self) -> None:
        a = self.make_agent("crud-1", training={"min_transitions": 500})
        self.assertEqual(a["name"], "crud-1")
        self.assertEqual(a["planner"]["population"], 64)
        self.assertEqual(a["training"]["min_transitions"], 500)
        self.assertEqual(a["model"]["h_dim"], 64)  # a default filled in
        self.assertEqual(a["sessions"], 0)
        self.assertEqual(a["status"]["step"], 0)

        err = self.assertElbodError(409, "agent_exists", self.client.create_agent, "crud-1",
                                    **PENDULUM)
        self.assertEqual(err.field, "name")
        again = self.client.create_agent("crud-1", **PENDULUM, exist_ok=True)
        self.assertEqual(again["training"]["min_transitions"], 500)

        names = [x["name"] for x in self.client.list_agents()]
        self.assertIn("crud-1", names)
        self.assertEqual(names, sorted(names))
        self.assertEqual(self.client.get_agent("crud-1")["action_high"], [2.0])

        p = self.client.patch_agent("crud-1", planner={"horizon": 12},
                                    training={"train_ratio": 8}, model={"lr": 0.0005})
        self.assertEqual(p["planner"]["horizon"], 12)
        self.assertEqual(p["training"]["train_ratio"], 8.0)
        self.assertAlmostEqual(p["model"]["lr"], 0.0005)
        err = self.assertElbodError(422, "immutable_field", self.client.patch_agent, "crud-1",
                                    model={"h_dim": 128})
        self.assertEqual(err.field, "model.h_dim")

        self.assertEqual(self.client.delete_agent("crud-1"), {"deleted": "crud-1"})
        self.assertElbodError(404, "agent_not_found", self.client.get_agent, "crud-1")
        self.assertEqual(self.client.delete_agent("crud-1", missing_ok=True), {})

    def test_create_errors(self) -> None:
        err = self.assertElbodError(422, "invalid_config", self.client.create_agent, "bad-1",
                                    **PENDULUM, planner={"elites": 500})
        self.assertEqual(err.field, "planner.elites")
        self.assertTrue(err.request_id)
        err = self.assertElbodError(422, "unknown_field", self.client.create_agent, "bad-2",
                                    **PENDULUM, planner={"no_such_key": 1})
        self.assertIn("no_such_key", err.field or "")
        self.assertElbodError(422, "invalid_config", self.client.create_agent, "bad-3",
                              observation_dim=3, action_dim=1, action_low=[2.0],
                              action_high=[-2.0])
        self.assertElbodError(422, "invalid_value", self.client.create_agent, ".bad",
                              **PENDULUM)
        with self.assertRaises(ValueError):  # refused before sending: NaN is not JSON
            self.client.create_agent("bad-4", observation_dim=3, action_dim=1,
                                     action_low=[float("nan")], action_high=[2.0])
        self.assertNotIn("bad-1", [x["name"] for x in self.client.list_agents()])

    def test_unknown_agent(self) -> None:
        c = self.client
        for fn, args in [
            (c.get_agent, ("nope",)),
            (c.patch_agent, ("nope",)),
            (c.delete_agent, ("nope",)),
            (c.act, ("nope", [1, 0, 0])),
            (c.plan, ("nope", [1, 0, 0])),
            (c.open_session, ("nope",)),
            (c.training_status, ("nope",)),
            (c.pause_training, ("nope",)),
            (c.export_checkpoint, ("nope",)),
            (c.submit_transitions, ("nope", [ec.Transition([1, 0, 0], [0], 0.0, [1, 0, 0])])),
        ]:
            with self.subTest(fn=fn.__name__):
                self.assertElbodError(404, "agent_not_found", fn, *args)


class TestActing(DaemonTestCase):
    def test_act_and_plan(self) -> None:
        self.make_agent("act-1")
        r = self.client.act("act-1", [1.0, 0.0, 0.0])
        self.assertIsInstance(r, ec.ActResult)
        self.assertEqual(len(r.action), 1)
        self.assertTrue(-2.0 <= r.action[0] <= 2.0)
        self.assertEqual((r.mode, r.model_version, r.iterations), ("plan", 0, 2))
        self.assertTrue(r.request_id)
        self.assertIsNone(r.session_id)
        self.assertIsNone(r.plan)

        r = self.client.act("act-1", FakeArray([1.0, 0.0, 0.0]), mode="policy", explore=True)
        self.assertEqual((r.mode, r.iterations), ("policy", 0))
        r = self.client.act("act-1", (0.0, 1.0, 0.5), deadline_ms=1000, timeout=10)
        self.assertFalse(r.degraded)

        p = self.client.plan("act-1", [1.0, 0.0, 0.0], explore=False)
        self.assertIsNotNone(p.plan)
        assert p.plan is not None
        self.assertEqual(p.plan.horizon, 10)
        self.assertEqual(len(p.plan.actions), 10)
        self.assertEqual(len(p.plan.action_std[0]), 1)
        self.assertEqual(len(p.plan.predicted_rewards), 10)
        self.assertEqual(len(p.plan.predicted_observations[0]), 3)
        self.assertEqual(len(p.plan.predicted_observation_std), 10)
        self.assertIn("expected_return", p.plan.terms)
        self.assertEqual(p.action, p.plan.actions[0])

    def test_act_errors(self) -> None:
        self.make_agent("act-2")
        err = self.assertElbodError(422, "dimension_mismatch", self.client.act, "act-2", [1, 0])
        self.assertEqual(err.field, "observation")
        err = self.assertElbodError(422, "invalid_value", self.client.act, "act-2", [1, 0, 0],
                                    mode="dream")
        self.assertEqual(err.field, "mode")
        self.assertElbodError(422, "missing_field", self.client.plan, "act-2")
        self.assertElbodError(404, "session_not_found", self.client.plan, "act-2",
                              session_id="s-nope")
        with self.assertRaises(ValueError):
            self.client.act("act-2", [1.0, float("inf"), 0.0])


class TestSessions(DaemonTestCase):
    def test_session_lifecycle(self) -> None:
        self.make_agent("sess-1")
        s = self.client.open_session("sess-1")
        self.assertIsInstance(s, ec.Session)
        self.assertTrue(s.id.startswith("s-"))
        self.assertIsNone(s.first)
        self.assertEqual(self.client.get_agent("sess-1")["sessions"], 1)

        r = s.act([1.0, 0.0, 0.0])
        self.assertEqual((r.session_id, r.episode_step, r.episode_done), (s.id, 0, False))
        r = s.act(FakeArray([0.99, 0.1, 0.2]), reward=-0.5)
        self.assertEqual(r.episode_step, 1)
        self.assertIs(s.last, r)
        p = s.plan()
        assert p.plan is not None
        self.assertEqual((p.session_id, p.plan.horizon), (s.id, 10))
        r = s.act([0.98, 0.2, 0.3], reward=-0.4, done=True)
        self.assertEqual((r.episode_done, r.mode), (True, "policy"))
        r = s.act([1.0, 0.0, 0.0], mode="policy", record=False)
        self.assertEqual((r.episode_step, r.mode), (0, "policy"))
        # 2 recorded transitions and the terminal step (no action): replay holds 3 steps
        st = self.client.training_status("sess-1")
        self.assertEqual((st["transitions_total"], st["replay_steps"]), (2, 3))

        self.assertEqual(self.client.close_session("sess-1", s.id), {"closed": s.id})
        self.assertElbodError(404, "session_not_found", s.act, [1, 0, 0])
        s.close()  # already closed on the daemon: fine with missing_ok
        self.assertTrue(s.closed)
        with self.assertRaises(ec.ElbodError) as cm:
            self.client.close_session("sess-1", s.id)
        self.assertEqual(cm.exception.code, "session_not_found")

    def test_truncated_episode(self) -> None:
        self.make_agent("sess-3")
        with self.client.open_session("sess-3") as s:
            s.act([1.0, 0.0, 0.0])
            s.act([0.99, 0.1, 0.2], reward=-0.5)
            # a time limit: the observation is recorded with its reward, without an action
            r = s.act([0.98, 0.2, 0.3], reward=-0.4, truncated=True)
            self.assertEqual((r.episode_done, r.mode, r.episode_step), (True, "policy", 2))
            r = s.act([1.0, 0.0, 0.0], record=False)  # the next episode, same session
            self.assertEqual((r.episode_step, r.episode_done), (0, False))
            r = self.client.session_act("sess-3", s.id, [0.9, 0.1, 0.1], reward=-1.0,
                                        record=False, truncated=True)
            self.assertEqual((r.episode_done, r.episode_step), (True, 1))
        st = self.client.training_status("sess-3")
        self.assertEqual((st["transitions_total"], st["replay_steps"]), (2, 3))

    def test_open_with_observation(self) -> None:
        self.make_agent("sess-2")
        with self.client.open_session("sess-2", [1.0, 0.0, 0.0], mode="policy") as s:
            assert s.first is not None
            self.assertEqual((s.first.session_id, s.first.episode_step), (s.id, 0))
            self.assertEqual(s.first.mode, "policy")
            r = s.act([1.0, 0.0, 0.0], reward=-1.0)  # the session's default mode: policy
            self.assertEqual((r.mode, r.episode_step), ("policy", 1))
        self.assertTrue(s.closed)
        self.assertEqual(self.client.get_agent("sess-2")["sessions"], 0)
        before = self.client.training_status("sess-2")["transitions_total"]
        with self.client.open_session("sess-2", [1.0, 0.0, 0.0], record=False) as s:
            assert s.first is not None
            self.assertEqual(s.first.episode_step, 0)
            s.act([1.0, 0.0, 0.0], reward=-1.0)
        self.assertEqual(self.client.training_status("sess-2")["transitions_total"], before)


class TestTransitions(DaemonTestCase):
    def test_episodes_and_transitions(self) -> None:
        self.make_agent("tr-1")
        ep = {
            "id": "robot7-run42-ep3",
            "observations": [[1, 0, 0], [0.99, 0.1, 0.2], [0.98, 0.2, 0.3]],
            "actions": [[0.5], [-0.3]],
            "rewards": [-0.1, -0.2],
            "done": False,
            "action_mean": [[0.26], [-0.15]],
            "action_std": [[0.4], [0.4]],
        }
        r = self.client.submit_episodes("tr-1", [ep])
        self.assertEqual(r, ec.SubmitResult(accepted=2, duplicates=0, episodes=1))
        r = self.client.submit_episodes("tr-1", [ep])  # a retry: skipped by its id
        self.assertEqual(r, ec.SubmitResult(accepted=0, duplicates=1, episodes=1))

        obj = ec.Episode(observations=FakeArray([FakeArray([1, 0, 0]), [0, 1, 0]]),
                         actions=[FakeArray([0.1])], rewards=FakeArray([-1.0]), done=True,
                         id="ep-obj")
        r = self.client.submit_episodes("tr-1", [obj, ec.Episode([[1, 0, 0], [0, 1, 0]],
                                                                 [[0.0]], [0.0])])
        self.assertEqual((r.accepted, r.duplicates, r.episodes), (2, 0, 2))

        t = ec.Transition([1, 0, 0], [0.5], -0.1, [0.99, 0.1, 0.2], id="t-0001")
        d = {"observation": [1, 0, 0], "action": [0.1], "reward": 0.0,
             "next_observation": [1, 0, 0], "done": True}
        r = self.client.submit_transitions("tr-1", [t, d])
        self.assertEqual((r.accepted, r.duplicates, r.episodes), (2, 0, 2))
        r = self.client.submit_transitions("tr-1", [t])
        self.assertEqual((r.accepted, r.duplicates), (0, 1))
        self.assertEqual(self.client.training_status("tr-1")["transitions_total"], 6)

    def test_submission_errors(self) -> None:
        self.make_agent("tr-2")
        bad = ec.Episode([[1, 0, 0]], [[0.5]], [0.0])
        err = self.assertElbodError(422, "dimension_mismatch", self.client.submit_episodes,
                                    "tr-2", [bad])
        self.assertEqual(err.field, "episodes[0].observations")
        err = self.assertElbodError(422, "dimension_mismatch", self.client.submit_episodes,
                                    "tr-2", [])
        self.assertEqual(err.field, "episodes")
        err = self.assertElbodError(422, "missing_field", self.client.submit_transitions,
                                    "tr-2", [{"observation": [1, 0, 0], "action": [0.1],
                                              "reward": 0.0}])
        self.assertEqual(err.field, "transitions[0].next_observation")
        self.assertEqual(self.client.training_status("tr-2")["transitions_total"], 0)


class TestEpisodeReports(DaemonTestCase):
    def test_report_and_list(self) -> None:
        self.make_agent("rep-1")
        self.assertEqual(self.client.list_episodes("rep-1"), {"episodes": [], "total": 0})
        a = self.client.report_episode("rep-1", -152.25, steps=200)
        self.assertEqual((a["index"], a["return"], a["steps"]), (0, -152.25, 200))
        self.assertEqual(a["model_version"], 0)
        self.assertIsInstance(a["time"], int)
        b = self.client.report_episode("rep-1", 3.5)  # steps left out: 0
        self.assertEqual((b["index"], b["return"], b["steps"]), (1, 3.5, 0))
        listed = self.client.list_episodes("rep-1")
        self.assertEqual(listed["total"], 2)
        self.assertEqual([e["return"] for e in listed["episodes"]], [-152.25, 3.5])
        self.assertEqual(listed["episodes"][0], a)
        err = self.assertElbodError(422, "out_of_range", self.client.report_episode, "rep-1",
                                    1.0, steps=-1)
        self.assertEqual(err.field, "steps")
        with self.assertRaises(ValueError):  # refused before sending
            self.client.report_episode("rep-1", float("nan"))
        self.assertElbodError(404, "agent_not_found", self.client.report_episode, "nope", 1.0)
        self.assertElbodError(404, "agent_not_found", self.client.list_episodes, "nope")
        self.assertEqual(self.client.list_episodes("rep-1")["total"], 2)


class TestTrainingAndCheckpoints(DaemonTestCase):
    def test_training_pause_resume(self) -> None:
        self.make_agent("train-1")
        st = self.client.training_status("train-1")
        for key in ("step", "replay_size", "replay_steps", "transitions_total", "paused",
                    "training", "terms", "action_kl_kind", "last_checkpoint_age_s"):
            self.assertIn(key, st)
        self.assertIn("elbo", st["terms"])
        self.assertTrue(self.client.pause_training("train-1")["paused"])
        self.assertTrue(self.client.get_agent("train-1")["status"]["paused"])
        self.assertFalse(self.client.resume_training("train-1")["paused"])

    def test_checkpoint_export_import(self) -> None:
        self.make_agent("ckpt-1")
        self.make_agent("ckpt-2")
        self.make_agent("ckpt-3", model={"h_dim": 32})
        data = self.client.export_checkpoint("ckpt-1")
        self.assertIsInstance(data, bytes)
        self.assertGreater(len(data), 1000)
        self.assertEqual(self.client.import_checkpoint("ckpt-2", data), 0)
        self.assertEqual(self.client.import_checkpoint("ckpt-2", bytearray(data)), 0)
        self.assertElbodError(409, "checkpoint_mismatch", self.client.import_checkpoint,
                              "ckpt-3", data)
        self.assertElbodError(422, "invalid_checkpoint", self.client.import_checkpoint,
                              "ckpt-2", b"not a checkpoint at all" * 10)
        self.assertElbodError(400, "empty_body", self.client.import_checkpoint, "ckpt-2", b"")


class TerminatingEnv:
    """A 3-observation env that terminates after `length` steps (old-gym API if asked)."""

    def __init__(self, length: int, old_api: bool = False) -> None:
        self.length = length
        self.old_api = old_api
        self.t = 0
        self.actions: List[Any] = []

    def reset(self, seed: Optional[int] = None) -> Any:
        self.t = 0
        obs = [1.0, 0.0, 0.0]
        return obs if self.old_api else (obs, {})

    def step(self, action: Any) -> Tuple[Any, ...]:
        self.actions.append(action)
        self.t += 1
        obs = FakeArray([1.0, 0.0, 0.1 * self.t])
        done = self.t >= self.length
        if self.old_api:
            return obs, -1.0, done, {}
        return obs, -1.0, done, False, {}


class TestGymAdapter(DaemonTestCase):
    def test_pendulum_two_episodes(self) -> None:
        self.make_agent("gym-pend", training={"min_transitions": 20})
        env = PendulumEnv(max_episode_steps=25, seed=3)
        with ec.ElbodPolicy(self.client, "gym-pend") as policy:
            stats = [ec.run_episode(env, policy, seed=i) for i in range(2)]
            for s in stats:
                self.assertEqual((s.steps, s.truncated, s.terminated), (25, True, False))
                self.assertLess(s.episode_return, 0.0)
                self.assertGreater(s.wall_time_s, 0.0)
                self.assertIsNotNone(s.session_id)
            # truncation is sent as such and keeps the session for the next episode
            assert policy.last_result is not None
            self.assertTrue(policy.last_result.episode_done)
            self.assertEqual(stats[0].session_id, stats[1].session_id)
            self.assertEqual(policy.session_id, stats[0].session_id)
            self.assertEqual(policy.episodes, 2)
            self.assertEqual(self.client.get_agent("gym-pend")["sessions"], 1)
            self.assertGreaterEqual(stats[1].model_version, stats[0].model_version)
        self.assertEqual(self.client.get_agent("gym-pend")["sessions"], 0)  # closed on exit
        st = self.client.training_status("gym-pend")
        # 2 x 25 actions taken; the last observation (obs_25) of each is recorded without one
        self.assertEqual(st["transitions_total"], 50)
        self.assertEqual(st["replay_steps"], 52)  # 2 x 26 observations (obs_0 .. obs_25)
        deadline = time.monotonic() + 20
        while self.client.training_status("gym-pend")["step"] == 0:
            self.assertLess(time.monotonic(), deadline, "training never started")
            time.sleep(0.1)

    def test_manual_loop_and_max_steps(self) -> None:
        self.make_agent("gym-loop")
        env = PendulumEnv(max_episode_steps=200, seed=1)
        policy = ec.ElbodPolicy(self.client, "gym-loop", mode="policy", record=False,
                                action_transform=tuple)
        obs, _info = env.reset(seed=0)
        action = policy.reset(FakeArray(obs))
        self.assertIsInstance(action, tuple)
        steps = 0
        while action is not None:
            obs, reward, terminated, truncated, _info = env.step(action)
            steps += 1
            action = policy.step(obs, reward, terminated, truncated or steps == 5)
        self.assertEqual((steps, policy.episode_steps), (5, 5))
        self.assertLess(policy.episode_return, 0.0)
        stats = ec.run_episode(env, policy, max_steps=4)
        self.assertEqual((stats.steps, stats.truncated), (4, True))
        self.assertEqual(self.client.training_status("gym-loop")["transitions_total"], 0)
        with self.assertRaises(RuntimeError):
            policy.step([1, 0, 0], 0.0)
        policy.close()

    def test_terminated_keeps_the_session(self) -> None:
        self.make_agent("gym-term")
        with ec.ElbodPolicy(self.client, "gym-term", mode="policy") as policy:
            a = ec.run_episode(TerminatingEnv(3), policy)
            self.assertEqual((a.steps, a.terminated, a.truncated, a.episode_return),
                             (3, True, False, -3.0))
            assert policy.last_result is not None
            self.assertTrue(policy.last_result.episode_done)
            sid = policy.session_id
            self.assertIsNotNone(sid)
            b = ec.run_episode(TerminatingEnv(2, old_api=True), policy)
            self.assertEqual((b.steps, b.terminated, b.session_id), (2, True, sid))
            # the session went away (e.g. a daemon restart): a new one is opened
            self.client.close_session("gym-term", sid)  # type: ignore[arg-type]
            c = ec.run_episode(TerminatingEnv(2), policy)
            self.assertEqual(c.steps, 2)
            self.assertNotEqual(c.session_id, sid)
        st = self.client.training_status("gym-term")
        # 3 + 2 + 2 transitions and 3 terminal observations
        self.assertEqual((st["transitions_total"], st["replay_steps"]), (7, 10))


class _FakeHandler(http.server.BaseHTTPRequestHandler):
    """A server that records headers, answers non-elbod errors, and drops idle connections."""

    protocol_version = "HTTP/1.1"
    seen: List[Dict[str, str]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        type(self).seen.append(dict(self.headers))
        if self.path == "/prefix/v1/version":
            self._send(200, b'{"name":"fake"}', "application/json")
            self.close_connection = True  # silently: the client thinks it may reuse it
        elif self.path == "/prefix/healthz":
            self._send(502, b"<html>bad gateway</html>", "text/html")
        elif self.path == "/prefix/metrics":
            self.send_response(503)
            body = b'{"error":{"code":"overloaded","message":"busy"}}'
            self.send_header("Content-Type", "application/json")
            self.send_header("Retry-After", "0")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self._send(404, b'{"error":{"code":"not_found","message":"no"}}', "application/json")


class TestClientOffline(unittest.TestCase):
    """Client behaviour that needs no elbod: headers, odd answers, dead and silent servers."""

    def test_headers_errors_and_stale_connections(self) -> None:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeHandler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/prefix/"
            with ec.ElbodClient(url, token="s3cret", retries=1) as c:
                self.assertEqual(c.version(), {"name": "fake"})
                self.assertEqual(c.version(), {"name": "fake"})  # after a silent close
                self.assertEqual(_FakeHandler.seen[0]["Authorization"], "Bearer s3cret")
                with self.assertRaises(ec.ElbodError) as cm:
                    c.health()
                self.assertEqual((cm.exception.status, cm.exception.code), (502, "http_502"))
                self.assertIn("bad gateway", cm.exception.message)
                n = len(_FakeHandler.seen)
                with self.assertRaises(ec.ElbodError) as cm:
                    c.metrics()
                self.assertEqual((cm.exception.status, cm.exception.code), (503, "overloaded"))
                self.assertEqual(len(_FakeHandler.seen), n + 2)  # retried once
        finally:
            server.shutdown()
            server.server_close()

    def test_url_and_token_from_the_environment(self) -> None:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeHandler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/prefix"
            env = {"ELBOD_URL": url, "ELBOD_TOKEN": "env-t0ken"}
            with mock.patch.dict(os.environ, env):
                cases = [
                    (ec.ElbodClient(), "Bearer env-t0ken"),  # both from the environment
                    (ec.ElbodClient(token="given"), "Bearer given"),
                    (ec.ElbodClient(token=""), None),  # "": no key despite $ELBOD_TOKEN
                    (ec.ElbodClient(url.replace("127.0.0.1", "localhost")), "Bearer env-t0ken"),
                ]
            for c, auth in cases:
                with self.subTest(url=c.base_url, auth=auth), c:
                    n = len(_FakeHandler.seen)
                    self.assertEqual(c.version(), {"name": "fake"})
                    self.assertEqual(_FakeHandler.seen[n].get("Authorization"), auth)
            self.assertEqual(cases[0][0].base_url, url)
            with mock.patch.dict(os.environ, {"ELBOD_URL": "", "ELBOD_TOKEN": ""}):
                c = ec.ElbodClient()
            self.assertEqual((c.base_url, c.token), (ec.DEFAULT_URL, None))
        finally:
            server.shutdown()
            server.server_close()

    def test_nothing_listening(self) -> None:
        c = ec.ElbodClient(f"http://127.0.0.1:{free_port()}", timeout=2)
        with self.assertRaises(ec.ElbodConnectionError) as cm:
            c.health()
        err = cm.exception
        self.assertIsInstance(err, ec.ElbodError)
        self.assertIsInstance(err, ConnectionError)
        self.assertIsNone(err.status)
        self.assertEqual(err.code, "connection_error")
        with self.assertRaises(ec.ElbodTimeoutError):
            c.wait_ready(timeout=0.2)

    def test_silent_server_times_out(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            s.listen(1)  # accepts the connection in the backlog, never answers
            c = ec.ElbodClient(f"http://127.0.0.1:{s.getsockname()[1]}", timeout=0.3)
            with self.assertRaises(ec.ElbodTimeoutError) as cm:
                c.health()
            self.assertEqual(cm.exception.code, "timeout")
            c.close()

    def test_bad_urls(self) -> None:
        with self.assertRaises(ValueError):
            ec.ElbodClient("ftp://127.0.0.1:8080")
        c = ec.ElbodClient("127.0.0.1:9")
        self.assertEqual((c._host, c._port), ("127.0.0.1", 9))


class TestDaemonDown(unittest.TestCase):
    """A daemon of its own: SIGTERM stops it with status 0, then the client cannot connect."""

    def test_sigterm_then_connection_error(self) -> None:
        d = Daemon()
        try:
            d.start()
            c = ec.ElbodClient(d.url, timeout=5)
            c.create_agent("down-1", **PENDULUM, planner=SMALL_PLANNER)
            self.assertEqual(c.health(), {"status": "ok"})  # a kept-alive connection
            self.assertEqual(d.stop(), 0, d.log())
            with self.assertRaises(ec.ElbodConnectionError):
                c.health()
            with self.assertRaises(ec.ElbodConnectionError):
                c.get_agent("down-1")
            c.close()
        finally:
            d.cleanup()


if __name__ == "__main__":
    unittest.main()
