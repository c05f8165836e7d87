"""The load generator.

- Closed loop (``--concurrency N``): N client loops each send the next request as soon as their
  previous one ends; a request's scheduled time is the moment a loop takes it.
- Open loop (``--rate R``): arrival times come from a seeded Poisson process, or a gamma
  process with shape ``--burstiness`` (1 = Poisson, < 1 burstier, > 1 more regular); each
  request is scheduled at its arrival time whether or not earlier ones finished (one
  ``--concurrency`` value then caps requests in flight: waiting for a slot is queue delay).
- ``--duration S`` stops scheduling new requests S seconds after the start; requests in flight
  finish.
- ``--workers N`` runs the same load in N processes: request i (and, open loop, its arrival
  time) goes to process i mod N, closed-loop concurrency is divided, every process rebuilds the
  same seeded request list and takes its share, and all start at one agreed
  ``perf_counter`` instant (CLOCK_MONOTONIC on Linux: one clock for all processes). Merged
  records are exactly those of a one-process run: same indices, same schedule.
- Ctrl-C stops scheduling, abandons requests in flight (they are not counted) and returns what
  finished; with workers the parent tells the processes to stop and collects their records.
"""
from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import multiprocessing as mp
import os
import random
import signal
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable, Iterator

from ..interfaces import Backend, BackendConfig
from ..subprocs import exit_with_parent
from ..types import GenerationRequest, PerfRecord

PREBUILD = 20_000  # requests built before the clock starts (the rest lazily)


def arrivals(rate: float, burstiness: float = 1.0, seed: int = 0) -> Iterator[float]:
    """Arrival offsets (seconds from the start) of an open-loop run: gamma-distributed gaps
    with shape ``burstiness`` and mean ``1/rate`` (shape 1 = exponential = Poisson)."""
    rng = random.Random(seed)
    theta = 1.0 / (rate * burstiness)
    t = 0.0
    while True:
        t += rng.gammavariate(burstiness, theta)
        yield t


def arrival_times(count: int, rate: float, burstiness: float = 1.0, seed: int = 0) -> list[float]:
    return list(itertools.islice(arrivals(rate, burstiness, seed), count))


@dataclass
class Load:
    """One level of a sweep, as the load generator sees it (picklable)."""

    count: int                       # requests (upper bound when duration is set)
    concurrency: int | None = None   # closed loop, or the in-flight cap of an open loop
    rate: float | None = None        # open loop when set
    burstiness: float = 1.0
    duration: float | None = None
    seed: int = 0
    shard: int = 0                   # this process takes requests i with i % shards == shard
    shards: int = 1


@dataclass
class LoadResult:
    records: list[PerfRecord] = field(default_factory=list)
    wall_s: float = 0.0
    cpu_s: float = 0.0
    interrupted: bool = False
    abandoned: int = 0               # requests in flight when interrupted (not counted)
    started: float = 0.0             # perf_counter() at the start of the level
    nodes: list[dict] = field(default_factory=list)  # --ray: each node's share (lmgauge.scale.ray_perf)


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def schedule(load: Load, requests: Iterable[GenerationRequest]) -> Iterator[tuple[int, GenerationRequest, float | None]]:
    """(global index, request, arrival offset or None) for this process's share."""
    times: Iterable[float | None] = arrivals(load.rate, load.burstiness, load.seed) if load.rate else itertools.repeat(None)
    items = zip(range(load.count), requests, times)
    if load.shards > 1:
        items = (x for x in items if x[0] % load.shards == load.shard)
    return items


def prebuilt(items: Iterator[Any], n: int = PREBUILD) -> Iterator[Any]:
    """Build the first ``n`` items now (before the clock starts), the rest on demand."""
    head = list(itertools.islice(items, n))
    return itertools.chain(head, items)


async def run_load(backend: Backend, items: Iterable[tuple[int, GenerationRequest, float | None]], load: Load,
                   result: LoadResult, *, start_at: float | None = None,
                   on_done: Callable[[PerfRecord], None] | None = None, active: set[int] | None = None) -> LoadResult:
    """Send the scheduled requests; finished records land in ``result.records`` as they end
    (``active``, when given, holds the indices in flight). Cancelling the task running this
    (Ctrl-C) returns what finished."""
    perf = time.perf_counter
    with quiet_gc():
        if start_at is not None and start_at > perf():
            await asyncio.sleep(start_at - perf())
        return await _run_load(backend, items, load, result, start_at, on_done, set() if active is None else active)


@contextlib.contextmanager
def quiet_gc() -> Iterator[None]:
    """Fewer, shorter garbage-collector pauses while requests are timed: what exists before the
    run is frozen (never scanned again) and collections run less often. A pause would delay
    every timestamp taken during it. Restored afterwards."""
    gc.collect()
    gc.freeze()
    threshold = gc.get_threshold()
    gc.set_threshold(50_000, 50, 1000)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


async def _run_load(backend: Backend, items: Iterable[tuple[int, GenerationRequest, float | None]], load: Load,
                    result: LoadResult, start_at: float | None,
                    on_done: Callable[[PerfRecord], None] | None, active: set[int]) -> LoadResult:
    perf = time.perf_counter
    # worker processes anchor their schedule to the agreed instant, so shards line up exactly
    start = result.started = start_at if start_at is not None else perf()
    deadline = start + load.duration if load.duration else None
    out = result.records
    inflight: set[asyncio.Task] = set()
    cpu0 = cpu_seconds()

    async def one(i: int, req: GenerationRequest, scheduled: float) -> None:
        rec = PerfRecord(index=i, scheduled=scheduled)
        rec._request = req  # type: ignore[attr-defined]  # for prompt-token counting afterwards
        active.add(i)
        try:
            await backend.stream(req, rec)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a backend bug must not end the run
            rec.end = rec.end or perf()
            rec.error = f"client error: {exc.__class__.__name__}: {exc}"[:200]
        active.discard(i)
        out.append(rec)
        if on_done is not None:
            on_done(rec)

    it = iter(items)

    async def closed_loop_client() -> None:
        for i, req, _ in it:
            now = perf()
            if deadline is not None and now >= deadline:
                return
            await one(i, req, now)

    async def open_loop() -> None:
        sem = asyncio.Semaphore(load.concurrency) if load.concurrency else None

        async def gated(i: int, req: GenerationRequest, scheduled: float) -> None:
            if sem is None:
                await one(i, req, scheduled)
            else:
                async with sem:
                    await one(i, req, scheduled)

        for i, req, at in it:
            scheduled = start + at
            if deadline is not None and scheduled >= deadline:
                break
            delay = scheduled - perf()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.ensure_future(gated(i, req, scheduled))
            inflight.add(task)
            task.add_done_callback(inflight.discard)
        while inflight:
            await asyncio.gather(*list(inflight))

    try:
        if load.rate:
            await open_loop()
        else:
            n_clients = max(1, min(load.concurrency or 1, load.count))
            clients = [asyncio.ensure_future(closed_loop_client()) for _ in range(n_clients)]
            inflight.update(clients)
            await asyncio.gather(*clients)
    except asyncio.CancelledError:
        result.interrupted = True
        pending = [t for t in inflight if not t.done()]
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        result.abandoned = len(active)
    result.wall_s = perf() - start
    result.cpu_s = cpu_seconds() - cpu0
    return result


def count_prompt_tokens(records: list[PerfRecord], count: Callable[[str], int] | None) -> None:
    """Fill ``prompt_tokens`` the server did not report (after the run, off the clock)."""
    for rec in records:
        req = rec.__dict__.pop("_request", None)
        if rec.prompt_tokens is None and count is not None and req is not None and rec.success:
            if req.messages is not None:
                text = "\n".join(str(m.get("content", "")) for m in req.messages)
            else:
                text = req.prompt or ""
            rec.prompt_tokens = count(text)


def run_in_loop(loop: asyncio.AbstractEventLoop, coro_factory: Callable[[LoadResult], Any]) -> LoadResult:
    """Run one level in ``loop``; the first Ctrl-C cancels it gracefully (what finished is
    kept), a second one interrupts at once."""
    result = LoadResult()
    task = loop.create_task(coro_factory(result))
    hits = {"n": 0}

    def on_sigint() -> None:
        hits["n"] += 1
        if hits["n"] == 1:
            task.cancel()
        else:
            raise KeyboardInterrupt

    installed = False
    try:
        loop.add_signal_handler(signal.SIGINT, on_sigint)
        installed = True
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread / platform
        pass
    try:
        loop.run_until_complete(task)
    finally:
        if installed:
            loop.remove_signal_handler(signal.SIGINT)
    return result


# -- several client processes --------------------------------------------------------------
@dataclass
class WorkerJob:
    """What a client process needs to rebuild its share of the load (picklable)."""

    backend: str
    config: BackendConfig
    load: Load
    source: Any               # lmgauge.perf.cli.RequestSource
    tokenizer_spec: str | None


class ShardRunner:
    """The body of one shard, the same in a local worker process and in a Ray actor
    (lmgauge.scale.ray_perf): rebuild the seeded requests and take this shard's share, start
    the backend, wait for the common start instant, send, and fill prompt tokens off the clock.
    ``take()`` hands over the records finished since the last call (a Ray actor does so while
    the run goes on, so that little is lost with a lost node)."""

    def __init__(self, job: WorkerJob):
        self.job = job
        self.result = LoadResult()
        self.active: set[int] = set()  # indices in flight (what a lost shard was sending)
        self._count: Callable[[str], int] | None = None
        self._taken = 0

    async def run(self, wait_start: Callable[[], Awaitable[float]], should_stop: Callable[[], bool]) -> LoadResult:
        """``wait_start`` is awaited once the backend is up; it returns the start instant as a
        ``perf_counter`` value. ``should_stop`` is polled every 50 ms (Ctrl-C in the parent)."""
        from ..plugins import get_manager
        from ..tokenizers import load_tokenizer

        job = self.job
        tok = load_tokenizer(job.tokenizer_spec) if job.tokenizer_spec else None
        self._count = tok.count if tok is not None else None
        items = prebuilt(schedule(job.load, job.source.requests(tok, job.load.count)))
        backend = get_manager().get("backends", job.backend)(job.config)
        await backend.start()
        if tok is not None and hasattr(backend, "token_counter"):
            backend.token_counter = tok.count
        try:
            start_at = await wait_start()
            main = asyncio.ensure_future(run_load(backend, items, job.load, self.result, start_at=start_at,
                                                  active=self.active))
            while not main.done():
                if should_stop():
                    main.cancel()
                    break
                await asyncio.wait({main}, timeout=0.05)
            await asyncio.gather(main, return_exceptions=True)
        finally:
            await backend.close()
        count_prompt_tokens(self.result.records, self._count)
        return self.result

    def take(self) -> list[PerfRecord]:
        """Records finished since the last call, prompt tokens filled."""
        batch = self.result.records[self._taken:]
        self._taken += len(batch)
        count_prompt_tokens(batch, self._count)
        return batch


def _worker_main(job: WorkerJob, ready, start_at, stop, results) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    exit_with_parent()
    try:
        async def wait_start() -> float:
            ready.wait()  # every process is ready: the parent now sets start_at
            ready.wait()
            return start_at.value

        result = asyncio.run(ShardRunner(job).run(wait_start, stop.is_set))
        results.put(("ok", job.load.shard, result))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent as one line
        try:
            ready.abort()
        except Exception:  # noqa: BLE001
            pass
        line = getattr(exc, "line", None)
        results.put(("error", job.load.shard, line() if callable(line) else f"{exc.__class__.__name__}: {exc}"))


def shard_load(load: Load, n: int, k: int) -> Load:
    """Shard ``k`` of ``n``: requests i with i % n == k, closed-loop concurrency divided."""
    from dataclasses import replace

    conc = None if load.concurrency is None else max(1, load.concurrency // n + (1 if k < load.concurrency % n else 0))
    return replace(load, concurrency=conc, shard=k, shards=n)


def run_workers(n: int, backend_name: str, config: BackendConfig, tokenizer_spec: str | None, source: Any,
                load: Load) -> LoadResult:
    """Split ``load`` over ``n`` processes; merge their records (sorted by index). Wall time is
    the longest process's; CPU is the sum over processes."""
    from ..errors import LmgaugeError

    ctx = mp.get_context("spawn")
    ready = ctx.Barrier(n + 1)
    start_at = ctx.Value("d", 0.0)
    stop = ctx.Event()
    results = ctx.Queue()
    procs = []
    for k in range(n):
        job = WorkerJob(backend_name, config, shard_load(load, n, k), source, tokenizer_spec)
        p = ctx.Process(target=_worker_main, args=(job, ready, start_at, stop, results), daemon=True)
        p.start()
        procs.append(p)
    merged = LoadResult()
    got: dict[int, Any] = {}
    try:
        try:
            ready.wait(timeout=300)
        except Exception:  # noqa: BLE001 - broken barrier: a process failed to start
            for _ in range(n):
                try:
                    status, shard, payload = results.get(timeout=10)
                except Exception:  # noqa: BLE001
                    break
                if status == "error":
                    raise LmgaugeError(f"a perf worker process failed: {payload}") from None
            raise LmgaugeError("perf worker processes did not start", "try --workers 1 to see the error") from None
        start_at.value = time.perf_counter() + 0.05
        ready.wait(timeout=60)
        try:
            while len(got) < n:
                status, shard, payload = results.get()
                got[shard] = (status, payload)
        except KeyboardInterrupt:
            stop.set()
            merged.interrupted = True
            while len(got) < n:
                try:
                    status, shard, payload = results.get(timeout=60)
                except Exception:  # noqa: BLE001
                    break
                got[shard] = (status, payload)
    finally:
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.kill()
    for status, payload in got.values():
        if status != "ok":
            raise LmgaugeError(f"a perf worker process failed: {payload}")
        merged.records.extend(payload.records)
        merged.wall_s = max(merged.wall_s, payload.wall_s)
        merged.cpu_s += payload.cpu_s
        merged.interrupted = merged.interrupted or payload.interrupted
        merged.abandoned += payload.abandoned
        merged.started = min(merged.started or payload.started, payload.started)
    merged.records.sort(key=lambda r: r.index)
    return merged
