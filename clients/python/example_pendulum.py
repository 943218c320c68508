#!/usr/bin/env python3
"""Pendulum swing-up driven by an elbod agent, through the Gymnasium-style adapter.

The task is the pendulum of the project's reference environments (the classic Pendulum-v1
formulation), implemented here in pure Python as a Gymnasium-like class (``reset`` returns
``(obs, info)``, ``step`` returns ``(obs, reward, terminated, truncated, info)``). The agent is
created if missing; every episode prints one line: return, steps, wall time, model version.

With a daemon running (``make run``)::

    python3 clients/python/example_pendulum.py --episodes 5
    python3 clients/python/example_pendulum.py --url http://127.0.0.1:9000 --agent pend2 \\
        --population 100 --horizon 10 --episodes 3

A random policy scores about -1200 per episode; the agent improves as it trains on the
episodes it plays (its ``model_version`` rises).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
from typing import Any, Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from elbod_client import ElbodClient, ElbodError, ElbodPolicy, run_episode  # noqa: E402


class PendulumEnv:
    """The pendulum swing-up task (Pendulum-v1 constants), Gymnasium-like, pure Python.

    State: angle ``th`` (0 = upright) and angular velocity ``thdot``; observation
    ``[cos th, sin th, thdot]``; action: a torque in [-2, 2] (clipped); reward, from the state
    before the step, ``-(wrap(th)^2 + 0.1*thdot^2 + 0.001*u^2)``; episodes last
    ``max_episode_steps`` (200) steps and end truncated, never terminated.
    """

    g = 10.0
    m = 1.0
    l = 1.0  # noqa: E741 (the pendulum's length, as in the classic formulation)
    dt = 0.05
    max_speed = 8.0
    max_torque = 2.0
    observation_dim = 3
    action_dim = 1
    action_low = [-2.0]
    action_high = [2.0]

    def __init__(self, max_episode_steps: int = 200, seed: Optional[int] = None) -> None:
        """Creates the environment; call :meth:`reset` before :meth:`step`."""
        self.max_episode_steps = max_episode_steps
        self.rng = random.Random(seed)
        self.th = 0.0
        self.thdot = 0.0
        self.t = 0

    def _obs(self) -> List[float]:
        """The observation [cos th, sin th, thdot]."""
        return [math.cos(self.th), math.sin(self.th), self.thdot]

    def reset(self, seed: Optional[int] = None) -> Tuple[List[float], Dict[str, Any]]:
        """Starts an episode: th ~ U(-pi, pi), thdot ~ U(-1, 1). Returns (obs, info)."""
        if seed is not None:
            self.rng = random.Random(seed)
        self.th = self.rng.uniform(-math.pi, math.pi)
        self.thdot = self.rng.uniform(-1.0, 1.0)
        self.t = 0
        return self._obs(), {}

    def step(self, action: Any) -> Tuple[List[float], float, bool, bool, Dict[str, Any]]:
        """Applies a torque; returns (obs, reward, terminated, truncated, info)."""
        if hasattr(action, "tolist"):
            action = action.tolist()
        if isinstance(action, (list, tuple)):
            action = action[0]
        u = min(max(float(action), -self.max_torque), self.max_torque)
        th, thdot = self.th, self.thdot
        wrapped = ((th + math.pi) % (2.0 * math.pi)) - math.pi
        reward = -(wrapped**2 + 0.1 * thdot**2 + 0.001 * u**2)
        thdot += (
            3.0 * self.g / (2.0 * self.l) * math.sin(th) + 3.0 / (self.m * self.l**2) * u
        ) * self.dt
        thdot = min(max(thdot, -self.max_speed), self.max_speed)
        self.th = th + thdot * self.dt
        self.thdot = thdot
        self.t += 1
        truncated = self.t >= self.max_episode_steps
        return self._obs(), reward, False, truncated, {}


def main(argv: Optional[List[str]] = None) -> int:
    """Runs N episodes of the pendulum with an elbod agent; one line per episode."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default=os.environ.get("ELBOD_URL", "http://127.0.0.1:8080"))
    ap.add_argument("--token", default=os.environ.get("ELBOD_TOKEN"))
    ap.add_argument("--agent", default="pendulum")
    ap.add_argument("--episodes", type=int, default=5)
    ap.add_argument("--steps", type=int, default=200, help="steps per episode (200)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--population", type=int, help="planner.population of a new agent")
    ap.add_argument("--horizon", type=int, help="planner.horizon of a new agent")
    ap.add_argument("--iterations", type=int, help="planner.iterations of a new agent")
    ap.add_argument("--mode", choices=["plan", "policy"], help="acting mode (default plan)")
    ap.add_argument("--deadline-ms", type=float, help="planning budget per step")
    ap.add_argument("--no-record", action="store_true", help="evaluate without recording")
    args = ap.parse_args(argv)

    client = ElbodClient(args.url, token=args.token)
    planner = {
        k: v
        for k, v in (
            ("population", args.population),
            ("horizon", args.horizon),
            ("iterations", args.iterations),
        )
        if v is not None
    }
    env = PendulumEnv(max_episode_steps=args.steps, seed=args.seed)
    try:
        agent = client.create_agent(
            args.agent,
            observation_dim=env.observation_dim,
            action_dim=env.action_dim,
            action_low=env.action_low,
            action_high=env.action_high,
            planner=planner or None,
            exist_ok=True,
        )
        print(
            f"agent {agent['name']}: planner horizon {agent['planner']['horizon']}, "
            f"population {agent['planner']['population']}, model version "
            f"{agent['status']['step']}",
            flush=True,
        )
        with ElbodPolicy(
            client,
            args.agent,
            mode=args.mode,
            deadline_ms=args.deadline_ms,
            record=not args.no_record,
        ) as policy:
            for ep in range(1, args.episodes + 1):
                stats = run_episode(env, policy)
                print(
                    f"episode {ep:3d}  return {stats.episode_return:9.1f}  steps {stats.steps:4d}"
                    f"  wall {stats.wall_time_s:6.2f} s  model_version {stats.model_version}",
                    flush=True,
                )
    except ElbodError as err:
        print(f"example_pendulum: {err}", file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
