"""Eval runner overhead and grading throughput.

1. Runner: `lmgauge.evaluate` on MATH-500 (500 questions × R repeats, one request each) at
   concurrency 256 against a zero-latency local server (bench/fast_openai_server.py, its own
   process). Reported: requests/s end to end (requests, grading, journal) and per-request
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


def bench_runner(repeats: int) -> dict:
    import lmgauge
    from lmgauge.plugins import PluginManager

    proc = subprocess.Popen([sys.executable, str(HERE / "fast_openai_server.py")], stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline().split()[1])
    try:
        with tempfile.TemporaryDirectory() as tmp:
            pm = PluginManager(only=["math_500", "openai"])
            t0 = time.perf_counter()
            report = lmgauge.evaluate(pm=pm, base_url=f"http://127.0.0.1:{port}/v1", model="bench-model",
                                      benchmark=["math_500"], repeats=repeats, seed=0, concurrency=256,
                                      output=os.path.join(tmp, "run"), grading_workers=2)
            elapsed = time.perf_counter() - t0
            samples = sum(b["samples"] for b in report.data["benchmarks"])
    finally:
        proc.kill()
    return {"requests": samples, "elapsed_s": elapsed, "requests_per_s": samples / elapsed}


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
    print(f"runner: {r['requests']} requests at concurrency 256 in {r['elapsed_s']:.2f} s = "
          f"{r['requests_per_s']:.0f} requests/s end to end ({1000 / r['requests_per_s']:.2f} ms per request, "
          "including grading and journal)")


if __name__ == "__main__":
    main()
