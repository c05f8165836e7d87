"""How much load can a perf client drive? Requests/s and chunks/s against a zero-delay server.

The server is tests/perf_server.py with no delays: a raw asyncio protocol that answers each
streaming request with one precomputed write (``--tokens`` chunks of one token, usage, [DONE]),
in its own process. Against it, side by side in one run (``--reps`` rounds, clients alternating,
best round of each kept):

- ``lmgauge perf`` in one client process, and with ``--workers 2``;
- bench/minimal_client.py: a bare aiohttp loop that reads the bodies and measures nothing (the
  floor any aiohttp-based client sits on);
- ``evalscope perf`` with the same settings, when ``--evalscope PATH`` names its executable (in a
  venv of its own).

For each: requests/s and chunks/s over the load phase (the tool's own duration where it reports
one), the client's CPU (as a share of one core, over the same phase for lmgauge, over the whole
command otherwise) and the server's CPU seconds divided by the load phase, so one sees which side
is the limit (a server near 100 % of a core is the bottleneck, not the client).

Run: .venv/bin/python bench/perf_throughput.py [--number 6000] [--concurrency 64] [--tokens 16]
     [--reps 2] [--evalscope /tmp/evalscope-venv/bin/evalscope]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SERVER = HERE.parent / "tests" / "perf_server.py"


def proc_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run(cmd: list[str], server_pid: int, cwd: str) -> dict:
    s0, c0, t0 = proc_cpu(server_pid), children_cpu(), time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    # the server only works while requests come: its CPU seconds over the load phase
    return {"wall": wall, "server_cpu": proc_cpu(server_pid) - s0, "client_cpu": children_cpu() - c0,
            "stdout": p.stdout}


def lmgauge(url: str, args, workers: int, server_pid: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "lmgauge.cli", "perf", "--url", url, "--model", "perf-model",
               "--concurrency", str(args.concurrency), "--number", str(args.number), "--max-tokens", str(args.tokens),
               "--workers", str(workers), "--prompt", "hello", "--output", str(Path(tmp) / "run")]
        r = run(cmd, server_pid, tmp)
        s = json.loads((Path(tmp) / "run" / "summary.json").read_text())["runs"][0]
    assert s["succeeded"] == args.number, s
    share = s["client_cpu_share"]
    return {"rps": s["request_throughput"], "duration": s["duration_s"], "client": f"{share:.0%} (load phase)",
            "server": r["server_cpu"] / s["duration_s"], "ok": s["succeeded"]}


def minimal(url: str, args, server_pid: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, str(HERE / "minimal_client.py"), url, str(args.concurrency), str(args.number),
               str(args.tokens)]
        r = run(cmd, server_pid, tmp)
    out = json.loads(r["stdout"].strip().splitlines()[-1])
    return {"rps": out["requests"] / out["wall_s"], "duration": out["wall_s"],
            "client": f"{out['cpu_s'] / out['wall_s']:.0%} (load phase)", "server": r["server_cpu"] / out["wall_s"],
            "ok": out["ok"]}


def evalscope(url: str, args, server_pid: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [args.evalscope, "perf", "--url", url, "--model", "perf-model", "--parallel", str(args.concurrency),
               "--number", str(args.number), "--api", "openai", "--stream", "--prompt", "hello",
               "--max-tokens", str(args.tokens), "--outputs-dir", str(Path(tmp) / "es")]
        r = run(cmd, server_pid, tmp)
        (summary,) = Path(tmp, "es").rglob("benchmark_summary.json")
        s = json.loads(summary.read_text())
    return {"rps": s["Req Throughput (req/s)"], "duration": s["Test Duration (s)"],
            "client": f"{r['client_cpu'] / r['wall']:.0%} (whole command)",
            "server": r["server_cpu"] / s["Test Duration (s)"],
            "ok": s["Success Requests"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--number", type=int, default=6000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--evalscope", default=None, help="path to an evalscope executable in its own venv")
    args = ap.parse_args()
    server = subprocess.Popen([sys.executable, str(SERVER), "--tokens", str(args.tokens)], stdout=subprocess.PIPE,
                              text=True)
    port = int(server.stdout.readline().split()[1])
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    clients = {"lmgauge perf (1 process)": lambda: lmgauge(url, args, 1, server.pid),
               "lmgauge perf --workers 2": lambda: lmgauge(url, args, 2, server.pid),
               "bare aiohttp loop (bench/minimal_client.py)": lambda: minimal(url, args, server.pid)}
    if args.evalscope:
        clients["evalscope perf"] = lambda: evalscope(url, args, server.pid)
    best: dict[str, dict] = {}
    try:
        for rep in range(args.reps):
            for name, fn in clients.items():
                r = fn()
                print(f"round {rep + 1} {name}: {r['rps']:.0f} req/s, client CPU {r['client']}, "
                      f"server CPU {r['server']:.0%}", file=sys.stderr)
                if name not in best or r["rps"] > best[name]["rps"]:
                    best[name] = r
    finally:
        server.kill()
    print(f"`python bench/perf_throughput.py --number {args.number} --concurrency {args.concurrency} --tokens "
          f"{args.tokens} --reps {args.reps}{' --evalscope ...' if args.evalscope else ''}`, Python "
          f"{platform.python_version()}, {os.cpu_count()} cores; best of {args.reps} rounds:\n")
    print("| client | requests/s | chunks/s | ok | client CPU (share of one core) | server CPU |")
    print("|---|---:|---:|---:|---|---:|")
    for name, r in best.items():
        print(f"| {name} | {r['rps']:,.0f} | {r['rps'] * args.tokens:,.0f} | {r['ok']}/{args.number} | {r['client']} | "
              f"{r['server']:.0%} |")
    if "evalscope perf" in best:
        ratio = best["lmgauge perf (1 process)"]["rps"] / best["evalscope perf"]["rps"]
        print(f"\nlmgauge in one process / EvalScope: {ratio:.1f}x requests/s")


if __name__ == "__main__":
    main()
