"""Perf through Ray: requests/s with 1 vs 2 Ray nodes vs local ``--workers 2``, and Ray's start-up cost.

Against tests/perf_server.py with no delays (each streaming response one precomputed write), the
same closed-loop load (``--concurrency``, ``--number``, ``--tokens`` one-token chunks) as
``lmgauge perf`` end to end, in phases:

1. a one-node Ray cluster (head pinned to core 0, ``--num-cpus 2`` so both actors fit on it):
   rounds alternate ``--workers 2 --ray`` with local ``--workers 2`` and one local process;
2. a two-node cluster (head pinned to core 0, a second node pinned to core 1, one CPU each):
   rounds alternate ``--workers 2 --ray`` (one actor per node) with local ``--workers 2``.

Nodes are ``ray start --block`` processes started by tests/test_ray.py's LocalRayCluster (Ray's
processes inherit the node's CPU affinity). The server and the CLI's main process are not
pinned: this machine has only two cores, so nothing runs on a core of its own.

Start-up cost: the time for ``ray start --head`` and for a node to join; then, in the bench's
own process against the two-node cluster, ``ray.init`` to it, two perf actors placed with their
backends started (``ready``), and the first record back at the driver after the start instant
(which is ``START_MARGIN_S`` after the actors are ready); and the wall time of a tiny
``lmgauge perf`` (``--number 10``) with ``--ray`` minus the same without it.

Run: .venv/bin/python bench/ray_scale.py [--number 6000] [--concurrency 64] [--tokens 16] [--reps 3]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SERVER = REPO / "tests" / "perf_server.py"
sys.path.insert(0, str(REPO / "tests"))

from test_ray import LocalRayCluster  # noqa: E402 - the tests' cluster helper

ENV = {**os.environ, "LMGAUGE_PLUGINS": "openai", "RAY_USAGE_STATS_ENABLED": "0"}


def perf(url: str, args, extra: list[str], number: int | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "lmgauge.cli", "perf", "--url", url, "--model", "perf-model", "--prompt", "hello",
               "--concurrency", str(args.concurrency), "--number", str(number or args.number),
               "--max-tokens", str(args.tokens), *extra, "--output", str(Path(tmp) / "run")]
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            raise SystemExit(f"failed: {' '.join(cmd)}\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
        s = json.loads((Path(tmp) / "run" / "summary.json").read_text())["runs"][0]
    assert s["succeeded"] == (number or args.number), s
    return {"rps": s["request_throughput"], "wall": wall, "cpu": s.get("client_cpu_share"), "nodes": s.get("nodes")}


def startup_breakdown(address: str, url: str) -> dict:
    """ray.init, two actors ready, first record at the driver: timed in this process."""
    from lmgauge.interfaces import BackendConfig, RequestSettings
    from lmgauge.perf.cli import RequestSource
    from lmgauge.perf.loadgen import Load, WorkerJob, shard_load
    from lmgauge.scale import connect
    from lmgauge.scale.ray_perf import START_MARGIN_S, PerfShardActor

    t0 = time.perf_counter()
    ray, _ = connect(address)
    t1 = time.perf_counter()
    source = RequestSource(None, "hello", {}, RequestSettings(model="perf-model", max_tokens=16))
    conf = BackendConfig(model="perf-model", base_url=url, api="chat")
    load = Load(count=2, concurrency=2)
    cls = ray.remote(PerfShardActor)
    actors = [cls.options(num_cpus=1, scheduling_strategy="SPREAD").remote(
        WorkerJob("openai", conf, shard_load(load, 2, k), source, None)) for k in range(2)]
    infos = ray.get([a.ready.remote() for a in actors], timeout=300)
    t2 = time.perf_counter()
    wall = time.time() + START_MARGIN_S
    ray.get([a.begin.remote(wall, wall - (time.time() - time.perf_counter()), True) for a in actors], timeout=60)
    got = 0
    while not got:
        got = sum(len(r[0]) for r in ray.get([a.take.remote(0.001) for a in actors], timeout=60))
    t3 = time.perf_counter()
    for a in actors:
        ray.kill(a)
    ray.shutdown()
    assert len({i["node_id"] for i in infos}) == 2
    return {"connect": t1 - t0, "ready": t2 - t1, "first": t3 - t2 - START_MARGIN_S}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--number", type=int, default=6000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    server = subprocess.Popen([sys.executable, str(SERVER), "--tokens", str(args.tokens)], stdout=subprocess.PIPE,
                              text=True)
    url = f"http://127.0.0.1:{int(server.stdout.readline().split()[1])}/v1/chat/completions"
    rounds: dict[str, list[dict]] = {}
    starts: dict[str, list[float]] = {"head": [], "node": []}
    breakdown: list[dict] = []
    overhead: list[tuple[float, float]] = []

    def note(name: str, r: dict) -> None:
        rounds.setdefault(name, []).append(r)
        print(f"{name}: {r['rps']:,.0f} req/s, client CPU {r['cpu']:.0%}", file=sys.stderr)

    try:
        for phase in (1, 2):
            cluster = LocalRayCluster()
            try:
                t0 = time.perf_counter()
                address = cluster.start_head(num_cpus=2 if phase == 1 else 1, cpu=0)
                starts["head"].append(time.perf_counter() - t0)
                if phase == 2:
                    t0 = time.perf_counter()
                    cluster.add_node(num_cpus=1, cpu=1)
                    starts["node"].append(time.perf_counter() - t0)
                ray_name = "Ray, 1 node (pinned to 1 core), --workers 2" if phase == 1 else \
                    "Ray, 2 nodes (1 core each), --workers 2"
                for _ in range(args.reps):
                    note(ray_name, perf(url, args, ["--workers", "2", "--ray", "--ray-address", address]))
                    note("local --workers 2", perf(url, args, ["--workers", "2"]))
                    if phase == 1:
                        note("local, 1 process", perf(url, args, ["--workers", "1"]))
                if phase == 2:
                    for _ in range(args.reps):
                        breakdown.append(startup_breakdown(address, url))
                        a = perf(url, args, ["--workers", "2", "--ray", "--ray-address", address], number=10)
                        b = perf(url, args, ["--workers", "2"], number=10)
                        overhead.append((a["wall"], b["wall"]))
            finally:
                cluster.stop()
    finally:
        server.kill()

    med = statistics.median
    print(f"`python bench/ray_scale.py --number {args.number} --concurrency {args.concurrency} --tokens {args.tokens} "
          f"--reps {args.reps}`, Python {platform.python_version()}, {os.cpu_count()} cores; median of {args.reps} rounds "
          f"(min-max):\n")
    print("| client | requests/s | client CPU (share of one core, all shards) |")
    print("|---|---:|---:|")
    for name, rs in rounds.items():
        rps = [r["rps"] for r in rs]
        print(f"| {name} | {med(rps):,.0f} ({min(rps):,.0f}-{max(rps):,.0f}) | {med(r['cpu'] for r in rs):.0%} |")
    print(f"\nRay start-up: `ray start --head` {med(starts['head']):.1f} s (runs: "
          f"{', '.join(f'{x:.1f}' for x in starts['head'])}), a second node joins in {med(starts['node']):.1f} s; "
          f"per run: ray.init {med(b['connect'] for b in breakdown):.2f} s, two actors placed with their backends "
          f"started {med(b['ready'] for b in breakdown):.2f} s, first record at the driver "
          f"{med(b['first'] for b in breakdown) * 1000:.0f} ms after the start instant; `lmgauge perf --number 10` "
          f"with --ray {med(a for a, _ in overhead):.2f} s vs without {med(b for _, b in overhead):.2f} s "
          f"(+{med(a - b for a, b in overhead):.2f} s).")


if __name__ == "__main__":
    main()
