"""How exact are lmgauge perf's TTFT figures? Client TTFT minus server truth.

A streaming server in its own process (bench/stream_server.py) sleeps a known TTFT (50 ms)
before its first token and a known ITL (10 ms) between tokens, and logs, per request, when it
wrote its first chunk. lmgauge perf drives it at concurrency 64 with 640 requests of 128 tokens.
Reported: client TTFT percentiles minus the server's true TTFT (50 ms), and client ITL/TPOT
against 10 ms.

Run: .venv/bin/python bench/perf_accuracy.py
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TTFT, ITL, TOKENS, CONC, N = 0.050, 0.010, 128, 64, 640


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "server.jsonl"
        server = subprocess.Popen([sys.executable, str(HERE / "stream_server.py"), "--ttft", str(TTFT), "--itl", str(ITL),
                                   "--tokens", str(TOKENS), "--log", str(log)], stdout=subprocess.PIPE, text=True)
        port = int(server.stdout.readline().split()[1])
        try:
            out = Path(tmp) / "run"
            subprocess.run([sys.executable, "-m", "lmgauge.cli", "perf", "--url", f"http://127.0.0.1:{port}/v1/chat/completions",
                            "--model", "perf-model", "--concurrency", str(CONC), "--number", str(N), "--max-tokens",
                            str(TOKENS), "--output", str(out)], check=True, capture_output=True, text=True)
            run = json.loads((out / "summary.json").read_text())["runs"][0]
        finally:
            server.kill()
        truth = [json.loads(l) for l in log.read_text().splitlines()]
        server_ttft = sorted(t["first"] - t["start"] for t in truth)
    print(f"requests: {run['succeeded']}/{run['requests']} at concurrency {CONC}, {TOKENS} tokens each")
    print(f"server's own first-chunk delay: p50 {1000 * server_ttft[len(server_ttft) // 2]:.2f} ms "
          f"p99 {1000 * server_ttft[int(0.99 * (len(server_ttft) - 1))]:.2f} ms (target {1000 * TTFT:.0f} ms)")
    for key in ("mean", "p50", "p90", "p99"):
        print(f"client TTFT {key:>4}: {1000 * run['ttft_s'][key]:7.2f} ms   error vs {1000 * TTFT:.0f} ms: "
              f"{1000 * (run['ttft_s'][key] - TTFT):+6.2f} ms")
    print(f"client ITL p50 {1000 * run['itl_s']['p50']:.2f} ms p99 {1000 * run['itl_s']['p99']:.2f} ms; "
          f"TPOT mean {1000 * run['tpot_s']['mean']:.2f} ms (server: {1000 * ITL:.0f} ms)")
    print(f"client CPU share: {run['client_cpu_share']:.0%} of one core")


if __name__ == "__main__":
    main()
