"""Several server endpoints behind one openai backend (``--base-url`` / ``--url`` given more
than once): which endpoint takes a request, failover, parking and probing, per-endpoint counts.

Eval (``EndpointPool.call``): each request goes to the live endpoint with the fewest requests
in flight (ties: the one that has had fewest). A failure that is the endpoint's (connection
refused or dropped, timeout, HTTP 5xx; the request function raises :class:`EndpointFailure`)
is counted, and the request goes at once to another live endpoint it has not tried. An
endpoint that fails ``park_after`` times in a row is parked: it takes no requests, and a probe
(the backend's ``GET /models``) asks it every ``probe_interval`` seconds, doubling up to
``probe_max_interval``, until it answers and rejoins. The last live endpoint is never parked:
its failures go to the caller. When every endpoint a request could use failed to connect, the
error the caller gets is marked ``unavailable`` (the eval runner stops the run after
``--max-connection-failures`` of those in a row; see docs/backends.md).

Perf (``EndpointPool.for_index``): request ``i`` goes to endpoint ``i mod E``, so a run is
exactly reproducible and the load is split evenly.

A request is sent once per endpoint at most, and only its final answer reaches the caller, so
nothing is counted twice.
"""
from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, TypeVar

from lmgauge.plugin import BackendError, redact

T = TypeVar("T")


def unavailable(error: BackendError) -> BackendError:
    """Mark ``error`` as "no endpoint can be reached" (the runner reads ``error.unavailable``)."""
    error.unavailable = True
    return error


class EndpointFailure(Exception):
    """A failure that is the endpoint's, raised by a request function: ``error`` is what the
    caller sees when no other endpoint can take the request; ``connection`` is True when the
    endpoint could not be reached or dropped the connection (not for timeouts and HTTP 5xx)."""

    def __init__(self, error: BackendError, connection: bool):
        super().__init__(error.message)
        self.error = error
        self.connection = connection


@dataclass
class Endpoint:
    """One server: ``base`` (``http://h:p/v1``) and the URL requests go to, with its counters."""

    base: str
    url: str
    in_flight: int = 0
    requests: int = 0
    ok: int = 0
    failures: int = 0
    streak: int = 0               # failures in a row
    parks: int = 0
    parked_at: float | None = None
    parked_s: float = 0.0
    latency_sum: float = 0.0
    latency_max: float = 0.0
    last_error: str | None = None
    label: str = ""               # the URL as written in records and reports (secrets redacted)

    def __post_init__(self) -> None:
        self.label = self.label or redact(self.url)

    @property
    def live(self) -> bool:
        return self.parked_at is None

    def stats(self) -> dict[str, Any]:
        parked_s = self.parked_s + (time.monotonic() - self.parked_at if self.parked_at is not None else 0.0)
        return {"url": redact(self.base), "requests": self.requests, "ok": self.ok, "failures": self.failures,
                "parked": self.parks, "parked_s": round(parked_s, 3),
                "latency_mean_s": round(self.latency_sum / self.ok, 4) if self.ok else None,
                "latency_max_s": round(self.latency_max, 4) if self.ok else None,
                "last_error": self.last_error}


def warn(text: str) -> None:
    print(f"lmgauge: warning: {text}", file=sys.stderr, flush=True)


class EndpointPool:
    """The endpoints of one backend (see the module doc). ``probe(endpoint)`` returns True
    when a parked endpoint answers again."""

    def __init__(self, endpoints: list[Endpoint], probe: Callable[[Endpoint], Awaitable[bool]], *,
                 park_after: int = 3, probe_interval: float = 1.0, probe_max_interval: float = 10.0,
                 notify: Callable[[str], None] = warn):
        self.endpoints = endpoints
        self.probe = probe
        self.park_after = park_after
        self.probe_interval = probe_interval
        self.probe_max_interval = probe_max_interval
        self.notify = notify
        self._probes: set[asyncio.Task] = set()

    def pick(self, tried: list[Endpoint]) -> Endpoint | None:
        """The live endpoint with the fewest requests in flight that is not in ``tried``."""
        best = None
        for ep in self.endpoints:
            if ep.parked_at is None and ep not in tried:
                if best is None or (ep.in_flight, ep.requests) < (best.in_flight, best.requests):
                    best = ep
        return best

    def for_index(self, index: int) -> Endpoint:
        """Perf: request ``index`` goes to endpoint ``index mod E``."""
        return self.endpoints[index % len(self.endpoints)]

    async def call(self, send: Callable[[Endpoint], Awaitable[T]]) -> T:
        """``send(endpoint)`` on the best live endpoint, then on others while it raises
        :class:`EndpointFailure`; other errors pass through at once."""
        tried: list[Endpoint] = []
        failure: EndpointFailure | None = None
        connection_only = True
        while (ep := self.pick(tried)) is not None:
            tried.append(ep)
            ep.in_flight += 1
            ep.requests += 1
            t0 = time.perf_counter()
            try:
                result = await send(ep)
            except EndpointFailure as exc:
                failure = exc
                connection_only = connection_only and exc.connection
                self.failed(ep, exc.error.line())
                continue
            finally:
                ep.in_flight -= 1
            took = time.perf_counter() - t0
            ep.ok += 1
            ep.streak = 0
            ep.latency_sum += took
            ep.latency_max = max(ep.latency_max, took)
            return result
        assert failure is not None  # the last live endpoint is never parked, so one was tried
        error = failure.error
        if len(self.endpoints) > 1:
            error = BackendError(f"{error.message} at {redact(tried[-1].base)}", error.hint,
                                 retryable=error.retryable, status=error.status)
        raise unavailable(error) if connection_only else error

    def failed(self, ep: Endpoint, why: str) -> None:
        """Count a failure of ``ep``; park it after ``park_after`` in a row, unless it is the
        last live endpoint."""
        ep.failures += 1
        ep.streak += 1
        ep.last_error = redact(why)[:200]
        if ep.streak >= self.park_after and ep.live and any(o.live for o in self.endpoints if o is not ep):
            self.park(ep, f"{ep.streak} failures in a row (last: {ep.last_error})")

    def park(self, ep: Endpoint, why: str) -> None:
        """Take ``ep`` out of rotation and probe it until it answers."""
        ep.parked_at = time.monotonic()
        ep.parks += 1
        self.notify(f"endpoint {redact(ep.base)} parked after {why}; its requests go to the others "
                    "and it is probed until it answers")
        task = asyncio.ensure_future(self._probe(ep))
        self._probes.add(task)
        task.add_done_callback(self._probes.discard)

    async def _probe(self, ep: Endpoint) -> None:
        delay = self.probe_interval
        while True:
            await asyncio.sleep(delay)
            if await self.probe(ep):
                break
            delay = min(delay * 2, self.probe_max_interval)
        assert ep.parked_at is not None
        ep.parked_s += time.monotonic() - ep.parked_at
        ep.parked_at = None
        ep.streak = 0
        self.notify(f"endpoint {redact(ep.base)} answers again and takes requests")

    def stats(self) -> list[dict[str, Any]]:
        return [ep.stats() for ep in self.endpoints]

    async def close(self) -> None:
        for task in list(self._probes):
            task.cancel()
        await asyncio.gather(*self._probes, return_exceptions=True)
        self._probes.clear()
