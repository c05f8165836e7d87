"""Eval runner overhead and grading throughput.

1. Runner: `lmgauge.evaluate` on MATH-500 (500 questions × R repeats, one request each) at
   concurrency 256 against a zero-latency local server (tests/perf_server.py answering every
   request with ``\boxed{\frac{14}{3}}`` in one precomputed write, its own process). Reported: requests/s end to end (requests, grading, journal) and per-request
   overhead. Target ≥ 500 requests/s.
2. Grading: the runner's GradingPool (spawned processes) grading MATH-style answers against the
   500 MATH-500 golds. Target ≥ 1,000 samples/s on 2 cores.

Run: .venv/bin/python bench/eval_overhead.py [--repeats 4]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def bench_runner(repeats: int, benchmark: str = "math_500", dataset_path: str | None = None) -> dict:
    import lmgauge
    from lmgauge.plugins import PluginManager

    proc = subprocess.Popen([sys.executable, str(HERE.parent / "tests" / "perf_server.py"), "--model", "bench-model",
                             "--answer", "So the answer is $\\boxed{\\frac{14}{3}}$."],
                            stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline().split()[1])
    try:
        with tempfile.TemporaryDirectory() as tmp:
            pm = PluginManager(only=[benchmark, "openai"])
            t0 = time.perf_counter()
            report = lmgauge.evaluate(pm=pm, base_url=f"http://127.0.0.1:{port}/v1", model="bench-model",
                                      benchmark=[benchmark], repeats=repeats, seed=0, concurrency=256,
                                      output=os.path.join(tmp, "run"), grading_workers=2,
                                      dataset_path={benchmark: dataset_path} if dataset_path else {})
            elapsed = time.perf_counter() - t0
            samples = sum(b["samples"] for b in report.data["benchmarks"])
            phase = report.data["request_phase_s"]
    finally:
        proc.kill()
    return {"requests": samples, "elapsed_s": elapsed, "requests_per_s": samples / elapsed,
            "phase_s": phase, "phase_requests_per_s": samples / phase}


def bench_grading(count: int) -> dict:
    from lmgauge.eval.grading_pool import GradingPool
    from lmgauge.plugins import PluginManager
    from lmgauge.types import Completion

    bench = PluginManager(only=["math_500"]).get("benchmarks", "math_500")
    samples = bench.load()
    styles = ["The answer is $\\boxed{{{g}}}$.", "<think>try \\boxed{{0}}</think> so \\boxed{{{g}}}",
              "Final answer: \\boxed{{{g}}} units", "\\boxed{{7}}"]
    items = [(samples[i % len(samples)], Completion(styles[i % 4].format(g=samples[i % len(samples)].gold)))
             for i in range(count)]

    async def go():
        pool = GradingPool(2)
        pool.start()
        await asyncio.gather(*(pool.grade(bench, s, c) for s, c in items[:64]))  # warm the workers
        t0 = time.perf_counter()
        scores = await asyncio.gather(*(pool.grade(bench, s, c) for s, c in items))
        dt = time.perf_counter() - t0
        pool.close()
        return scores, dt

    scores, dt = asyncio.run(go())
    right = sum(s.value for s in scores)
    return {"samples": count, "elapsed_s": dt, "samples_per_s": count / dt, "correct": right}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--grading-samples", type=int, default=4000)
    args = ap.parse_args()
    g = bench_grading(args.grading_samples)
    print(f"grading: {g['samples']} MATH-style samples in {g['elapsed_s']:.2f} s = {g['samples_per_s']:.0f} samples/s "
          f"(2 worker processes; {g['correct']:.0f} graded correct)")
    r = bench_runner(args.repeats)
    print(f"runner, MATH-500 x{args.repeats} (math-verify grading of every answer): {r['requests']} requests at "
          f"concurrency 256: {r['phase_requests_per_s']:.0f} requests/s over the request phase "
          f"({r['phase_s']:.2f} s), {r['requests_per_s']:.0f} requests/s including start-up ({r['elapsed_s']:.2f} s)")
    aime = Path(__file__).resolve().parents[2] / "shared" / "data" / "aime24.jsonl"
    if aime.exists():
        r = bench_runner(64, "aime24", str(aime))
        print(f"runner, AIME24 x64 (integer grading, near-free): {r['requests']} requests at concurrency 256: "
              f"{r['phase_requests_per_s']:.0f} requests/s over the request phase ({r['phase_s']:.2f} s; "
              f"{1000 / r['phase_requests_per_s']:.2f} ms per request incl. journal), "
              f"{r['requests_per_s']:.0f} requests/s including start-up")


if __name__ == "__main__":
    main()
