"""The load generator.

- Closed loop (``--concurrency N``): N client loops each send the next request as soon as their
  previous one ends; a request's scheduled time is the moment a loop takes it.
- Open loop (``--rate R``): arrival times come from a seeded Poisson process, or a gamma
  process with shape ``--burstiness`` (1 = Poisson, < 1 burstier, > 1 more regular); each
  request is scheduled at its arrival time whether or not earlier ones finished (one
  ``--concurrency`` value then caps requests in flight: waiting for a slot is queue delay).
- Ramp (``--ramp-up linear|exponential``): an open loop whose rate moves from A to B req/s
  over the level (the level's ``--duration``, or the time its ``--number`` requests take):
  unit-rate gamma arrivals (``--burstiness``) mapped through the inverse of the ramp's
  cumulative rate, so the expected rate at time t is the ramp's rate at t.
- Own send offsets (trace replay): a request (or session) whose ``at`` is set is sent at that
  offset from the start in open-loop mode (``Load.timed``).
- Sessions (multi-turn): a dataset may yield :class:`lmgauge.types.Session` objects. A session
  is one unit of the loop (a closed-loop client, an open-loop arrival, one slot of the
  in-flight cap); its turns go out one after another, each with the whole history: earlier
  user messages and the server's real answers (``record.output_text``). Turn k+1 is scheduled
  ``think_time`` after turn k ended; a failed turn ends its session. ``--number`` counts
  sessions; record indices count turns (session by session, in order), and every record
  carries ``session``, ``turn`` and ``turns``.
- ``--duration S`` stops scheduling new requests (turns) S seconds after the start; requests
  in flight finish.
- ``--workers N`` runs the same load in N processes: request (or session) i (and, open loop,
  its arrival time) goes to process i mod N, closed-loop concurrency is divided, every process rebuilds the
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
import math
import multiprocessing as mp
import os
import random
import signal
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable, Iterator

from ..interfaces import Backend, BackendConfig
from ..subprocs import exit_with_parent, ignore_further_interrupts
from ..types import GenerationRequest, PerfRecord, Session

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


RAMPS = ("linear", "exponential")


@dataclass(frozen=True)
class Ramp:
    """A request rate moving from ``start`` to ``end`` req/s over ``span`` seconds (linearly,
    or exponentially: by the same factor every second); after ``span`` it stays at ``end``."""

    kind: str
    start: float
    end: float
    span: float

    @classmethod
    def for_count(cls, kind: str, start: float, end: float, count: int) -> "Ramp":
        """The ramp whose first ``count`` expected arrivals take exactly its span."""
        if kind == "exponential" and start != end:
            k = end / start
            return cls(kind, start, end, count * math.log(k) / (start * (k - 1)))
        return cls(kind, start, end, 2 * count / (start + end))

    def rate_at(self, t: float) -> float:
        if t >= self.span:
            return self.end
        x = t / self.span
        if self.kind == "exponential":
            return self.start * (self.end / self.start) ** x
        return self.start + (self.end - self.start) * x

    def expected(self, t: float) -> float:
        """Expected arrivals in [0, t] (the integral of the rate)."""
        a, b, span = self.start, self.end, self.span
        if t > span:
            return self.expected(span) + b * (t - span)
        if self.kind == "exponential" and a != b:
            k = b / a
            return a * span * (k ** (t / span) - 1) / math.log(k)
        return a * t + (b - a) * t * t / (2 * span)

    def time_of(self, u: float) -> float:
        """The inverse of :meth:`expected`: when ``u`` arrivals are expected."""
        a, b, span = self.start, self.end, self.span
        total = self.expected(span)
        if u > total:
            return span + (u - total) / b
        if self.kind == "exponential" and a != b:
            k = b / a
            return span * math.log1p(u * math.log(k) / (a * span)) / math.log(k)
        c = (b - a) / (2 * span)  # c t^2 + a t - u = 0, in the form that is stable for c -> 0
        return 2 * u / (a + math.sqrt(max(0.0, a * a + 4 * c * u)))


def ramp_arrivals(ramp: Ramp, burstiness: float = 1.0, seed: int = 0) -> Iterator[float]:
    """Arrival offsets following ``ramp``: a unit-rate gamma process (shape ``burstiness``)
    mapped through the ramp's inverse cumulative rate (time rescaling)."""
    return (ramp.time_of(u) for u in arrivals(1.0, burstiness, seed))


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
    ramp: Ramp | None = None         # open loop with a rate that moves (rate is then None)
    timed: bool = False              # open loop at the requests' own offsets (trace replay)

    @property
    def open_loop(self) -> bool:
        return bool(self.rate or self.ramp or self.timed)

    def offsets(self) -> Iterator[float | None]:
        """Arrival offsets of an open loop paced by rate or ramp (``None`` for each request
        otherwise)."""
        if self.ramp is not None:
            return ramp_arrivals(self.ramp, self.burstiness, self.seed)
        if self.rate:
            return arrivals(self.rate, self.burstiness, self.seed)
        return itertools.repeat(None)


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


@dataclass
class PlannedSession:
    """A session as scheduled: its turns' records get indices ``first``, ``first + 1``, ..."""

    session: Session
    first: int


Item = GenerationRequest | PlannedSession


def schedule(load: Load, requests: Iterable[GenerationRequest | Session]) -> Iterator[tuple[int, Item, float | None]]:
    """(global index, request or planned session, arrival offset or None) for this process's
    share. A request's or session's own ``at`` replaces the paced arrival offset. Sessions are
    numbered in order and sharded by that number; their turns' record indices are laid out
    over every session, so a shard's indices are those of a one-process run."""
    items = zip(range(load.count), requests, load.offsets())

    def planned() -> Iterator[tuple[int, Item, float | None]]:
        first = 0
        for i, item, at in items:
            own = item.at
            if own is not None:
                at = own
            if isinstance(item, Session):
                yield i, PlannedSession(item, first), at
                first += len(item.turns)
            else:
                yield i, item, at

    out = planned()
    if load.shards > 1:
        out = (x for x in out if x[0] % load.shards == load.shard)
    return out


def prebuilt(items: Iterator[Any], n: int = PREBUILD) -> Iterator[Any]:
    """Build the first ``n`` items now (before the clock starts), the rest on demand."""
    head = list(itertools.islice(items, n))
    return itertools.chain(head, items)


async def run_load(backend: Backend, items: Iterable[tuple[int, Item, float | None]], load: Load,
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


def turn_request(history: list[dict[str, str]], turn: GenerationRequest, session: int, k: int) -> GenerationRequest:
    """Turn ``k`` as sent: the history so far, then what the turn adds (the prompt of a
    completions endpoint is the messages' text, one per line)."""
    messages = history + list(turn.messages or [{"role": "user", "content": turn.prompt or ""}])
    text = "\n".join(str(m.get("content", "")) for m in messages)
    return GenerationRequest(messages=messages, prompt=text, params=turn.params, id=f"{session}.{k}")


async def _run_load(backend: Backend, items: Iterable[tuple[int, Item, float | None]], load: Load,
                    result: LoadResult, start_at: float | None,
                    on_done: Callable[[PerfRecord], None] | None, active: set[int]) -> LoadResult:
    perf = time.perf_counter
    # worker processes anchor their schedule to the agreed instant, so shards line up exactly
    start = result.started = start_at if start_at is not None else perf()
    deadline = start + load.duration if load.duration else None
    out = result.records
    inflight: set[asyncio.Task] = set()
    cpu0 = cpu_seconds()

    async def one(i: int, req: GenerationRequest, scheduled: float, session: int | None = None,
                  turn: int | None = None, turns: int | None = None) -> PerfRecord:
        rec = PerfRecord(index=i, scheduled=scheduled, session=session, turn=turn, turns=turns)
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
        return rec

    async def conversation(number: int, planned: PlannedSession, scheduled: float) -> None:
        s = planned.session
        history: list[dict[str, str]] = []
        answered = 0.0  # when the previous turn's answer ended
        for k, turn in enumerate(s.turns):
            if k:
                scheduled = answered + s.think_time
                if deadline is not None and scheduled >= deadline:
                    return
                delay = scheduled - perf()
                if delay > 0:
                    await asyncio.sleep(delay)
            req = turn_request(history, turn, number, k)
            rec = await one(planned.first + k, req, scheduled, number, k + 1, len(s.turns))
            if not rec.success:
                return
            answered = rec.end
            history = req.messages + [{"role": "assistant", "content": rec.output_text}]

    async def send(i: int, item: Item, scheduled: float) -> None:
        if isinstance(item, PlannedSession):
            await conversation(i, item, scheduled)
        else:
            await one(i, item, scheduled)

    it = iter(items)

    async def closed_loop_client() -> None:
        for i, item, _ in it:
            now = perf()
            if deadline is not None and now >= deadline:
                return
            await send(i, item, now)

    async def open_loop() -> None:
        sem = asyncio.Semaphore(load.concurrency) if load.concurrency else None

        async def gated(i: int, item: Item, scheduled: float) -> None:
            if sem is None:
                await send(i, item, scheduled)
            else:
                async with sem:
                    await send(i, item, scheduled)

        for i, item, at in it:
            scheduled = start + at if at is not None else perf()
            if deadline is not None and scheduled >= deadline:
                break
            delay = scheduled - perf()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.ensure_future(gated(i, item, scheduled))
            inflight.add(task)
            task.add_done_callback(inflight.discard)
        while inflight:
            await asyncio.gather(*list(inflight))

    try:
        if load.open_loop:
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
            rec.prompt_tokens = sum(count(t) for t in req.input_texts())  # text only, never image data


def run_in_loop(loop: asyncio.AbstractEventLoop, coro_factory: Callable[[LoadResult], Any]) -> LoadResult:
    """Run one level in ``loop``; the first Ctrl-C cancels it gracefully (what finished is
    kept), a second one interrupts at once."""
    result = LoadResult()
    task = loop.create_task(coro_factory(result))
    hits = {"n": 0}

    def on_sigint() -> None:
        hits["n"] += 1
        if hits["n"] == 1:
            task.cancel()  # stop scheduling; what finished is kept (a second Ctrl-C is ignored)
            ignore_further_interrupts()

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
    source: Any               # lmgauge.perf.source.RequestSource
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
        backend.use_tokenizer(tok)  # exactly as one process: tokens the server does not report are counted
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
