"""How much load can one lmgauge perf client drive? Requests/s and chunks/s against a
zero-delay streaming server (bench/stream_server.py: raw asyncio protocol, own process).

Reported for one client process and for --workers 2: requests/s, chunks/s, the client's CPU
share, and the server's CPU share over the same interval (to show which side is the limit).
If an EvalScope install is given (--evalscope /path/to/venv/bin/evalscope), its perf command is
run against the same server with the same settings, side by side.

Run: .venv/bin/python bench/perf_throughput.py [--number 6000] [--concurrency 64] [--tokens 16]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def proc_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(cmd: list[str], server_pid: int) -> tuple[float, float, str]:
    s0, t0 = proc_cpu(server_pid), time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return wall, (proc_cpu(server_pid) - s0) / wall, p.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--number", type=int, default=6000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--evalscope", default=None, help="path to an evalscope executable in its own venv")
    args = ap.parse_args()
    server = subprocess.Popen([sys.executable, str(HERE / "stream_server.py"), "--tokens", str(args.tokens)],
                              stdout=subprocess.PIPE, text=True)
    port = int(server.stdout.readline().split()[1])
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    try:
        for workers in (1, 2):
            with tempfile.TemporaryDirectory() as tmp:
                cmd = [sys.executable, "-m", "lmgauge.cli", "perf", "--url", url, "--model", "perf-model",
                       "--concurrency", str(args.concurrency), "--number", str(args.number), "--max-tokens",
                       str(args.tokens), "--workers", str(workers), "--prompt", "hello", "--output", tmp]
                _, server_share, _ = run(cmd, server.pid)
                r = json.loads((Path(tmp) / "summary.json").read_text())["runs"][0]
                chunks = r["output_tokens_total"]  # one token per chunk here
                print(f"lmgauge workers={workers}: {r['request_throughput']:.0f} req/s, {chunks / r['duration_s']:.0f} chunks/s, "
                      f"{r['succeeded']}/{r['requests']} ok, client CPU {r['client_cpu_share']:.0%} of one core, "
                      f"server CPU {server_share:.0%}")
        if args.evalscope:
            with tempfile.TemporaryDirectory() as tmp:
                cmd = [args.evalscope, "perf", "--url", url, "--model", "perf-model", "--parallel", str(args.concurrency),
                       "--number", str(args.number), "--api", "openai", "--stream", "--prompt", "hello",
                       "--max-tokens", str(args.tokens), "--outputs-dir", tmp]
                wall, server_share, out = run(cmd, server.pid)
                m = re.search(r"Request throughput \(req/s\)\s*[|│]\s*([\d.]+)", out) or re.search(r"Average QPS\s*[|│]\s*([\d.]+)", out)
                rps = float(m.group(1)) if m else args.number / wall
                print(f"evalscope: {rps:.0f} req/s (its own report), {args.number / wall:.0f} req/s over the whole command, "
                      f"server CPU {server_share:.0%}")
    finally:
        server.kill()


if __name__ == "__main__":
    main()
