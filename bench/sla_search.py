"""SLA search vs a fixed sweep of the same precision, against a server whose latency grows
with load as a known function.

    python bench/sla_search.py [--per-inflight 0.005] [--base 0.01] [--limit-ms 112] [--high 64]

tests/perf_server.py ``--ttft-per-inflight K --ttft B`` gives TTFT = B + K × (requests in
flight), so at concurrency c the TTFT is B + K·c and the frontier of ``ttft_p99 <= L`` is
c* = floor((L − B) / K). Both runs are real ``lmgauge perf`` runs on the same server:

- the search: ``--sla ttft_p99<=L --sla-search concurrency --sla-range 1:HIGH``;
- a fixed sweep that finds the frontier to the same 5 %: every concurrency in 1..HIGH that a
  5 %-spaced grid needs (consecutive levels at most 5 % apart, integers), each one level.

Printed: probes/levels, requests sent, wall time, and the frontier each found.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV_PLUGINS = "openai,random,openqa"


def grid(high: int, precision: float = 0.05) -> list[int]:
    """Integer concurrencies from 1 to ``high`` with consecutive values at most ``precision``
    apart (relatively): the fixed sweep that pins a frontier down to that precision."""
    out, c = [1], 1
    while c < high:
        c = max(c + 1, int(c * (1 + precision)))
        out.append(min(c, high))
    return out


def run(args: list[str], env: dict) -> tuple[float, dict]:
    out = Path(tempfile.mkdtemp(prefix="lmgauge-sla-"))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "lmgauge.cli", "perf", *args, "--output", str(out)], env=env, check=True,
                   capture_output=True, text=True)
    return time.perf_counter() - t0, json.loads((out / "summary.json").read_text())


def main() -> None:
    import os

    ap = argparse.ArgumentParser()
    ap.add_argument("--base", type=float, default=0.01)
    ap.add_argument("--per-inflight", type=float, default=0.005)
    ap.add_argument("--limit-ms", type=float, default=112.0)
    ap.add_argument("--high", type=int, default=64)
    ap.add_argument("--number", type=int, default=48)
    a = ap.parse_args()
    server = subprocess.Popen([sys.executable, str(REPO / "tests" / "perf_server.py"), "--ttft", str(a.base),
                               "--ttft-per-inflight", str(a.per_inflight), "--tokens", "4"], stdout=subprocess.PIPE, text=True)
    port = int(server.stdout.readline().split()[1])
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    env = {**os.environ, "LMGAUGE_PLUGINS": ENV_PLUGINS}
    expected = int((a.limit_ms / 1000 - a.base) / a.per_inflight + 1e-9)
    try:
        base = ["--url", url, "--model", "perf-model", "--number", str(a.number)]
        t_search, s = run([*base, "--sla", f"ttft_p99<={a.limit_ms:g}ms", "--sla-search", "concurrency",
                           "--sla-range", f"1:{a.high}"], env)
        levels = grid(a.high)
        t_sweep, f = run([*base, "--concurrency", *map(str, levels)], env)
    finally:
        server.kill()
    met = [r["concurrency"] for r in f["runs"] if r["ttft_s"]["p99"] <= a.limit_ms / 1000]
    sweep_best = max(met) if met else None
    print(f"server: TTFT = {1000 * a.base:g} ms + {1000 * a.per_inflight:g} ms x in-flight; SLA ttft_p99<={a.limit_ms:g}ms; "
          f"true frontier: concurrency {expected}; range 1:{a.high}; {a.number} requests per level")
    print("| method | levels run | requests | wall time (s) | frontier found |")
    print("|---|---:|---:|---:|---:|")
    print(f"| SLA search (bracket + bisect) | {len(s['sla_search']['probes'])} | {sum(r['requests'] for r in s['runs'])} "
          f"| {t_search:.1f} | {s['sla_search']['best']} |")
    print(f"| fixed sweep, levels <=5% apart | {len(levels)} | {sum(r['requests'] for r in f['runs'])} | {t_sweep:.1f} "
          f"| {sweep_best} |")
    print("search probes: " + ", ".join(f"{p['concurrency']}{'+' if p['met'] else '-'}" for p in s["sla_search"]["probes"]))


if __name__ == "__main__":
    main()
