#!/usr/bin/env python3
"""Writes the seed requests of fuzz_api (tests/fuzz/fuzz_api.c describes the format).

Usage: make_api_seeds.py API_C OUT_DIR

A handful of valid and invalid requests for every route of the route table of API_C
(api/api.c); a route this script has no bodies for gets an empty and an "{}" request. Files are
named seed-*; other files in OUT_DIR (crash-* regression inputs) stay.
"""
import hashlib
import json
import os
import re
import sys

# Header option characters (fuzz_api.c): K = '0' JSON, '8' JSON deferred first, '2' no
# Content-Type, '3' octet-stream, '5' text/plain; N = name index; I = id index, plus the API key:
# '0'-'7' none needed, '8' an admin key, '@' an act key, 'H' none where one is needed.
# Names (stub_service.c): 0 pendulum (3 obs, 1 action), 1 arm (17, 6), 2 wide (256, 32),
# 3 a 64-character agent (1, 1), 4 ghost (no such agent), 8 a 65-character name.
DX = {"0": 3, "1": 17, "2": 256, "3": 1}
DA = {"0": 1, "1": 6, "2": 32, "3": 1}


def vec(n, scale=1.0, off=0.0):
    return [round(off + scale * ((i * 7) % 5 - 2) / 2, 3) for i in range(n)]


def episode(name, T, ep_id=None, dist=False, done=False):
    dx, da = DX[name], DA[name]
    e = {
        "observations": [vec(dx, 1, t) for t in range(T + 1)],
        "actions": [vec(da, 0.5) for _ in range(T)],
        "rewards": [float(-t) for t in range(T)],
    }
    if ep_id is not None:
        e["id"] = ep_id
    if dist:
        e["action_mean"] = [vec(da, 0.1) for _ in range(T)]
        e["action_std"] = [[0.5] * da for _ in range(T)]
    if done:
        e["done"] = True
    return e


def transition(name, tid=None):
    dx, da = DX[name], DA[name]
    t = {"observation": vec(dx), "action": vec(da, 0.5), "reward": 1.25,
         "next_observation": vec(dx, 1, 1), "done": False}
    if tid is not None:
        t["id"] = tid
    return t


def j(v):
    return json.dumps(v, separators=(",", ":"))


CREATE_FULL = {
    "name": "new-agent", "observation_dim": 4, "action_dim": 2,
    "action_low": [-1, -2], "action_high": [1, 2],
    "model": {"h_dim": 32, "z_dim": 8, "hidden": 32, "head_layers": 2, "activation": "tanh",
              "obs_std": 0.1, "reward_std": 0.1, "min_std": 0.05, "free_nats": 1.0,
              "beta_z": 1.0, "beta_a": 1.0, "overshoot": 1.0, "overshoot_len": 5,
              "value_weight": 1.0, "discount": 0.99, "info_samples": 4, "seq_len": 16,
              "batch": 8, "lr": 0.001, "clip_norm": 100, "replay_capacity": 10000, "seed": 7},
    "planner": {"method": "cem", "horizon": 10, "population": 100, "iterations": 3,
                "elites": 10, "policy_fraction": 0.1, "temperature": 0.5, "beta_info": 0.1,
                "beta_action": 0.0, "discount": 0.99, "init_std": 1.0, "min_std": 0.05,
                "momentum": 0.1, "use_value": True, "warm_start": True,
                "init_from_prior": False},
    "training": {"train_ratio": 8, "min_transitions": 50, "max_steps_per_sec": 100,
                 "checkpoint_every_s": 30},
}

SEEDS = {
    ("POST", "/v1/agents"): [
        ("000", j({"name": "cartpole", "observation_dim": 4, "action_dim": 1,
                   "action_low": [-1], "action_high": [1]})),
        ("000", j(CREATE_FULL)),
        ("000", j({"name": "pendulum", "observation_dim": 3, "action_dim": 1,
                   "action_low": [-2], "action_high": [2]})),
        ("000", j({"name": "p", "observation_dim": 3, "action_dim": 1, "action_low": [-2],
                   "action_high": [2], "planner": {"elites": 500}})),
        ("000", j({"name": "p", "observation_dim": 3, "action_dim": 1, "action_low": [2],
                   "action_high": [-2], "bogus": 1})),
        ("000", '{"name":"p","name":"q"}'),
        ("000", '{"name":"p","observation_dim":3,"action_dim":1,"action_low":[NaN],'
                '"action_high":[-Infinity]}'),
        ("000", j({"name": ".hidden", "observation_dim": 257, "action_dim": 0})),
        ("000", j({"name": "p", "observation_dim": 3.5, "action_dim": "1",
                   "model": {"activation": "gelu", "seed": -1, "h_dim": 4294967296}})),
        ("000", j({"name": "p", "observation_dim": 1, "action_dim": 1, "action_low": [-3e38],
                   "action_high": [1e39], "model": None, "training": []})),
        ("000", "[1,2,3]"),
        ("000", '{"name": "unterminated'),
        ("500", j({"name": "p"})),
        ("200", ""),
    ],
    ("GET", "/v1/agents/{name}"): [(f"0{n}0", "") for n in "02348"],
    ("PATCH", "/v1/agents/{name}"): [
        ("000", j({"planner": {"horizon": 20, "method": "mppi"},
                   "training": {"train_ratio": 0}})),
        ("010", j({"model": {"lr": 0.0005, "beta_z": 2, "overshoot": 0}})),
        ("000", j({"model": {"h_dim": 8}})),
        ("000", j({"name": "renamed", "observation_dim": 4})),
        ("000", j({"training": {"checkpoint_every_s": 0}})),
        ("000", j({"planner": {"elites": 1000, "population": 10}, "other": {}})),
        ("040", "{}"),
        ("000", ""),
    ],
    ("DELETE", "/v1/agents/{name}"): [("000", ""), ("040", ""), ("030", "")],
    ("POST", "/v1/agents/{name}/act"): [
        ("000", j({"observation": vec(3)})),
        ("800", j({"observation": vec(3)})),
        ("810", j({"observation": vec(17), "mode": "policy", "explore": True,
                   "deadline_ms": 5})),
        ("820", j({"observation": vec(256), "mode": "plan", "deadline_ms": 0.5})),
        ("000", j({"observation": vec(4)})),
        ("000", j({"observation": [1, "2", None], "mode": "dream"})),
        ("000", j({"mode": "policy", "deadline_ms": -1, "explore": 1})),
        ("000", j({"observation": [1e39, 0, 0]})),
        ("040", j({"observation": vec(3)})),
    ],
    ("POST", "/v1/agents/{name}/plan"): [
        ("000", j({"observation": vec(3), "reward": 1.0})),
        ("010", j({"observation": vec(17), "explore": False, "deadline_ms": 20})),
        ("000", j({"session_id": "s-0001"})),
        ("000", j({"session_id": "s-0001", "observation": vec(3), "reward": -2})),
        ("000", j({"session_id": "nope", "observation": vec(3)})),
        ("000", j({"session_id": "x" * 41})),
        ("000", j({"reward": 1e31})),
    ],
    ("POST", "/v1/agents/{name}/sessions"): [
        ("000", ""),
        ("800", j({"observation": vec(3)})),
        ("000", j({"observation": vec(3), "mode": "policy"})),
        ("010", j({"observation": vec(16)})),
        ("500", "{}"),
        ("000", j({"reward": 1})),
    ],
    ("POST", "/v1/agents/{name}/sessions/{id}/act"): [
        ("000", j({"observation": vec(3), "reward": 1.5, "done": False, "truncated": False,
                   "record": True, "mode": "plan", "explore": False, "deadline_ms": 10})),
        ("800", j({"observation": vec(3), "reward": 1.5})),
        ("800", j({"observation": vec(3), "reward": 0, "done": True})),
        ("000", j({"observation": vec(3), "truncated": True, "record": False,
                   "mode": "policy"})),
        ("001", j({"observation": vec(3)})),
        ("002", j({"observation": vec(3)})),
        ("007", j({"observation": vec(3)})),
        ("000", j({"observation": vec(3), "done": "yes", "reward": None})),
    ],
    ("DELETE", "/v1/agents/{name}/sessions/{id}"): [("000", ""), ("001", ""), ("007", "")],
    ("POST", "/v1/agents/{name}/transitions"): [
        ("000", j({"episodes": [episode("0", 3, "ep-1", done=True)]})),
        ("000", j({"episodes": [episode("0", 2, "ep-2", dist=True),
                                episode("0", 1, "dup-1")]})),
        ("010", j({"episodes": [episode("1", 2, "arm-1", dist=True)]})),
        ("030", j({"transitions": [transition("3", "t-1"), transition("3")]})),
        ("000", j({"transitions": [transition("0", "t-2")]})),
        ("000", j({"episodes": [], "transitions": []})),
        ("000", j({"episodes": []})),
        ("000", j({"episodes": [episode("0", 1)] * 17})),
        ("000", j({"episodes": [episode("0", 65)]})),
        ("000", j({"episodes": [{"observations": [[1, 2, 3]], "actions": [], "rewards": []}]})),
        ("000", j({"episodes": [{"observations": [[1, 2, 3], [1, 2]], "actions": [[0]],
                                 "rewards": [0], "action_mean": [[0]]}]})),
        ("000", j({"episodes": [dict(episode("0", 1), action_std=[[0]],
                                     action_mean=[[0]])]})),
        ("000", j({"episodes": [dict(episode("0", 1), id="x" * 129)]})),
        ("000", j({"transitions": [{"observation": vec(3), "action": [0]}]})),
        ("000", j({"episodes": 1})),
        ("000", j({"foo": []})),
    ],
    ("GET", "/v1/agents/{name}/training"): [("000", ""), ("040", "")],
    ("POST", "/v1/agents/{name}/training"): [
        ("000", j({"action": "pause"})), ("000", j({"action": "resume"})),
        ("000", j({"action": "stop"})), ("000", "{}"), ("000", j({"action": None})),
        ("000", j({"action": "pause", "now": True})),
    ],
    ("GET", "/v1/agents/{name}/checkpoint"): [("000", ""), ("040", "")],
    ("PUT", "/v1/agents/{name}/checkpoint"): [
        ("300", "ELBOCKPT\x02\x00\x00\x00short"), ("000", "ELBOCKPT"), ("300", ""),
        ("340", "ELBOCKPT"),
    ],
    ("POST", "/v1/agents/{name}/episodes/report"): [
        ("000", j({"return": -123.5, "steps": 200})), ("000", j({"return": 3})),
        ("000", j({"return": 1e31})), ("000", j({"return": 0, "steps": -1})),
        ("000", j({"steps": 5})), ("000", j({"return": 1, "steps": 1.5, "x": 1})),
    ],
    ("GET", "/v1/agents/{name}/episodes"): [("000", ""), ("020", ""), ("040", "")],
    ("GET", "/ui/{file}"): [("004", ""), ("005", ""), ("006", ""), ("000", "")],
}

# Free paths and wrong methods: the router itself.
EXTRA = [
    ("000", "GET", "/v1/agents/{name}/", ""),
    ("000", "GET", "//", ""),
    ("000", "GET", "/v1//agents", ""),
    ("000", "POST", "/v1/agents/{name}/sessions/{id}/act/more", "{}"),
    ("000", "PUT", "/v1/agents", "{}"),
    ("P00", "GET", "/healthz", ""),
    ("080", "GET", "/v1/agents/{name}", ""),
    ("007", "DELETE", "/v1/agents/{name}/sessions/{id}", ""),
    ("000", "GET", "/nope", ""),
    # API keys: an admin key may do everything, an act key acts but does not train, none: 401.
    ("008", "POST", "/v1/agents/{name}/transitions", '{"transitions":[]}'),
    ("00@", "POST", "/v1/agents/{name}/act", '{"observation":[1,2,3]}'),
    ("00@", "POST", "/v1/agents/{name}/training", '{"action":"pause"}'),
    ("00@", "PUT", "/v1/agents/{name}/checkpoint", ""),
    ("00H", "GET", "/v1/agents", ""),
    ("00H", "GET", "/healthz", ""),
    ("80H", "POST", "/v1/agents", "{}"),
]


def main():
    api_c, out = sys.argv[1], sys.argv[2]
    routes = re.findall(r'\{"([A-Z]+)", *"(/[^"]*)", *h_\w+', open(api_c).read())
    if not routes:
        sys.exit("make_api_seeds: no route table in " + api_c)
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(out):
        if f.startswith("seed-"):
            os.remove(os.path.join(out, f))
    n = 0

    def put(opts, method, pattern, body):
        nonlocal n
        slug = re.sub(r"[^a-z0-9]+", "_", (method + pattern).lower()).strip("_")
        data = f"{opts} {method} {pattern}\n".encode() + body.encode("latin-1")
        # Named by content: regenerating after a change to the routes renames nothing else.
        name = f"seed-{slug}-{hashlib.sha1(data).hexdigest()[:8]}"
        with open(os.path.join(out, name), "wb") as fh:
            fh.write(data)
        n += 1

    for method, pattern in routes:
        cases = SEEDS.get((method, pattern))
        if cases is None:
            cases = [("000", ""), ("000", "{}")]
        for opts, body in cases:
            put(opts, method, pattern, body)
    for opts, method, pattern, body in EXTRA:
        put(opts, method, pattern, body)
    print(f"make_api_seeds: {n} seeds for {len(routes)} routes in {out}")


if __name__ == "__main__":
    main()
