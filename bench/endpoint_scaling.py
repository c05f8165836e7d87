"""Eval wall time over 1, 2 and 3 endpoints (repeated ``--base-url``), same run, endpoint counts
alternating round by round.

Each endpoint is tests/eval_server.py in its own process, serving a fixed number of requests at
a time (``max_in_flight``, the rest wait their turn, like a server with a fixed batch) and
taking ``delay`` seconds per request: one endpoint's capacity is ``max_in_flight / delay``
requests per second, so the request phase of N questions takes about
``N * delay / (max_in_flight * endpoints)`` when the run keeps every endpoint full
(``--concurrency`` = ``max_in_flight`` × 3 for every variant). Expected: near-linear.

Reported: the request phase (report.json ``request_phase_s``: first request to last journaled
sample) and the whole ``lmgauge eval`` process (start-up, plan, grading pool, report).

Run: .venv/bin/python bench/endpoint_scaling.py [--rounds 3] [--limit 120] [--slots 4] [--delay 0.2]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent / "tests"


def start_server(script: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, str(TESTS / "eval_server.py"), script], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        raise SystemExit("eval server did not start")
    return proc, f"http://127.0.0.1:{int(line.split()[1])}/v1"


def run_eval(out: str, urls: list[str], limit: int, concurrency: int) -> tuple[float, float, list[dict]]:
    """(process wall time, request phase, per-endpoint counts) of one `lmgauge eval`."""
    args = [sys.executable, "-m", "lmgauge.cli", "eval", "--model", "bench-model", "--benchmark", "math_500",
            "--limit", str(limit), "--concurrency", str(concurrency), "--output", out, "--no-progress"]
    for url in urls:
        args += ["--base-url", url]
    env = dict(os.environ, LMGAUGE_PLUGINS="math_500,openai")
    t0 = time.perf_counter()
    subprocess.run(args, check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    report = json.loads((Path(out) / "report.json").read_text())
    return wall, report["request_phase_s"], report.get("endpoints", [])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--limit", type=int, default=120)
    ap.add_argument("--slots", type=int, default=4, help="requests each endpoint serves at a time")
    ap.add_argument("--delay", type=float, default=0.2, help="seconds per request")
    a = ap.parse_args()
    from lmgauge.plugins import PluginManager

    samples = PluginManager(only=["math_500"]).get("benchmarks", "math_500").load()[: a.limit]
    answers = {s.prompt: [f"So the answer is $\\boxed{{{s.gold}}}$."] for s in samples}
    variants = (1, 2, 3)
    walls: dict[int, list[float]] = {n: [] for n in variants}
    phases: dict[int, list[float]] = {n: [] for n in variants}
    shares: dict[int, list[int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "server.json")
        with open(script, "w") as fh:
            json.dump({"model": "bench-model", "answers": answers, "delay": a.delay, "max_in_flight": a.slots}, fh)
        servers = [start_server(script) for _ in range(3)]
        urls = [url for _, url in servers]
        try:
            for r in range(a.rounds):
                for n in variants:
                    wall, phase, eps = run_eval(os.path.join(tmp, f"run-{r}-{n}"), urls[:n], a.limit, 3 * a.slots)
                    walls[n].append(wall)
                    phases[n].append(phase)
                    shares[n] = [e["ok"] for e in eps]
                    print(f"round {r + 1} endpoints {n}: request phase {phase:.2f} s, process {wall:.2f} s, "
                          f"requests per endpoint {shares[n]}", flush=True)
        finally:
            for proc, _ in servers:
                proc.kill()
                proc.wait()
    ideal = a.limit * a.delay / a.slots
    base = statistics.median(phases[1])
    print(f"\n{a.limit} questions, each endpoint {a.slots} requests at a time, {a.delay} s each, "
          f"--concurrency {3 * a.slots}, {a.rounds} rounds (medians)\n")
    print("| endpoints | ideal request phase | request phase | speed-up | whole eval process | requests per endpoint |")
    print("|---:|---:|---:|---:|---:|---|")
    for n in variants:
        phase = statistics.median(phases[n])
        print(f"| {n} | {ideal / n:.2f} s | {phase:.2f} s | {base / phase:.2f}x | {statistics.median(walls[n]):.2f} s | "
              f"{' / '.join(map(str, shares[n]))} |")


if __name__ == "__main__":
    main()
