"""The load generator.

- Closed loop (``--concurrency N``): N workers each send the next request as soon as their
  previous one ends; a request's scheduled time is the moment a worker takes it.
- Open loop (``--rate R``): arrival times are drawn up front (seeded) from a Poisson process,
  or a gamma process with shape ``--burstiness`` (1 = Poisson, < 1 burstier); each request is
  scheduled at its arrival time whether or not earlier ones finished (``--concurrency`` then
  caps requests in flight; waiting for a slot shows as queue delay).
- ``--duration S`` stops scheduling new requests after S seconds.
- ``--workers N`` runs the same load split over N processes (requests dealt round-robin,
  concurrency and rate divided), started together behind a barrier; their records are merged.
  ``perf_counter`` is CLOCK_MONOTONIC on Linux, shared by all processes, so stamps compare.

Records land in a caller-owned list as they finish, so Ctrl-C keeps what was measured.
"""
from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import random
import time
from typing import Any

from ..interfaces import Backend, BackendConfig
from ..types import GenerationRequest, PerfRecord


def arrival_times(count: int, rate: float, burstiness: float = 1.0, seed: int = 0) -> list[float]:
    rng = random.Random(seed)
    t, out = 0.0, []
    theta = 1.0 / (rate * burstiness)
    for _ in range(count):
        t += rng.gammavariate(burstiness, theta)
        out.append(t)
    return out


async def run_load(backend: Backend, requests: list[GenerationRequest], out: list[PerfRecord], *,
                   concurrency: int | None, rate: float | None, burstiness: float = 1.0,
                   duration: float | None = None, seed: int = 0, first_index: int = 0,
                   on_done=None) -> float:
    """Send ``requests``; append finished records to ``out``; return the wall time."""
    perf = time.perf_counter
    start = perf()
    deadline = start + duration if duration else None

    async def one(i: int, req: GenerationRequest, scheduled: float) -> None:
        rec = PerfRecord(index=first_index + i, scheduled=scheduled)
        try:
            await backend.stream(req, rec)
        except asyncio.CancelledError:
            rec.end = rec.end or perf()
            rec.error = rec.error or "cancelled (interrupted)"
            out.append(rec)
            raise
        except Exception as exc:  # noqa: BLE001 - a backend bug must not end the run
            rec.end = rec.end or perf()
            rec.error = f"client error: {exc.__class__.__name__}: {exc}"[:200]
        out.append(rec)
        if on_done is not None:
            on_done(rec)

    if rate is None:
        it = iter(enumerate(requests))

        async def worker() -> None:
            for i, req in it:
                now = perf()
                if deadline is not None and now >= deadline:
                    return
                await one(i, req, now)

        await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency or 1, len(requests))))))
    else:
        sem = asyncio.Semaphore(concurrency) if concurrency else None
        tasks = []
        for i, (req, at) in enumerate(zip(requests, arrival_times(len(requests), rate, burstiness, seed))):
            scheduled = start + at
            if deadline is not None and scheduled >= deadline:
                break
            delay = scheduled - perf()
            if delay > 0:
                await asyncio.sleep(delay)

            async def gated(i=i, req=req, scheduled=scheduled) -> None:
                if sem is None:
                    await one(i, req, scheduled)
                else:
                    async with sem:
                        await one(i, req, scheduled)

            tasks.append(asyncio.ensure_future(gated()))
        await asyncio.gather(*tasks)
    return perf() - start


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


# -- several client processes --------------------------------------------------------------
def _worker_main(backend_name: str, config: BackendConfig, token_counter_spec: str | None, requests, kwargs,
                 barrier, results) -> None:
    from ..plugins import get_manager

    async def go():
        backend = get_manager().get("backends", backend_name)(config)
        await backend.start()
        if token_counter_spec and hasattr(backend, "token_counter"):
            from ..tokenizers import load_tokenizer

            backend.token_counter = load_tokenizer(token_counter_spec).count
        barrier.wait()
        out: list[PerfRecord] = []
        cpu0 = cpu_seconds()
        try:
            wall = await run_load(backend, requests, out, **kwargs)
        finally:
            await backend.close()
        return out, wall, cpu_seconds() - cpu0

    try:
        out, wall, cpu = asyncio.run(go())
        results.put(("ok", out, wall, cpu))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent as one line
        results.put(("error", f"{exc.__class__.__name__}: {exc}", 0.0, 0.0))


def run_workers(n: int, backend_name: str, config: BackendConfig, token_counter_spec: str | None,
                requests: list[GenerationRequest], out: list[PerfRecord], *, concurrency: int | None,
                rate: float | None, burstiness: float, duration: float | None, seed: int) -> tuple[float, float]:
    """Split the load over ``n`` processes; return (wall time, client CPU seconds)."""
    from ..errors import LmgaugeError

    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(n + 1)
    results = ctx.Queue()
    procs = []
    for k in range(n):
        share_c = None if concurrency is None else max(1, concurrency // n + (1 if k < concurrency % n else 0))
        kwargs: dict[str, Any] = {"concurrency": share_c, "rate": rate / n if rate else None, "burstiness": burstiness,
                                  "duration": duration, "seed": seed + k, "first_index": 0}
        subset = requests[k::n]
        p = ctx.Process(target=_worker_main, args=(backend_name, config, token_counter_spec, subset, kwargs, barrier, results),
                        daemon=True)
        p.start()
        procs.append((p, k))
    try:
        barrier.wait(timeout=120)
    except Exception:  # noqa: BLE001
        for p, _ in procs:
            p.kill()
        raise LmgaugeError("perf worker processes did not start", "try --workers 1 to see the error") from None
    t0 = time.perf_counter()
    walls, cpu = [], 0.0
    for _ in procs:
        status, payload, wall, c = results.get()
        if status != "ok":
            raise LmgaugeError(f"a perf worker process failed: {payload}")
        out.extend(payload)
        walls.append(wall)
        cpu += c
    for p, _ in procs:
        p.join(10)
    for i, rec in enumerate(sorted(out, key=lambda r: r.scheduled)):
        rec.index = i
    return max(walls) if walls else time.perf_counter() - t0, cpu
