"""``lmgauge perf --workers N --ray [--ray-address ADDR]``: perf worker shards as Ray actors.

The contract is ``lmgauge.perf.loadgen.run_workers``'s: shard k of N takes requests i with
i % N == k (each actor rebuilds the same seeded request list), closed-loop concurrency is
divided, every shard starts at one common instant, and the merged records are exactly those of
a one-process run (same indices, same schedule). What differs:

- Placement: one actor per shard, one CPU each, SPREAD over the cluster's nodes.
- The common start: once every actor has started its backend, the driver picks a wall-clock
  instant ``START_MARGIN_S`` ahead; an actor on the driver's machine (same boot id: same
  CLOCK_MONOTONIC) gets it as the driver's ``perf_counter`` value, one elsewhere converts the
  wall-clock instant to its own ``perf_counter``. Each actor's timestamps are moved onto the
  driver's timeline by (driver's start - actor's start): zero on the driver's machine, the
  wall-clock (NTP) offset between machines elsewhere.
- Finished records come to the driver in batches every ``POLL_S`` while the run goes on, so a
  lost node loses only its last second and what it had in flight.
- A lost actor or node (Ray reports it dead, or it does not answer for ``SILENT_S``) does not
  end the run: every request of its shard that it never returned is counted as failed with
  ``worker lost: node IP (reason)``; with ``--duration`` these are, open loop, the arrivals
  before the end and, closed loop, the requests it had in flight. Every wait has a timeout.
- ``LoadResult.nodes``: per node, its shards, the requests it returned, failed, lost, and its
  client CPU seconds.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import LmgaugeError
from ..interfaces import BackendConfig
from ..perf.loadgen import Load, LoadResult, ShardRunner, WorkerJob, shard_load
from ..types import PerfRecord
from .cluster import boot_id, connect, node_info, short_reason

READY_TIMEOUT_S = 300.0  # actors placed and backends started
POLL_S = 1.0             # the driver collects finished records this often
SILENT_S = 30.0          # an actor that answers no call for this long is lost
START_MARGIN_S = 0.25    # from picking the start instant to it: reaches every actor first
RPC_TIMEOUT_S = 30.0


class PerfShardActor:
    """One shard in a Ray actor. Its methods are coroutines on one event loop, so Ray serves
    ``take`` while the shard runs."""

    def __init__(self, job: WorkerJob):
        self.runner = ShardRunner(job)
        self.error: str | None = None
        self.stopping = False
        self.start_at = 0.0
        self._task: asyncio.Future | None = None
        self._prepared = asyncio.Event()  # binds to the actor's event loop on first use
        self._go = asyncio.Event()

    async def _run(self) -> LoadResult | None:
        async def wait_start() -> float:
            self._prepared.set()
            await self._go.wait()
            return self.start_at

        try:
            return await self.runner.run(wait_start, lambda: self.stopping)
        except BaseException as exc:  # noqa: BLE001 - reported to the driver as one line
            line = getattr(exc, "line", None)
            self.error = line() if callable(line) else f"{exc.__class__.__name__}: {exc}"
            self._prepared.set()
            return None

    async def ready(self) -> dict[str, Any]:
        """Builds the share and starts the backend; answers once that is done (or failed),
        saying where this actor runs."""
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())
        await self._prepared.wait()
        return {**node_info(), "error": self.error}

    async def begin(self, start_wall: float, start_perf: float, same_clock: bool) -> float:
        """Start at the common instant; returns it as this actor's ``perf_counter`` value."""
        self.start_at = start_perf if same_clock else start_wall - (time.time() - time.perf_counter())
        self._go.set()
        return self.start_at

    async def take(self, wait_s: float) -> tuple[list[PerfRecord], list[int], dict[str, Any] | None]:
        """Waits up to ``wait_s`` for the shard to end, then returns the records finished since
        the last call, the indices in flight, and (once ended) the shard's totals."""
        if not self._task.done():
            await asyncio.wait({self._task}, timeout=wait_s)
        final = None
        if self._task.done():
            result = self._task.result()
            final = {"error": self.error} if result is None else {
                "wall_s": result.wall_s, "cpu_s": result.cpu_s, "interrupted": result.interrupted,
                "abandoned": result.abandoned}
        return self.runner.take(), sorted(self.runner.active), final

    async def stop(self) -> None:
        self.stopping = True


@dataclass
class _Shard:
    k: int
    actor: Any
    info: dict[str, Any] = field(default_factory=dict)
    shift: float = 0.0                    # added to the actor's perf_counter values: the driver's
    records: list[PerfRecord] = field(default_factory=list)
    active: list[int] = field(default_factory=list)
    take_ref: Any = None                  # the take() in flight
    retry_at: float = 0.0                 # monotonic: when to ask again after "unreachable"
    last_answer: float = 0.0
    unreachable: str | None = None
    final: dict[str, Any] | None = None
    lost: str | None = None               # why, when lost
    lost_at: float = 0.0                  # driver perf_counter

    @property
    def finished(self) -> bool:
        return self.final is not None or self.lost is not None


def run_ray_workers(n: int, backend_name: str, config: BackendConfig, tokenizer_spec: str | None, source: Any,
                    load: Load, address: str | None = None, *, ready_timeout: float = READY_TIMEOUT_S,
                    poll_s: float = POLL_S, silent_s: float = SILENT_S) -> LoadResult:
    """Split ``load`` over ``n`` Ray actors and merge their records on this process's clock
    (see the module docstring). Ctrl-C stops every shard and keeps what finished."""
    ray, own = connect(address)
    actor_cls = ray.remote(PerfShardActor)
    shards: list[_Shard] = []
    try:
        for k in range(n):
            job = WorkerJob(backend_name, config, shard_load(load, n, k), source, tokenizer_spec)
            actor = actor_cls.options(num_cpus=1, scheduling_strategy="SPREAD", max_restarts=0,
                                      max_task_retries=0).remote(job)
            shards.append(_Shard(k, actor))
        _await_ready(ray, shards, ready_timeout)
        here = boot_id()
        start_wall = time.time() + START_MARGIN_S
        start_perf = start_wall - (time.time() - time.perf_counter())
        refs = [s.actor.begin.remote(start_wall, start_perf, here is not None and s.info["boot_id"] == here)
                for s in shards]
        try:
            starts = ray.get(refs, timeout=RPC_TIMEOUT_S)
        except ray.exceptions.RayError as exc:
            raise LmgaugeError(f"a Ray perf actor did not start: {short_reason(exc)}") from None
        for s, at in zip(shards, starts):
            s.shift = start_perf - at
            s.last_answer = time.monotonic()
        interrupted = _collect(ray, shards, poll_s, silent_s)
    finally:
        for s in shards:
            try:
                ray.kill(s.actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        if own:
            ray.shutdown()
    return _merge(shards, load, n, start_perf, interrupted)


def _await_ready(ray: Any, shards: list[_Shard], timeout: float) -> None:
    waiting = {s.actor.ready.remote(): s for s in shards}
    deadline = time.monotonic() + timeout
    while waiting:
        done, _ = ray.wait(list(waiting), num_returns=1, timeout=max(0.0, deadline - time.monotonic()))
        if not done:
            total = ray.cluster_resources().get("CPU", 0)
            free = ray.available_resources().get("CPU", 0)
            raise LmgaugeError(f"{len(waiting)} of {len(shards)} Ray perf actors not ready after {timeout:.0f} s "
                               f"(each needs 1 CPU; the cluster has {free:g} free of {total:g})",
                               "use fewer --workers or add nodes")
        s = waiting.pop(done[0])
        try:
            s.info = ray.get(done[0], timeout=RPC_TIMEOUT_S)
        except ray.exceptions.RayError as exc:
            raise LmgaugeError(f"a Ray perf actor failed to start: {short_reason(exc)}") from None
        if s.info.get("error"):
            raise LmgaugeError(f"a perf worker on node {s.info['ip']} failed: {s.info['error']}")


def _collect(ray: Any, shards: list[_Shard], poll_s: float, silent_s: float) -> bool:
    """Ask every shard for its finished records (each ask waits up to ``poll_s`` in the actor)
    until each has ended or is lost. Returns whether the run was interrupted (Ctrl-C)."""
    pending: dict[Any, _Shard] = {}
    interrupted = False
    stop_deadline: float | None = None
    while not all(s.finished for s in shards):
        try:
            now = time.monotonic()
            for s in shards:
                if s.finished:
                    continue
                if now - s.last_answer > silent_s:
                    _lose(s, f"{s.unreachable or 'no answer'} for {silent_s:.0f} s", pending)
                elif stop_deadline is not None and now > stop_deadline:
                    _lose(s, "did not stop", pending)
                elif s.take_ref is None and now >= s.retry_at:
                    s.take_ref = s.actor.take.remote(poll_s)
                    pending[s.take_ref] = s
            if not pending:
                time.sleep(min(poll_s, 0.2))
                continue
            done, _ = ray.wait(list(pending), num_returns=1, timeout=poll_s)
            for ref in done:
                s = pending.pop(ref)
                s.take_ref = None
                try:
                    records, s.active, final = ray.get(ref, timeout=RPC_TIMEOUT_S)
                except ray.exceptions.ActorUnavailableError as exc:
                    # perhaps a network blip: lost once Ray says it died, or after silent_s
                    s.unreachable = short_reason(exc)
                    s.retry_at = time.monotonic() + poll_s
                    continue
                except ray.exceptions.RayError as exc:
                    _lose(s, short_reason(exc), pending)
                    continue
                s.last_answer = time.monotonic()
                s.unreachable = None
                s.records.extend(records)
                if final is not None and final.get("error"):
                    raise LmgaugeError(f"a perf worker on node {s.info['ip']} failed: {final['error']}")
                s.final = final
        except KeyboardInterrupt:
            if interrupted:
                raise
            interrupted = True
            stop_deadline = time.monotonic() + 60
            for s in shards:
                if not s.finished:
                    s.actor.stop.remote()
    return interrupted


def _lose(s: _Shard, reason: str, pending: dict[Any, _Shard]) -> None:
    s.lost = reason
    s.lost_at = time.perf_counter()
    if s.take_ref is not None:
        pending.pop(s.take_ref, None)
        s.take_ref = None


def _shift(rec: PerfRecord, d: float) -> None:
    rec.scheduled += d
    rec.sent += d
    rec.end += d
    if rec.first_token is not None:
        rec.first_token += d
    if rec.first_content is not None:
        rec.first_content += d
    rec.chunk_times[:] = [t + d for t in rec.chunk_times]


def _lost_indices(s: _Shard, load: Load, n: int, interrupted: bool) -> list[tuple[int, float | None]]:
    """(index, arrival offset or None) of the requests shard ``s`` would have sent and never
    returned."""
    returned = {r.index for r in s.records}
    # what was in flight is all that can be named when the plan cannot be rebuilt here: a stop,
    # a closed loop bounded by --duration, a trace replay or sessions (they need the dataset)
    if interrupted or load.timed or (load.duration is not None and not (load.rate or load.ramp)):
        return [(i, None) for i in s.active if i not in returned]
    out: list[tuple[int, float | None]] = []
    times = load.offsets() if (load.rate or load.ramp) else None
    for i in range(load.count):
        at = next(times) if times is not None else None
        if load.duration is not None and at is not None and at >= load.duration:
            break
        if i % n == s.k and i not in returned:
            out.append((i, at))
    return out


def _merge(shards: list[_Shard], load: Load, n: int, start_perf: float, interrupted: bool) -> LoadResult:
    merged = LoadResult(started=start_perf, interrupted=interrupted)
    nodes: dict[str, dict[str, Any]] = {}
    for s in shards:
        if s.shift:
            for rec in s.records:
                _shift(rec, s.shift)
        merged.records.extend(s.records)
        node = nodes.setdefault(s.info["node_id"], {"node_id": s.info["node_id"], "ip": s.info["ip"],
                                                    "host": s.info["host"], "shards": [], "requests": 0,
                                                    "failed": 0, "lost": 0, "cpu_s": 0.0, "lost_reason": None})
        node["shards"].append(s.k)
        node["requests"] += len(s.records)
        node["failed"] += sum(1 for r in s.records if not r.success)
        if s.final is not None:
            merged.wall_s = max(merged.wall_s, s.final["wall_s"])
            merged.cpu_s += s.final["cpu_s"]
            merged.interrupted = merged.interrupted or s.final["interrupted"]
            merged.abandoned += s.final["abandoned"]
            node["cpu_s"] += s.final["cpu_s"]
            continue
        reason = f"worker lost: node {s.info['ip']} ({s.lost})"
        node["lost_reason"] = s.lost
        node["cpu_s"] = None  # what a lost node spent is unknown
        merged.wall_s = max(merged.wall_s, s.lost_at - start_perf)
        for i, at in _lost_indices(s, load, n, interrupted):
            when = start_perf + at if at is not None else s.lost_at
            merged.records.append(PerfRecord(index=i, scheduled=when, sent=when, end=max(when, s.lost_at),
                                             success=False, error=reason))
            node["lost"] += 1
    merged.records.sort(key=lambda r: r.index)
    merged.nodes = list(nodes.values())
    return merged


def describe_nodes(nodes: list[dict[str, Any]]) -> list[str]:
    """One line per node for the terminal: its share and client CPU."""
    lines = []
    for nd in nodes:
        cpu = "unknown (lost)" if nd["cpu_s"] is None else f"{nd['cpu_s']:.2f} s"
        line = (f"node {nd['ip']} {nd['node_id'][:8]} ({nd['host']}): shards {','.join(map(str, nd['shards']))}, "
                f"{nd['requests']} requests returned, {nd['failed']} failed, client CPU {cpu}")
        if nd["lost_reason"]:
            line += f"; LOST ({nd['lost_reason']}): {nd['lost']} requests counted as failed"
        lines.append(line)
    return lines
