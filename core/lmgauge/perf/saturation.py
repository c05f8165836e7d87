"""``--stop-on-saturation``: stop a level once the server cannot keep up, and stop climbing.

**Within a level (over-saturation).** A server that keeps up with an offered load reaches a
steady state: the number of requests in the system (sent or due, not yet answered) and TTFT
fluctuate around stable values. One that cannot keep up queues: both grow for as long as the
level lasts, and every further second measures the queue, not the server. The test, run every
half second once the level has lasted long enough:

1. The window is the second half of the level so far (at least :attr:`SaturationTest.min_window_s`
   and four latencies of the level's first 20 answers: a trend needs a few request lifetimes),
   cut into 8 equal batches. Batch means remove most of
   the autocorrelation of the raw series.
2. **Queue grows:** the mean number of requests in the system per batch (sampled every 50 ms:
   requests taken from the schedule minus requests answered; client-side, so it counts
   requests waiting for an in-flight slot too) has a Mann–Kendall upward trend over the 8
   batches with one-sided p ≤ 0.001 (S ≥ 24 of 28 pairs: at most 2 of the 28 batch pairs out of
   order; exact), *and* its last batch is at least 1.5 × its first and 2 requests more.
3. **TTFT grows:** the median TTFT of the requests answered in each batch (latency for
   endpoints without TTFT; by the time of the answer, since under a growing queue the latest
   requests sent are not answered yet) has the same upward trend (p ≤ 0.001), *and* its last
   batch is at least 1.25 × its first.

Both must hold at two consecutive checks (half a second apart). A server that keeps up passes neither size condition (a
stationary series rarely grows 1.5× within one window, and never in a monotone way across 8
batches at the same time as TTFT), and a closed loop can never meet condition 2 (its in-flight
count is fixed). When the test fires, the level stops: nothing more is sent, requests in flight
are abandoned (counted in ``abandoned_in_flight``, not as failures), and ``runs[i].stopped``
says when and why. The sweep (or SLA search) does not go on to higher loads.

**Across a sweep (the knee).** A closed loop cannot over-saturate, but it stops paying off: the
sweep stops climbing after a level that raised the load by at least 1.5× for less than 5 % more
throughput while TTFT (latency without TTFT) rose by at least 20 %; the previous level is the
knee (summary.json ``saturation``).
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..runfolder import PerfLevel

BATCHES = 8
_PAIRS = BATCHES * (BATCHES - 1) // 2


def _mahonian(n: int) -> list[int]:
    """Permutations of n items by number of inversions."""
    dist = [1]
    for k in range(2, n + 1):
        new = [0] * (len(dist) + k - 1)
        for i, c in enumerate(dist):
            for j in range(k):
                new[i + j] += c
        dist = new
    return dist


_DIST = _mahonian(BATCHES)
_TOTAL = math.factorial(BATCHES)


def kendall_s(values: Sequence[float]) -> int:
    """Mann–Kendall S: concordant minus discordant pairs (i < j) against the order."""
    s = 0
    for i in range(len(values)):
        for j in range(i + 1, len(values)):
            d = values[j] - values[i]
            s += (d > 0) - (d < 0)
    return s


def trend_p(values: Sequence[float]) -> float:
    """One-sided p-value of an upward Mann–Kendall trend in 8 values (exact under no ties;
    ties only lower S, so the test stays conservative)."""
    s = kendall_s(values)
    if len(values) != BATCHES:
        raise ValueError("8 batches expected")
    inversions = (_PAIRS - s) // 2 if (_PAIRS - s) % 2 == 0 else (_PAIRS - s + 1) // 2
    return sum(_DIST[:max(0, inversions) + 1]) / _TOTAL


@dataclass
class SaturationTest:
    """The thresholds of the over-saturation test (module doc)."""

    min_window_s: float = 1.5
    latencies_per_window: float = 4.0
    alpha: float = 0.001
    confirmations: int = 2         # consecutive checks that must agree
    queue_growth: float = 1.5
    queue_step: float = 2.0
    ttft_growth: float = 1.25
    check_every_s: float = 0.5
    sample_every_s: float = 0.05


@dataclass
class SaturationDetector:
    """Fed while a level runs: :meth:`sample` (requests in the system, every 50 ms) and
    :meth:`done` (each answered request); :meth:`check` returns the verdict (a dict for
    ``PerfLevel.stopped``) once the server is over-saturated, else None. Times are
    ``perf_counter`` values; ``start`` is the level's."""

    start: float
    test: SaturationTest = field(default_factory=SaturationTest)
    samples: list[tuple[float, float]] = field(default_factory=list)   # (t, in system)
    answers: list[tuple[float, float]] = field(default_factory=list)   # (answered t, ttft)
    latencies: list[float] = field(default_factory=list)
    last: dict[str, Any] = field(default_factory=dict)
    streak: int = 0

    def sample(self, now: float, in_system: int) -> None:
        self.samples.append((now - self.start, float(in_system)))

    def done(self, rec: Any) -> None:
        if not rec.success or not rec.sent:
            return
        lat = rec.end - rec.sent if rec.end else None
        ttft = rec.first_token - rec.sent if rec.first_token is not None else lat
        if ttft is not None:
            self.answers.append(((rec.end or rec.sent) - self.start, ttft))
        if lat is not None:
            self.latencies.append(lat)

    def check(self, now: float) -> dict[str, Any] | None:
        t = now - self.start
        # the time scale of a request: the first answers' latency (later ones grow with the queue)
        lat = statistics.median(self.latencies[:20]) if self.latencies else 0.0
        window = t / 2
        if window < max(self.test.min_window_s, self.test.latencies_per_window * lat):
            return None
        lo = t - window
        width = window / BATCHES
        queue = _batch(self.samples, lo, width, statistics.fmean)
        ttft = _batch(self.answers, lo, width, statistics.median)
        if queue is None or ttft is None:
            return None
        pq, pt = trend_p(queue), trend_p(ttft)
        self.last = {"t_s": t, "queue": queue, "ttft": ttft, "p_queue": pq, "p_ttft": pt}
        grows = (pq <= self.test.alpha and queue[-1] >= self.test.queue_growth * queue[0]
                 and queue[-1] - queue[0] >= self.test.queue_step)
        slower = pt <= self.test.alpha and ttft[-1] >= self.test.ttft_growth * ttft[0]
        if not (grows and slower):
            self.streak = 0
            return None
        self.streak += 1
        if self.streak < self.test.confirmations:
            return None
        return {
            "reason": (f"over-saturated after {t:.1f} s: requests in the system grew {queue[0]:.1f} → {queue[-1]:.1f} "
                       f"and TTFT p50 {ttft[0]:.3f} → {ttft[-1]:.3f} s over the last {window:.1f} s "
                       f"(Mann–Kendall trend over 8 batches: p = {pq:.2g} and {pt:.2g})"),
            "at_s": round(t, 3), "window_s": round(window, 3), "answered": len(self.latencies),
            "in_system": [round(queue[0], 2), round(queue[-1], 2)], "ttft_s": [ttft[0], ttft[-1]],
            "p_queue": pq, "p_ttft": pt, "test": "mann-kendall-8-batches"}


def _batch(points: list[tuple[float, float]], lo: float, width: float, reduce) -> list[float] | None:
    """``reduce`` of the values in each of the 8 batches from ``lo``; None when a batch is empty."""
    buckets: list[list[float]] = [[] for _ in range(BATCHES)]
    for t, v in points:
        if t >= lo:
            k = int((t - lo) / width)
            if k < BATCHES:
                buckets[k].append(v)
    if any(not b for b in buckets):
        return None
    return [float(reduce(b)) for b in buckets]


class Counted:
    """The level's schedule, counting what the load generator has taken from it."""

    def __init__(self, items: Any):
        self.items = iter(items)
        self.taken = 0

    def __iter__(self):
        return self

    def __next__(self):
        item = next(self.items)
        self.taken += 1
        return item


async def watch(task: Any, detector: SaturationDetector, counted: Counted, answered: list[int]) -> dict[str, Any] | None:
    """Sample and test while ``task`` (the level's load) runs; cancel it when the server is
    over-saturated and return the verdict."""
    import asyncio

    test = detector.test
    next_check = time.perf_counter() + test.check_every_s
    while not task.done():
        await asyncio.sleep(test.sample_every_s)
        now = time.perf_counter()
        detector.sample(now, counted.taken - answered[0])
        if now >= next_check:
            next_check = now + test.check_every_s
            verdict = detector.check(now)
            if verdict is not None:
                task.cancel()
                return verdict
    return None


# -- across a sweep ---------------------------------------------------------------------------
def knee_stop(runs: Sequence[PerfLevel]) -> dict[str, Any] | None:
    """summary.json ``saturation`` when the last level of a sweep bought no throughput (module
    doc), else None."""
    if len(runs) < 2:
        return None
    prev, last = runs[-2], runs[-1]
    if last.stopped:
        return {"level": last.name, "reason": last.stopped.get("reason"), "kind": "over-saturated"}
    axis = "rate" if last.rate is not None else "concurrency"
    a, b = getattr(prev, axis), getattr(last, axis)
    ta, tb = prev.stat("request_throughput"), last.stat("request_throughput")
    key = "ttft_s" if last.text and last.dist("ttft_s").count else "latency_s"
    la, lb = prev.dist(key).get("p50"), last.dist(key).get("p50")
    if not all(isinstance(x, (int, float)) and x > 0 for x in (a, b, ta, tb, la, lb)):
        return None
    if b < 1.5 * a or tb >= 1.05 * ta or lb < 1.2 * la:
        return None
    what = "TTFT" if key == "ttft_s" else "latency"
    return {"level": last.name, "knee": prev.name, "kind": "knee",
            "reason": (f"{last.name} gave {tb / ta - 1:+.1%} throughput for {b / a:.2g}× the load while {what} p50 "
                       f"rose {lb / la:.2f}×: the server saturated at {prev.name}")}
