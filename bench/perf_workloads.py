"""Perf workloads: trace replay timing and per-turn TTFT against a simulated prefix cache.

``python bench/perf_workloads.py [--trace-requests 600] [--trace-rate 30] [--rounds 2] [--sessions 24]``

1. Trace replay: a Mooncake-style trace (seeded: Poisson gaps at ``--trace-rate`` req/s with
   bursts of requests sharing one millisecond, prompts of 100–1,500 tokens from shared hash-id
   blocks, outputs of 4–24 tokens) replayed by ``lmgauge perf --dataset trace`` against
   tests/perf_server.py. From perf.sqlite and the server's log: scheduled − recorded offset
   (should be 0), sent − scheduled (the client's timing error) and server receipt − intended
   instant (the error as the server sees it), p50/p99/max; for reference, sent − scheduled of
   a Poisson ``--rate`` run with as many requests at the same mean rate (``--rounds``, their
   order alternating).
2. Multi-turn: ``--dataset multi_turn`` sessions (``--turns``, user turns of ``--user-tokens``,
   ``--max-tokens`` answers) against the server with ``--prefix-cache`` (TTFT = 5 ms + 0.1 ms
   per prompt token not in a cached block) and without a cache (every token prefilled): TTFT
   per turn, the prefix-cache hit rate lmgauge recorded from the server's ``cached_tokens``,
   and the TTFT the server's model predicts for each turn.

Prints markdown tables for bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "LMGAUGE_PLUGINS": "openai,multi_turn,trace,random"}
BASE_TTFT, PREFILL = 0.005, 0.0001


def pct(vals: list[float], p: float) -> float:
    vals = sorted(vals)
    rank = p / 100 * (len(vals) - 1)
    lo = int(rank)
    hi = min(lo + 1, len(vals) - 1)
    return vals[lo] + (vals[hi] - vals[lo]) * (rank - lo)


def start_server(*args: str) -> tuple[subprocess.Popen, str]:
    p = subprocess.Popen([sys.executable, str(REPO / "tests" / "perf_server.py"), *args], stdout=subprocess.PIPE, text=True)
    port = int(p.stdout.readline().split()[1])
    return p, f"http://127.0.0.1:{port}/v1/chat/completions"


def stop(p: subprocess.Popen) -> None:
    p.kill()
    p.wait()
    p.stdout.close()


def perf(url: str, out: Path, *args: str) -> dict:
    subprocess.run([sys.executable, "-m", "lmgauge.cli", "perf", "--url", url, "--model", "perf-model",
                    "--output", str(out), *args], env=ENV, check=True, capture_output=True, text=True)
    return json.loads((out / "summary.json").read_text())["runs"][0]


def make_trace(path: Path, n: int, rate: float, seed: int = 0) -> list[float]:
    rng = random.Random(seed)
    t, rows, next_id = 0.0, [], 1000
    families = [[3 * f, 3 * f + 1, 3 * f + 2][: rng.randint(1, 3)] for f in range(6)]
    while len(rows) < n:
        for _ in range(rng.choice([1, 1, 1, 2, 3])):  # bursts: several requests in one millisecond
            shared = rng.choice(families)
            own = rng.randint(1, 3)
            hashes = shared + list(range(next_id, next_id + own))
            next_id += own
            rows.append({"timestamp": round(t * 1000), "input_length": rng.randint(100, 1500),
                         "output_length": rng.randint(4, 24), "hash_ids": hashes})
        t += rng.expovariate(rate / 1.6)
    rows = rows[:n]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return [r["timestamp"] / 1000 for r in rows]


def trace_replay(args, tmp: Path) -> None:
    trace = tmp / "trace.jsonl"
    offsets = sorted(make_trace(trace, args.trace_requests, args.trace_rate))
    span = offsets[-1]
    print(f"### Trace replay: {len(offsets)} requests over {span:.1f} s ({len(offsets) / span:.1f} req/s offered)\n")
    print("| round | run | ok | achieved req/s | hit rate mean | max abs(scheduled − recorded) | sent − scheduled p50 / p99 / max "
          "| server receipt − intended p50 / p99 / max |")
    print("|---:|---|---:|---:|---:|---:|---|---|")
    for rnd in range(1, args.rounds + 1):
        order = ("trace", "reference") if rnd % 2 else ("reference", "trace")
        for kind in order:
            log = tmp / f"{kind}-{rnd}.jsonl"
            server, url = start_server("--ttft", "0.01", "--itl", "0.002", "--prefix-cache", "--cache-block", "64",
                                       "--log", str(log))
            out = tmp / f"{kind}-{rnd}"
            try:
                if kind == "trace":
                    run = perf(url, out, "--dataset", "trace", "--dataset-path", str(trace), "--trace-block-size", "64")
                else:  # the same number of requests at the same mean rate, Poisson (--rate)
                    run = perf(url, out, "--dataset", "random", "--min-prompt-length", "800", "--max-prompt-length",
                               "800", "--max-tokens", "14", "--rate", f"{len(offsets) / span:.3f}", "--number",
                               str(len(offsets)))
            finally:
                stop(server)
            with sqlite3.connect(out / "perf.sqlite") as db:
                got = db.execute("select scheduled_s, sent_s from requests order by idx").fetchall()
            send = [(sent - sc) * 1000 for sc, sent in got]
            starts = sorted(json.loads(x)["start"] for x in log.read_text().splitlines())
            recv = [(st - run["clock_origin"] - sc) * 1000 for st, (sc, _) in zip(starts, sorted(got))]
            sched = f"{max(abs(sc - o) for (sc, _), o in zip(got, offsets)) * 1e6:.3f} µs" if kind == "trace" else "-"
            hit = run["prefix_cache_hit_rate"]["mean"]
            print(f"| {rnd} | {'trace replay' if kind == 'trace' else 'Poisson --rate'} | {run['succeeded']} | "
                  f"{run['achieved_rate']:.2f} | {hit:.1%} | {sched} | "
                  f"{pct(send, 50):.2f} / {pct(send, 99):.2f} / {max(send):.2f} ms | "
                  f"{pct(recv, 50):.2f} / {pct(recv, 99):.2f} / {max(recv):.2f} ms |")
    print()


def multi_turn(args, tmp: Path) -> None:
    flags = ["--dataset", "multi_turn", "--turns", str(args.turns), "--min-prompt-length", str(args.user_tokens),
             "--max-prompt-length", str(args.user_tokens), "--max-tokens", str(args.max_tokens), "--min-tokens",
             str(args.max_tokens), "--number", str(args.sessions), "--concurrency", str(args.concurrency)]
    runs = {}
    for name, server_flags in (("cache", ["--prefix-cache"]), ("no cache", [])):
        server, url = start_server("--ttft", str(BASE_TTFT), "--itl", "0.002", "--prefill-per-token", str(PREFILL),
                                   *server_flags)
        try:
            runs[name] = perf(url, tmp / f"mt-{name.replace(' ', '')}", *flags)
        finally:
            stop(server)
    print(f"### Multi-turn: {args.sessions} sessions × {args.turns} turns, user turns of {args.user_tokens} tokens, "
          f"answers of {args.max_tokens} tokens, concurrency {args.concurrency}; server TTFT = 5 ms + 0.1 ms per "
          "prompt token not cached (16-token blocks)\n")
    print("| turn | avg prompt tokens | hit rate mean (p50, p90) | TTFT mean, cache | model | TTFT mean, no cache | model |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    for t, u in zip(runs["cache"]["turns"], runs["no cache"]["turns"]):
        hit = t["prefix_cache_hit_rate"]
        n_in = t["avg_input_tokens"]
        cached = hit["mean"] * n_in
        print(f"| {t['turn']} | {n_in:.0f} | {hit['mean']:.1%} ({hit['p50']:.1%}, {hit['p90']:.1%}) | "
              f"{t['ttft_s']['mean'] * 1000:.1f} ms | {(BASE_TTFT + PREFILL * (n_in - cached)) * 1000:.1f} ms | "
              f"{u['ttft_s']['mean'] * 1000:.1f} ms | {(BASE_TTFT + PREFILL * u['avg_input_tokens']) * 1000:.1f} ms |")
    s = runs["cache"]["sessions"]
    print(f"\nsessions completed: {s['completed']}/{s['sessions']}; session latency mean "
          f"{s['session_latency_s']['mean']:.3f} s with the cache, "
          f"{runs['no cache']['sessions']['session_latency_s']['mean']:.3f} s without\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trace-requests", type=int, default=600)
    ap.add_argument("--trace-rate", type=float, default=30.0)
    ap.add_argument("--rounds", type=int, default=2, help="trace and reference runs, alternating")
    ap.add_argument("--sessions", type=int, default=24)
    ap.add_argument("--turns", type=int, default=6)
    ap.add_argument("--user-tokens", type=int, default=200)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--concurrency", type=int, default=4)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trace_replay(args, Path(tmp))
        multi_turn(args, Path(tmp))


if __name__ == "__main__":
    main()
