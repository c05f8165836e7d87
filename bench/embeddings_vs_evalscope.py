"""Embeddings load test: lmgauge perf vs EvalScope perf, requests/s against the same server.

The server is tests/endpoint_server.py (a raw asyncio protocol in its own process; vectors of
``--dim`` numbers, usage from the word count). Both tools read the same file of ``--number``
texts, one text per request, each exactly ``--input-len`` cl100k tokens (built with lmgauge's
random-prompt vocabulary): lmgauge with ``--dataset line_by_line``, EvalScope with ``--api
openai_embedding --dataset embedding`` (its file-backed embedding dataset; its random one needs
a Hugging Face tokenizer, which this machine cannot download). Rounds alternate between the
tools (``--reps`` rounds, best round of each kept, every round printed). For each: requests/s
over the tool's own load phase, the share of one core the client used, and the server's CPU
seconds over the load phase (near 100 % would make the server the limit).

Run: .venv/bin/python bench/embeddings_vs_evalscope.py [--number 4000] [--concurrency 32]
     [--input-len 128] [--dim 768] [--reps 3] [--evalscope /work/evalscope-venv/bin/evalscope]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from perf_throughput import run

HERE = Path(__file__).resolve().parent
SERVER = HERE.parent / "tests" / "endpoint_server.py"
MODEL = "embed-model"


def write_texts(path: Path, number: int, length: int) -> None:
    """``number`` lines of exactly ``length`` cl100k tokens each (as stripped by both tools)."""
    from lmgauge.tokenizers import load_tokenizer
    from lmgauge_datasets.random_prompts import exact_text, word_tokens

    tok = load_tokenizer("cl100k_base")
    rng = random.Random(0)
    words = word_tokens(tok)
    lines = []
    while len(lines) < number:
        text = exact_text(tok, rng, words, length).strip()
        if len(tok.encode(text)) == length:
            lines.append(text)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def lmgauge(url: str, texts: Path, args, server_pid: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "lmgauge.cli", "perf", "--url", url, "--model", MODEL, "--dataset", "line_by_line",
               "--dataset-path", str(texts), "--concurrency", str(args.concurrency), "--number", str(args.number),
               "--output", str(Path(tmp) / "run")]
        r = run(cmd, server_pid, tmp)
        s = json.loads((Path(tmp) / "run" / "summary.json").read_text())["runs"][0]
    assert s["api"] == "embeddings" and s["succeeded"] == args.number, s
    return {"rps": s["request_throughput"], "duration": s["duration_s"], "ok": s["succeeded"],
            "client": f"{s['client_cpu_share']:.0%} (load phase)", "server": r["server_cpu"] / s["duration_s"],
            "tokens": s["input_tokens"]["mean"]}


def evalscope(url: str, texts: Path, args, server_pid: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [args.evalscope, "perf", "--url", url, "--model", MODEL, "--api", "openai_embedding",
               "--dataset", "embedding", "--dataset-path", str(texts), "--parallel", str(args.concurrency),
               "--number", str(args.number), "--min-prompt-length", "0", "--max-prompt-length", "100000000",
               "--outputs-dir", str(Path(tmp) / "es")]
        r = run(cmd, server_pid, tmp)
        (summary,) = Path(tmp, "es").rglob("benchmark_summary.json")
        s = json.loads(summary.read_text())
    assert s["Success Requests"] == args.number, s
    return {"rps": s["Req Throughput (req/s)"], "duration": s["Test Duration (s)"], "ok": s["Success Requests"],
            "client": f"{r['client_cpu'] / r['wall']:.0%} (whole command)",
            "server": r["server_cpu"] / s["Test Duration (s)"], "tokens": s["Avg Input Tokens"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--number", type=int, default=4000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--input-len", type=int, default=128)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--evalscope", default="/work/evalscope-venv/bin/evalscope")
    args = ap.parse_args()
    if not os.access(args.evalscope, os.X_OK):
        raise SystemExit(f"no evalscope at {args.evalscope}: install evalscope[perf]==1.14.1 in a venv of its own "
                         "and pass --evalscope PATH")
    server = subprocess.Popen([sys.executable, str(SERVER), "--dim", str(args.dim), "--model", MODEL],
                              stdout=subprocess.PIPE, text=True)
    port = int(server.stdout.readline().split()[1])
    url = f"http://127.0.0.1:{port}/v1/embeddings"
    best: dict[str, dict] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            texts = Path(tmp) / "texts.txt"
            write_texts(texts, args.number, args.input_len)
            clients = {"lmgauge perf": lambda: lmgauge(url, texts, args, server.pid),
                       "evalscope perf": lambda: evalscope(url, texts, args, server.pid)}
            for rep in range(args.reps):
                for name, fn in clients.items():
                    r = fn()
                    print(f"round {rep + 1} {name}: {r['rps']:.0f} req/s, client CPU {r['client']}, "
                          f"server CPU {r['server']:.0%}, {r['tokens']:.0f} input tokens per request", file=sys.stderr)
                    if name not in best or r["rps"] > best[name]["rps"]:
                        best[name] = r
    finally:
        server.kill()
        server.wait()
    print(f"`python bench/embeddings_vs_evalscope.py --number {args.number} --concurrency {args.concurrency} "
          f"--input-len {args.input_len} --dim {args.dim} --reps {args.reps}`, Python {platform.python_version()}, "
          f"{os.cpu_count()} cores; best of {args.reps} alternating rounds:\n")
    print("| client | requests/s | ok | input tokens/request (server usage) | client CPU (share of one core) | server CPU |")
    print("|---|---:|---:|---:|---|---:|")
    for name, r in best.items():
        print(f"| {name} | {r['rps']:,.0f} | {r['ok']}/{args.number} | {r['tokens']:.0f} | {r['client']} | "
              f"{r['server']:.0%} |")
    print(f"\nlmgauge / EvalScope: {best['lmgauge perf']['rps'] / best['evalscope perf']['rps']:.1f}x requests/s")


if __name__ == "__main__":
    main()
