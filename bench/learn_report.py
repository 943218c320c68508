#!/usr/bin/env python3
"""Report of `make bench-learn` (bench/learn.sh): reads learn.csv, writes learn_summary.csv, draws
learn_pendulum.png and learn_cartpole.png with gnuplot, prints the tables, the targets and the
RESULT line. Standard library only.

learn.csv: run,mode,task,seed,env_seed,episode,return,steps,seconds,model_version,p50_ms,p99_ms
with episode 1-indexed; run is main (the product's defaults), policy (--mode policy on a main
agent after its learning), noprior (planner.init_from_prior false) or noinfo (planner.beta_info
0).

Figures:
  pendulum_3_10 etc.  each seed's mean return over the episode range, then the mean over seeds;
                      `na` when some seed has not run the whole range (a quick run).
  plan_p50_ms         median of the p50_ms of every main plan-mode episode (both tasks).
  plan_p99_ms         largest p99_ms of those episodes: an upper bound of the pooled p99 of all
                      their acts, since no episode has more than 1% of its acts above its p99.
"""
import argparse
import csv
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

# The targets: (task, first episode, last episode, return must be above).
RETURN_TARGETS = [("pendulum", 3, 10, -200.0), ("pendulum", 6, 10, -170.0),
                  ("cartpole", 8, 10, 150.0)]
LATENCY_TARGETS = {"p50": 30.0, "p99": 50.0}
MAIN_MINUTES_TARGET = 30.0
RUN_LABELS = {
    "main": "main (defaults)",
    "noprior": "planning from a zero-mean Gaussian (init_from_prior false)",
    "noinfo": "no mutual-information bonus (beta_info 0)",
    "policy": "policy mode alone after learning",
}
COLORS = {"main": "#1f77b4", "noprior": "#d62728", "noinfo": "#2ca02c", "policy": "#9467bd"}


def load(path):
    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            rows.append({
                "run": r["run"], "mode": r["mode"], "task": r["task"], "seed": int(r["seed"]),
                "episode": int(r["episode"]), "ret": float(r["return"]),
                "p50": float(r["p50_ms"]), "p99": float(r["p99_ms"]),
            })
    return rows


def fmt(x, nd=1):
    return "na" if x is None else f"{x:.{nd}f}"


def curve(rows, run, task):
    """{episode: [returns over seeds]} of one run and task."""
    c = {}
    for r in rows:
        if r["run"] == run and r["task"] == task:
            c.setdefault(r["episode"], []).append(r["ret"])
    return c


def stats(v):
    return (statistics.fmean(v), statistics.stdev(v) if len(v) > 1 else 0.0, min(v), max(v))


def range_mean(rows, run, task, lo, hi, seeds=None):
    """(mean over seeds of each seed's mean return over episodes lo..hi, complete, seeds used).

    complete: every seed ran every episode of the range. The mean is None when no seed ran any.
    """
    per_seed = {}
    for r in rows:
        if r["run"] == run and r["task"] == task and (seeds is None or r["seed"] in seeds):
            per_seed.setdefault(r["seed"], {})[r["episode"]] = r["ret"]
    means, complete = [], bool(per_seed)
    for eps in per_seed.values():
        v = [eps[e] for e in range(lo, hi + 1) if e in eps]
        complete = complete and len(v) == hi - lo + 1
        if v:
            means.append(statistics.fmean(v))
    return (statistics.fmean(means) if means else None), complete, sorted(per_seed)


def quantile(v, q):
    """Nearest-rank q-quantile, as the robots compute theirs."""
    s = sorted(v)
    k = max(0, min(len(s) - 1, math.ceil(q * len(s)) - 1))
    return s[k]


def verdict(value, ok, complete=True):
    if value is None:
        return "n/a (run shorter than the range)"
    if not complete:
        return "partial range: " + ("above" if ok else "below") + " target (quick run?)"
    return "met" if ok else "MISSED"


def write_summary(rows, path):
    order = ["main", "policy", "noprior", "noinfo"]
    keys = sorted({(r["run"], r["task"], r["mode"]) for r in rows},
                  key=lambda k: (k[1] != "pendulum", k[1],
                                 order.index(k[0]) if k[0] in order else 9, k[0]))
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["run", "task", "mode", "episode", "seeds", "mean", "std", "min", "max"])
        for run, task, mode in keys:
            for e, v in sorted(curve(rows, run, task).items()):
                m, sd, lo, hi = stats(v)
                w.writerow([run, task, mode, e, len(v), f"{m:.4f}", f"{sd:.4f}", f"{lo:.4f}",
                            f"{hi:.4f}"])


def seeds_of(rows, run, task):
    return sorted({r["seed"] for r in rows if r["run"] == run and r["task"] == task})


def print_curves(rows, task):
    main = curve(rows, "main", task)
    if not main:
        return
    abl = [(a, curve(rows, a, task)) for a in ("noprior", "noinfo") if curve(rows, a, task)]
    n = len(seeds_of(rows, "main", task))
    head = f"{'episode':>7} {'seeds':>5} {'mean':>9} {'std':>8} {'min':>9} {'max':>9}"
    for a, c in abl:
        head += f" {a + ' mean':>13} {'seeds':>5}"
    print(f"\n== {task}: return per episode, main curve over {n} seed(s)"
          + (" with the ablations beside it" if abl else ""))
    print(head)
    for e in sorted(set(main) | {e for _, c in abl for e in c}):
        if e in main:
            m, sd, lo, hi = stats(main[e])
            line = f"{e:>7} {len(main[e]):>5} {m:>9.1f} {sd:>8.1f} {lo:>9.1f} {hi:>9.1f}"
        else:
            line = f"{e:>7} {'':>5} {'':>9} {'':>8} {'':>9} {'':>9}"
        for _, c in abl:
            line += (f" {statistics.fmean(c[e]):>13.1f} {len(c[e]):>5}" if e in c
                     else f" {'':>13} {'':>5}")
        print(line)


def plot(rows, task, out_png, gnuplot):
    main = curve(rows, "main", task)
    if not main:
        return False
    tmp = tempfile.mkdtemp(prefix="bench-learn-plot.")
    try:
        series = []
        for run in ("main", "noprior", "noinfo"):
            c = curve(rows, run, task)
            if not c:
                continue
            path = os.path.join(tmp, run + ".dat")
            with open(path, "w") as f:
                for e, v in sorted(c.items()):
                    m, _, lo, hi = stats(v)
                    f.write(f"{e} {m} {lo} {hi}\n")
            series.append((run, path, len(seeds_of(rows, run, task))))
        last = max(max(curve(rows, run, task)) for run, _, _ in series)
        pol = [r["ret"] for r in rows if r["run"] == "policy" and r["task"] == task]
        pol_path = os.path.join(tmp, "policy.dat")
        if pol:
            with open(pol_path, "w") as f:
                f.write(f"{last + 1} {statistics.fmean(pol)} {min(pol)} {max(pol)}\n")
        tgt_path = os.path.join(tmp, "targets.dat")
        # the target ranges, cut at the last episode run (a quick run is shorter)
        targets = [t for t in RETURN_TARGETS if t[0] == task and t[1] <= last]
        with open(tgt_path, "w") as f:
            for _, lo, hi, y in targets:
                f.write(f"{lo} {y}\n{min(hi, last)} {y}\n\n\n")
        n_main = len(seeds_of(rows, "main", task))
        g = [
            "set terminal pngcairo noenhanced size 1100,680 font ',11'",
            f"set output '{out_png}'",
            f"set title \"{task}: return per episode, learning from scratch "
            f"(main: default settings, {n_main} seed(s), mean and min-max band)\"",
            "set xlabel 'episode (1 = the first)'",
            "set ylabel 'episode return'",
            "set key outside bottom center horizontal maxrows 3 font ',10'",
            "set grid",
            f"set xrange [0.5:{last + (1.5 if pol else 0.5)}]",
            "set xtics 1" if last <= 25 else "set xtics 5",
        ]
        if pol:
            g.append(f"set xtics add ('policy' {last + 1})")
        plots = []
        for run, path, n in series:
            col = COLORS[run]
            alpha = 0.25 if run == "main" else 0.12
            lw = 2.5 if run == "main" else 1.5
            label = RUN_LABELS[run] + f", {n} seed(s)"
            plots.append(f"'{path}' u 1:3:4 w filledcurves fs transparent solid {alpha} noborder "
                         f"lc rgb '{col}' notitle")
            plots.append(f"'{path}' u 1:2 w linespoints lw {lw} pt 7 ps 0.7 lc rgb '{col}' "
                         f"title '{label}: mean'")
        for i, (_, lo, hi, y) in enumerate(targets):
            plots.append(f"'{tgt_path}' index {i} u 1:2 w lines dt {2 + 2 * i} lw 2 "
                         f"lc rgb '{['black', '#ff7f0e'][i % 2]}' "
                         f"title 'target: mean of episodes {lo}-{hi} > {y:g}'")
        if pol:
            plots.append(f"'{pol_path}' u 1:2:3:4 w yerrorbars pt 9 ps 1.5 lw 1.5 "
                         f"lc rgb '{COLORS['policy']}' title 'policy mode alone after learning "
                         f"(mean, min-max of {len(pol)} episodes)'")
        g.append("plot " + ", \\\n     ".join(plots))
        script = os.path.join(tmp, "plot.gp")
        with open(script, "w") as f:
            f.write("\n".join(g) + "\n")
        r = subprocess.run([gnuplot, script], capture_output=True, text=True)
        if r.returncode != 0 or not os.path.exists(out_png):
            sys.stderr.write(r.stderr)
            sys.stderr.write(f"bench-learn: gnuplot failed on {script}\n")
            return False
        return True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds-total", type=float, required=True)
    ap.add_argument("--seconds-main", type=float, default=0.0)
    ap.add_argument("--seconds-policy", type=float, default=0.0)
    ap.add_argument("--seconds-ablation", type=float, default=0.0)
    ap.add_argument("--gnuplot", default=shutil.which("gnuplot") or "gnuplot")
    a = ap.parse_args()
    rows = load(a.csv)

    summary = os.path.join(a.out, "learn_summary.csv")
    write_summary(rows, summary)
    for task in ("pendulum", "cartpole"):
        print_curves(rows, task)

    # ---- the targets
    print("\n== targets (the mean over seeds of each seed's mean return over the range)")
    figures = {}
    for task, lo, hi, target in RETURN_TARGETS:
        m, complete, seeds = range_mean(rows, "main", task, lo, hi)
        figures[f"{task}_{lo}_{hi}"] = m if complete else None
        print(f"  {task:<8} episodes {lo:>2}-{hi:<2} {fmt(m):>8}  target > {target:g}: "
              f"{verdict(m, m is not None and m > target, complete)} ({len(seeds)} seed(s))")

    plan = [r for r in rows if r["run"] == "main" and r["mode"] == "plan"]
    p50 = statistics.median([r["p50"] for r in plan]) if plan else None
    p99 = max(r["p99"] for r in plan) if plan else None
    figures["plan_p50_ms"], figures["plan_p99_ms"] = p50, p99
    print(f"  plan latency p50 {fmt(p50)} ms (median of {len(plan)} episodes' p50): target "
          f"< {LATENCY_TARGETS['p50']:g} ms: {verdict(p50, p50 is not None and p50 < LATENCY_TARGETS['p50'])}")
    print(f"  plan latency p99 {fmt(p99)} ms (largest episode p99, an upper bound of the pooled "
          f"p99): target < {LATENCY_TARGETS['p99']:g} ms: "
          f"{verdict(p99, p99 is not None and p99 < LATENCY_TARGETS['p99'])}")
    for task in ("pendulum", "cartpole"):
        t = [r for r in plan if r["task"] == task]
        if t:
            p99s = [r["p99"] for r in t]
            print(f"    {task}: p50 median {statistics.median([r['p50'] for r in t]):.1f} ms, "
                  f"p99 median {statistics.median(p99s):.1f} / 90th pct {quantile(p99s, 0.9):.1f}"
                  f" / max {max(p99s):.1f} ms over {len(t)} episodes (round trip through "
                  f"HTTP, planning included; the pendulum's 20 Hz allows 50 ms)")

    # ---- ablations beside the main curve, on the same seeds and episodes
    for task in ("pendulum", "cartpole"):
        abl = [x for x in ("noprior", "noinfo") if seeds_of(rows, x, task)]
        if not abl:
            continue
        seeds = set(seeds_of(rows, abl[0], task))
        last = max(r["episode"] for r in rows if r["run"] in abl and r["task"] == task)
        ranges = [(lo, min(hi, last)) for t, lo, hi, _ in RETURN_TARGETS if t == task]
        ranges = [(lo, hi) for lo, hi in ranges if lo <= hi] or [(1, last)]
        cols = "   ".join(f"episodes {lo}-{hi}" for lo, hi in ranges)
        print(f"\n== ablations ({task}, seed(s) {','.join(map(str, sorted(seeds)))}, episodes 1-"
              f"{last}; mean over seeds of the per-seed mean return)")
        print(f"  {'':<62} {cols}")
        for run in ["main"] + abl:
            vals = [range_mean(rows, run, task, lo, hi, seeds)[0] for lo, hi in ranges]
            print(f"  {RUN_LABELS[run]:<62} " + "   ".join(f"{fmt(v):>{len(f'episodes {lo}-{hi}')}}"
                                                         for v, (lo, hi) in zip(vals, ranges)))

    # ---- the consolidated policy alone
    pol_tasks = [t for t in ("pendulum", "cartpole") if seeds_of(rows, "policy", t)]
    if pol_tasks:
        print("\n== policy mode alone (the learned action prior, no planning) after learning, "
              "on unseen starts")
        for task in pol_tasks:
            pol = [r for r in rows if r["run"] == "policy" and r["task"] == task]
            npe = max(r["episode"] for r in pol)
            v = [r["ret"] for r in pol]
            # plan mode, same agents: their last npe learning episodes
            last_plan = []
            for s in seeds_of(rows, "policy", task):
                eps = sorted((r["episode"], r["ret"]) for r in rows
                             if r["run"] == "main" and r["task"] == task and r["seed"] == s)
                last_plan += [x for _, x in eps[-npe:]]
            print(f"  {task:<8} policy {statistics.fmean(v):8.1f} (min {min(v):.1f}, max "
                  f"{max(v):.1f}; {len(v)} episodes, {len(set(r['seed'] for r in pol))} seed(s);"
                  f" p50 latency {statistics.median([r['p50'] for r in pol]):.1f} ms)   plan mode,"
                  f" last {npe} learning episodes: {fmt(statistics.fmean(last_plan))}")

    # ---- time, plots, result
    minutes = a.seconds_total / 60.0
    figures["minutes"] = minutes
    mm = a.seconds_main / 60.0
    print(f"\n== time: main curves {mm:.1f} min (target < {MAIN_MINUTES_TARGET:g} min: "
          f"{'met' if mm < MAIN_MINUTES_TARGET else 'MISSED'}), policy mode "
          f"{a.seconds_policy / 60:.1f} min, ablations {a.seconds_ablation / 60:.1f} min; the "
          f"whole benchmark {minutes:.1f} min")
    print(f"bench-learn: wrote {a.csv} ({len(rows)} episodes) and {summary}")
    ok = True
    for task in ("pendulum", "cartpole"):
        png = os.path.join(a.out, f"learn_{task}.png")
        if curve(rows, "main", task):
            if plot(rows, task, png, a.gnuplot):
                print(f"bench-learn: drew {png}")
            else:
                ok = False
    keys = ["pendulum_3_10", "pendulum_6_10", "cartpole_8_10", "plan_p50_ms", "plan_p99_ms",
            "minutes"]
    print("RESULT " + " ".join(f"{k}={fmt(figures.get(k))}" for k in keys))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
