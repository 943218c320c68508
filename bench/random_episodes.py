"""Pendulum episodes with uniformly random torques, as elbod's transitions JSON: the training data
and submission bodies of bench/http.sh and bench/soak.sh.

    python3 bench/random_episodes.py OUT STEPS COUNT [--seed S] [--per-file N] [--compact]

writes {"episodes": [...]} with COUNT episodes of STEPS steps to OUT, or with --per-file N to
OUT-000000.json, OUT-001000.json, ... of N episodes each."""
import argparse
import json
import math
import random


def episode(rng, steps):
    """One episode of the reference pendulum (shared/envs) under random torques in [-2, 2]."""
    th, thdot = rng.uniform(-math.pi, math.pi), rng.uniform(-1, 1)
    obs, acts, rews = [[math.cos(th), math.sin(th), thdot]], [], []
    for _ in range(steps):
        u = rng.uniform(-2, 2)
        a = ((th + math.pi) % (2 * math.pi)) - math.pi
        rews.append(round(-(a * a + 0.1 * thdot * thdot + 0.001 * u * u), 5))
        thdot = max(-8.0, min(8.0, thdot + (3 * 10 / 2 * math.sin(th) + 3.0 * u) * 0.05))
        th += thdot * 0.05
        acts.append([round(u, 5)])
        obs.append([round(math.cos(th), 5), round(math.sin(th), 5), round(thdot, 5)])
    return {"observations": obs, "actions": acts, "rewards": rews}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("steps", type=int)
    ap.add_argument("count", type=int)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--per-file", type=int, default=0)
    ap.add_argument("--compact", action="store_true")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    sep = (",", ":") if a.compact else None
    per = a.per_file or a.count
    for first in range(0, a.count, per):
        name = "%s-%06d.json" % (a.out, first) if a.per_file else a.out
        with open(name, "w") as f:
            eps = [episode(rng, a.steps) for _ in range(min(per, a.count - first))]
            json.dump({"episodes": eps}, f, separators=sep)


if __name__ == "__main__":
    main()
