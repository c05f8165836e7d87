"""Trials: what they cost, and how often `lmgauge compare` calls a difference between a server and
itself (the false-positive rate of its intervals and of its --fail-if gates).

    .venv/bin/python bench/perf_trials.py [--pool 60] [--number 100] [--partitions 1000] [--real-pairs 6]

1. Cost: real `lmgauge perf` runs against tests/perf_server.py (TTFT 20 ms, ITL 2 ms, 16 tokens),
   --concurrency 4 16 --number N, without --trials and with --trials 1, 2, 3, 5: wall time of the
   process, time under load (sum of the levels' durations), and what the rest costs per trial
   (fresh connections, the model check, merging, intervals, writing).
2. Calibration: one run of the same server with --trials POOL (one level, concurrency 4). Its
   trials are exchangeable measurements of one server, so any two disjoint groups of K of them are
   "the same server measured twice". For PARTITIONS random pairs of groups (K = 3 and 5: the
   trials path; K = 1: single trials, the bootstrap over requests) it counts how often the 95 %
   interval of B/A excludes 1 (nominal 5 %) per metric, and how often the gates
   ``ttft_p99>+10%``, ``output_tps<-5%`` (and the strictest, ``>+0%`` / ``<-0%``) fire.
3. Real pairs: REAL_PAIRS pairs of separate runs (K = 3 each) of the same server, compared with
   `lmgauge compare` and the gates (the drift between runs minutes apart is in these).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "LMGAUGE_PLUGINS": "openai,random,openqa"}
WORKLOAD = ["--dataset", "random", "--min-prompt-length", "64", "--max-prompt-length", "64", "--max-tokens", "16"]
METRICS = ("ttft_p50", "ttft_p99", "tpot_p50", "itl_p50", "latency_p50", "latency_p99", "output_tps", "rps")
GATES = ("ttft_p99>+10%", "output_tps<-5%", "ttft_p50>+0%", "output_tps<-0%")


def perf(url: str, out: Path, *args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "lmgauge.cli", "perf", "--url", url, "--model", "perf-model", *WORKLOAD,
                    "--output", str(out), *args], env=ENV, check=True, capture_output=True)
    return time.perf_counter() - t0


def cost(url: str, root: Path, number: int) -> None:
    from lmgauge.runfolder import load_run

    print(f"## cost: --concurrency 4 16 --number {number}")
    print("| trials | wall time | under load | wall − load | wall / wall without trials |")
    print("|---|---:|---:|---:|---:|")
    base = None
    for k in (None, 1, 2, 3, 5):
        out = root / f"cost-{k}"
        wall = perf(url, out, "--concurrency", "4", "16", "--number", str(number), *(["--trials", str(k)] if k else []))
        load = sum(lv.duration_s for lv in load_run(out).levels)
        base = base or wall
        print(f"| {k or 'none'} | {wall:.2f} s | {load:.2f} s | {wall - load:.2f} s | {wall / base:.2f}x |")


def calibrate(url: str, root: Path, pool: int, number: int, partitions: int) -> None:
    from lmgauge.perf.compare import _from_requests, _from_trials, parse_gates, resolve
    from lmgauge.perf.registry import perf_metrics
    from lmgauge.runfolder import load_run

    out = root / "pool"
    perf(url, out, "--concurrency", "4", "--number", str(number), "--trials", str(pool))
    run = load_run(out)
    lv = run.levels[0]
    trials = lv.per_trial
    rows: dict[int, list] = {}
    for r in run.requests():
        rows.setdefault(r.trial, []).append(r)
    metrics = perf_metrics()
    figs = {name: resolve(name, metrics) for name in METRICS}
    gates = parse_gates(",".join(GATES), metrics)
    rng = random.Random(0)
    print(f"## calibration: one level (concurrency 4, {number} requests per trial), {pool} trials of one server")
    print("| K per side | pairs | " + " | ".join(METRICS) + " | any metric | " + " | ".join(GATES) + " |")
    print("|---|---:|" + "---:|" * (len(METRICS) + 1 + len(GATES)))
    for k in (1, 3, 5):
        n = partitions if k > 1 else min(partitions, 200)
        excl = {m: 0 for m in METRICS}
        anyx = 0
        fired = {g.text: 0 for g in gates}
        for p in range(n):
            pick = rng.sample(range(pool), 2 * k)
            ga, gb = [trials[i] for i in pick[:k]], [trials[i] for i in pick[k:]]
            res = {}
            for name, f in figs.items():
                if k == 1:
                    la, lb = ga[0], gb[0]
                    ra, rb = rows[la.trial], rows[lb.trial]
                    c = _from_requests(f, la, lb, lambda w, _lv, ra=ra, rb=rb: ra if w == 0 else rb, {}, [p, hash(name) % 997],
                                       1000, 0.95)
                else:
                    va = [t.stat(f.key, f.stat) for t in ga]
                    vb = [t.stat(f.key, f.stat) for t in gb]
                    c = _from_trials(f, va, vb, lv.name, 0.95)
                res[name] = c
                excl[name] += c.significant
            anyx += any(c.significant for c in res.values())
            for g in gates:
                fired[g.text] += g.fires(res[g.metric])
        cells = [f"{100 * excl[m] / n:.1f}%" for m in METRICS] + [f"{100 * anyx / n:.1f}%"]
        cells += [f"{100 * fired[g] / n:.1f}%" for g in GATES]
        print(f"| {k} | {n} | " + " | ".join(cells) + " |")


def real_pairs(url: str, root: Path, pairs: int, number: int) -> None:
    print(f"## real pairs: {pairs} pairs of separate runs (--trials 3, concurrency 4 16, {number} requests)")
    excluded = fired = 0
    total = 0
    for i in range(pairs):
        a, b = root / f"ra{i}", root / f"rb{i}"
        for d in (a, b):
            perf(url, d, "--concurrency", "4", "16", "--number", str(number), "--trials", "3")
        proc = subprocess.run([sys.executable, "-m", "lmgauge.cli", "compare", str(a), str(b), "--json", "-",
                               "--fail-if", ",".join(GATES[:2])], env=ENV, capture_output=True, text=True)
        fired += proc.returncode == 5
        doc = json.loads(proc.stdout)
        for lv in doc["levels"]:
            for name in METRICS:
                m = lv["metrics"][name]
                total += 1
                excluded += m["ci_low"] is not None and (m["ci_low"] > 1 or m["ci_high"] < 1)
    print(f"CI excludes 1: {excluded} of {total} (metric, level) pairs ({100 * excluded / max(total, 1):.1f}%); "
          f"gates {', '.join(GATES[:2])} fired in {fired} of {pairs} comparisons")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pool", type=int, default=60)
    ap.add_argument("--number", type=int, default=100)
    ap.add_argument("--partitions", type=int, default=1000)
    ap.add_argument("--real-pairs", type=int, default=6)
    ap.add_argument("--skip-cost", action="store_true")
    a = ap.parse_args()
    server = subprocess.Popen([sys.executable, str(REPO / "tests" / "perf_server.py"), "--ttft", "0.02", "--itl", "0.002",
                               "--tokens", "16"], stdout=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{int(server.stdout.readline().split()[1])}/v1/chat/completions"
    root = Path(tempfile.mkdtemp(prefix="lmgauge-trials-"))
    os.environ.update(LMGAUGE_PLUGINS=ENV["LMGAUGE_PLUGINS"])
    try:
        if not a.skip_cost:
            cost(url, root, a.number)
        calibrate(url, root, a.pool, a.number, a.partitions)
        if a.real_pairs:
            real_pairs(url, root, a.real_pairs, a.number)
    finally:
        server.kill()


if __name__ == "__main__":
    main()
