"""What does scraping the server's /metrics cost the client? Requests/s with and without the
scraper in the same event loop.

The load: lmgauge's load generator (``lmgauge.perf.loadgen.run_load``) with the openai backend,
closed loop, against tests/perf_server.py with no delays (each streaming response one
precomputed write), so the client runs at 100 % of a core and any CPU the scraper takes comes
out of the load: the worst case. The page: tests/metrics_server.py ``--flavor vllm`` with
``--engines`` label sets (a vLLM-like page; histogram buckets included, as vLLM writes them).

Rounds alternate A-B-B-A (without, with, with, without, ...) in one process and one event
loop, ``--pairs`` pairs; each round sends ``--number`` requests. With the scraper, a round is
wired as ``lmgauge perf`` wires a level: ``await scraper.start()`` (first scrape), the load,
``await scraper.stop()`` (last scrape, then the pages are parsed, off the clock). Requests/s is
counted over the load alone (``LoadResult.wall_s``), as the perf summary does.

Run: .venv/bin/python bench/server_metrics_cost.py [--number 15000] [--concurrency 64]
     [--tokens 16] [--pairs 8] [--interval 1.0] [--engines 4]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from lmgauge.interfaces import BackendConfig
from lmgauge.perf.loadgen import Load, LoadResult, run_load, schedule
from lmgauge.perf.server_metrics import ServerMetricsScraper
from lmgauge.plugins import get_manager
from lmgauge.types import GenerationParams, GenerationRequest

NL = b"\n"
TESTS = Path(__file__).resolve().parents[1] / "tests"


def start(script: str, *args: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, str(TESTS / script), *args], stdout=subprocess.PIPE, text=True)
    return proc, int(proc.stdout.readline().split()[1])


async def bench(args, url: str, metrics: str) -> list[tuple[str, float, dict]]:
    backend = get_manager().get("backends", "openai")(BackendConfig(model="perf-model", base_url=url))
    await backend.start()
    req = GenerationRequest(messages=[{"role": "user", "content": "hello"}],
                            params=GenerationParams(max_tokens=args.tokens, stream=True))
    rounds: list[tuple[str, float, dict]] = []
    try:
        await one_round(backend, req, args, None)  # warm-up: connections, caches
        order = [m for _ in range(args.pairs // 2) for m in ("off", "on", "on", "off")]
        order += ["off", "on"] if args.pairs % 2 else []
        for mode in order:
            scraper = ServerMetricsScraper(metrics, interval=args.interval) if mode == "on" else None
            rps, info = await one_round(backend, req, args, scraper)
            rounds.append((mode, rps, info))
            extra = f", {info['scrapes']} scrapes, parsed in {info['parse_ms']:.0f} ms" if scraper else ""
            print(f"round {len(rounds)} scraper {mode}: {rps:,.0f} req/s, {info['cpu_us_per_request']:.1f} µs "
                  f"client CPU per request{extra}", file=sys.stderr)
    finally:
        await backend.close()
    return rounds


async def one_round(backend, req: GenerationRequest, args, scraper: ServerMetricsScraper | None) -> tuple[float, dict]:
    load = Load(count=args.number, concurrency=args.concurrency)
    items = list(schedule(load, (req for _ in range(args.number))))
    result = LoadResult()
    if scraper is not None:
        await scraper.start()
    await run_load(backend, items, load, result)
    info: dict = {}
    if scraper is not None:
        t0 = time.perf_counter()
        scraped = await scraper.stop()
        info = {"parse_ms": 1000 * (time.perf_counter() - t0), "scrapes": scraped.attempts,
                "rate": (scraped.attempts - 2) / result.wall_s,  # scrapes/s during the load (first, last outside)
                "failed": scraped.failures, "family": scraped.family}
        assert scraped.failures == 0 and scraped.family == "vllm", scraped.warning()
    ok = sum(1 for r in result.records if r.success)
    assert ok == args.number, f"{ok}/{args.number} requests succeeded"
    info["cpu_us_per_request"] = 1e6 * result.cpu_s / ok  # the client's CPU over the load phase
    return ok / result.wall_s, info


async def hot_path_cost(metrics: str, seconds: float = 3.0) -> tuple[float, int, float]:
    """CPU per scrape on the event loop, parsing excluded: back-to-back scrapes (interval
    1 ms) in an otherwise idle loop, so the process's CPU over the period is the scraper's.
    Returns (µs per scrape, scrapes, ms to parse one page afterwards)."""
    scraper = ServerMetricsScraper(metrics, interval=0.001)
    await scraper.start()
    cpu0 = time.process_time()
    await asyncio.sleep(seconds)
    cpu = time.process_time() - cpu0
    n = scraper.attempts  # scrapes taken while the CPU was counted (±1)
    t0 = time.perf_counter()
    res = await scraper.stop()
    parse_ms = 1000 * (time.perf_counter() - t0) / max(1, len(res.times))
    assert res.failures == 0, res.warning()
    return 1e6 * cpu / n, n, parse_ms


def paired(values: dict[str, float]) -> float:
    return values["on"] / values["off"] - 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--number", type=int, default=15000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--engines", type=int, default=4)
    args = ap.parse_args()
    load_server, port = start("perf_server.py", "--tokens", str(args.tokens))
    metrics_server, mport = start("metrics_server.py", "--flavor", "vllm", "--engines", str(args.engines))
    try:
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        metrics = f"http://127.0.0.1:{mport}/metrics"
        with urllib.request.urlopen(metrics + "?n=100") as resp:
            page = resp.read()
        per_scrape_us, n_scrapes, parse_ms = asyncio.run(hot_path_cost(metrics))
        rounds = asyncio.run(bench(args, url, metrics))
    finally:
        load_server.kill()
        metrics_server.kill()
    off = [r for m, r, _ in rounds if m == "off"]
    on = [r for m, r, _ in rounds if m == "on"]
    # pairs in the order run: (off, on), (on, off), ... each pair adjacent in time
    pairs = [(rounds[i], rounds[i + 1]) for i in range(0, len(rounds) - 1, 2)]
    rps_diff = [paired({a[0]: a[1], b[0]: b[1]}) for a, b in pairs]
    cpu_diff = [paired({a[0]: a[2]["cpu_us_per_request"], b[0]: b[2]["cpu_us_per_request"]}) for a, b in pairs]
    scrapes = [i["scrapes"] for m, _, i in rounds if m == "on"]
    rate = statistics.median(i["rate"] for m, _, i in rounds if m == "on")
    cpu_off = [i["cpu_us_per_request"] for m, _, i in rounds if m == "off"]
    cpu_on = [i["cpu_us_per_request"] for m, _, i in rounds if m == "on"]
    print(f"`python bench/server_metrics_cost.py --number {args.number} --concurrency {args.concurrency} --tokens "
          f"{args.tokens} --pairs {args.pairs} --interval {args.interval:g} --engines {args.engines}`, Python "
          f"{platform.python_version()}, {os.cpu_count()} cores; /metrics page {len(page) / 1024:.0f} KiB, "
          f"{page.count(NL)} lines:\n")
    print(f"Hot path (idle loop, {n_scrapes} back-to-back scrapes): {per_scrape_us:.0f} µs of CPU per scrape "
          f"(GET, read, stamp, compress), i.e. {per_scrape_us / 1e4 / args.interval:.3f} % of one core at one scrape "
          f"every {args.interval:g} s. Parsing, after the level: {parse_ms:.1f} ms per page.\n")
    print("| scraper | rounds | requests/s (median, min–max) | client CPU per request, µs (median, min–max) |")
    print("|---|---:|---:|---:|")
    for name, xs, cs in (("off", off, cpu_off), (f"on, every {args.interval:g} s", on, cpu_on)):
        print(f"| {name} | {len(xs)} | {statistics.median(xs):,.0f} ({min(xs):,.0f}–{max(xs):,.0f}) | "
              f"{statistics.median(cs):.1f} ({min(cs):.1f}–{max(cs):.1f}) |")
    print(f"\nPer adjacent pair, with / without − 1 ({len(pairs)} pairs): requests/s median "
          f"{100 * statistics.median(rps_diff):+.2f} % (range {100 * min(rps_diff):+.2f} to {100 * max(rps_diff):+.2f} %); "
          f"client CPU per request median {100 * statistics.median(cpu_diff):+.2f} % (range {100 * min(cpu_diff):+.2f} "
          f"to {100 * max(cpu_diff):+.2f} %). Scrapes per round with the scraper: {min(scrapes)}–{max(scrapes)}, "
          f"{rate:.2f} per second of load (median); the hot path's CPU predicts "
          f"{rate * per_scrape_us / 1e4:+.3f} % client CPU per request.")


if __name__ == "__main__":
    main()
