"""The SLA frontier: the highest load (concurrency or request rate) whose level meets every
objective, found by bracketing and bisection instead of a fixed sweep.

``--sla "ttft_p99<=500ms,tpot_p90<=50ms" --sla-search concurrency|rate [--sla-range LOW:HIGH]``

- Objectives are ``METRIC_STAT OP VALUE`` for a per-request perf metric (ttft, ttfc, tpot, itl,
  latency (e2el), queue_delay, output_tps_request, … and any plugin's: lmgauge.perf.registry)
  with STAT mean, p50 … p99, max, and ``METRIC OP VALUE`` for a level metric (rps,
  output_tps, total_tps, goodput, success_rate, …). Durations (unit ``s``) take ``500ms``,
  ``0.5s``; a bare number is milliseconds.
  EvalScope's ``--sla-params '[{"p99_ttft": "<=500ms"}]'`` (groups of one or more
  criteria, met when every criterion of every group is) is read too.
- The search probes LOW first (if LOW misses, there is no frontier in range), then doubles the
  load until a probe misses, the server fails (more than half its requests fail) or saturates
  (throughput grows less than 5 % over two doublings while the SLA still holds: more load would
  only queue), or HIGH is reached; then it bisects between the last met and the first missed load
  until they are within the precision (5 % by default; concurrency stops at neighbours).
- Every probe is a level of the run (summary.json ``runs``, perf.sqlite, the report's chart).
  ``summary["sla_search"]`` = {objectives, dimension, best, stopped, probes: [{concurrency or
  rate, met, failed: [objective texts], request_throughput, ...}]}.
"""
from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass, field
from typing import Any, Iterator

from ..errors import ConfigError
from ..runfolder import PerfLevel

STATS = {"mean", "max", "min", "p10", "p25", "p50", "p66", "p75", "p80", "p90", "p95", "p98", "p99", "avg"}
OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}
_OBJ = re.compile(r"^\s*([a-z_0-9]+?)(?:_(mean|max|min|avg|p\d{2}))?\s*(<=|>=|<|>|≤|≥)\s*([0-9.eE+-]+)\s*(ms|s)?\s*$")
_EVALSCOPE_KEY = re.compile(r"^(avg|p\d{2})_([a-z_]+)$")


@dataclass
class Objective:
    text: str
    metric: str            # the metric's summary key: ttft_s, request_throughput, ...
    stat: str | None       # mean, p99 ... for per-request metrics; None for level metrics
    op: str
    value: float           # seconds for durations

    def actual(self, run: PerfLevel) -> float | None:
        return run.stat(self.metric, self.stat)

    def met(self, run: PerfLevel) -> bool:
        v = self.actual(run)
        return v is not None and OPS[self.op](v, self.value)

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "metric": self.metric, "stat": self.stat, "op": self.op, "value": self.value}


def _objective(name: str, stat: str | None, op: str, number: str, unit: str | None, text: str) -> Objective:
    """One objective on a declared perf metric (its ``--sla`` name, lmgauge.perf.registry)."""
    from .registry import sla_names

    op = {"≤": "<=", "≥": ">="}.get(op, op)
    stat = "mean" if stat == "avg" else stat
    try:
        value = float(number)
    except ValueError:
        raise ConfigError(f"--sla: {number!r} in {text!r} is not a number") from None
    names = sla_names()
    metric = names.get(name)
    if metric is None and stat is not None and f"{name}_{stat}" in names:  # a level metric named like x_p50
        metric, stat = names[f"{name}_{stat}"], None
    if metric is None:
        per_request = sorted(n for n, m in names.items() if m.kind == "request")
        level = sorted(n for n, m in names.items() if m.kind == "level")
        raise ConfigError(f"--sla: unknown metric {name!r} in {text!r}",
                          f"use {', '.join(per_request)} with a statistic (_p99, _mean, ...), or {', '.join(level)}")
    if metric.kind == "request":
        if stat is None:
            raise ConfigError(f"--sla: {text!r} needs a statistic", f"e.g. {name}_p99<=500ms or {name}_mean<=200ms")
    elif stat is not None:
        raise ConfigError(f"--sla: {name} is one number per level: drop _{stat} in {text!r}")
    if metric.unit == "s":
        value = value / 1000 if unit in (None, "ms") else value
    elif unit:
        raise ConfigError(f"--sla: {name} is not a duration: drop {unit!r} in {text!r}")
    return Objective(text, metric.summary_key, stat, op, value)


def parse_objectives(text: str | None, params: Any = None) -> list[Objective]:
    """``--sla`` text (``ttft_p99<=500ms,tpot_p90<=50ms``) and/or EvalScope's ``--sla-params``
    (JSON text or a list of {criterion: "<=2s"} groups)."""
    out: list[Objective] = []
    for part in (text or "").split(","):
        if not part.strip():
            continue
        m = _OBJ.match(part.strip().lower())
        if not m:
            raise ConfigError(f"--sla: cannot read {part.strip()!r}", "use METRIC_STAT<=VALUE, e.g. ttft_p99<=500ms,tpot_p90<=50ms")
        name, stat, op, number, unit = m.groups()
        out.append(_objective(name, stat, op, number, unit, part.strip()))
    if params:
        if isinstance(params, str):
            import orjson

            try:
                params = orjson.loads(params)
            except orjson.JSONDecodeError:
                raise ConfigError("--sla-params is not valid JSON", 'e.g. --sla-params \'[{"p99_ttft": "<=500ms"}]\'') from None
        groups = params if isinstance(params, list) else [params]
        for group in groups:
            if not isinstance(group, dict):
                raise ConfigError("--sla-params must be a JSON list of objects", 'e.g. [{"p99_ttft": "<=500ms"}]')
            for key, cond in group.items():
                m = _EVALSCOPE_KEY.match(str(key).lower())
                name, stat = (m.group(2), m.group(1)) if m else (str(key).lower(), None)
                cm = re.match(r"^\s*(<=|>=|<|>|≤|≥)\s*([0-9.eE+-]+)\s*(ms|s)?\s*$", str(cond).lower())
                if not cm:
                    raise ConfigError(f"--sla-params: cannot read {key}: {cond!r}",
                                      "lmgauge searches for the highest load meeting constraints such as \"<=500ms\"")
                out.append(_objective(name, stat, cm.group(1), cm.group(2), cm.group(3), f"{key}{cond}"))
    return out


def parse_range(text: str | None, dimension: str, low: float | None = None, high: float | None = None) -> tuple[float, float]:
    """``LOW:HIGH`` (or EvalScope's lower/upper bounds); defaults 1:1024 (concurrency) and
    0.5:512 (rate)."""
    lo, hi = (1.0, 1024.0) if dimension == "concurrency" else (0.5, 512.0)
    if text:
        a, sep, b = str(text).partition(":")
        try:
            lo, hi = float(a), float(b)
        except ValueError:
            raise ConfigError(f"--sla-range {text!r}: use LOW:HIGH", "e.g. --sla-range 1:256") from None
    lo = low if low is not None else lo
    hi = high if high is not None else hi
    if not (0 < lo <= hi):
        raise ConfigError(f"--sla-range {lo:g}:{hi:g}: need 0 < LOW ≤ HIGH")
    if dimension == "concurrency":
        lo, hi = float(max(1, round(lo))), float(max(1, round(hi)))
    return lo, hi


@dataclass
class Probe:
    load: float
    met: bool
    failed: list[str]              # the objectives it missed
    values: dict[str, float | None]  # each objective's measured value
    run: PerfLevel

    def as_dict(self, dimension: str) -> dict[str, Any]:
        return {dimension: int(self.load) if dimension == "concurrency" else self.load, "met": self.met,
                "failed": self.failed, "values": self.values,
                "request_throughput": self.run.stat("request_throughput"), "success_rate": self.run.success_rate}


@dataclass
class SLASearch:
    """Yields the loads to probe; :meth:`record` takes each probe's level summary."""

    objectives: list[Objective]
    dimension: str                    # "concurrency" | "rate"
    low: float
    high: float
    precision: float = 0.05
    probes: list[Probe] = field(default_factory=list)
    stopped: str = ""

    def _round(self, x: float) -> float:
        if self.dimension == "concurrency":
            return float(max(1, round(x)))
        return float(f"{x:.4g}")

    def record(self, load: float, run: PerfLevel) -> Probe:
        failed = [o.text for o in self.objectives if not o.met(run)]
        probe = Probe(load, not failed, failed, {o.text: o.actual(run) for o in self.objectives}, run)
        self.probes.append(probe)
        return probe

    def _close_enough(self, lo: float, hi: float) -> bool:
        if self.dimension == "concurrency":
            return hi - lo <= max(1.0, math.floor(lo * self.precision))
        return (hi - lo) <= lo * self.precision

    def loads(self) -> Iterator[float]:
        """The next load to probe, until the frontier is found (call :meth:`record` after each)."""
        lo_met: float | None = None
        hi_missed: float | None = None
        load = self._round(self.low)
        gains: list[float] = []
        # bracketing
        while True:
            yield load
            p = self.probes[-1]
            if p.run.requests and p.run.success_rate < 0.5:
                self.stopped = f"the server failed at {self.label(load)} ({1 - p.run.success_rate:.0%} of requests failed)"
                hi_missed = load
                break
            if not p.met:
                hi_missed = load
                break
            if lo_met is not None:
                prev = next(q for q in reversed(self.probes[:-1]) if q.load == lo_met)
                base = prev.run.stat("request_throughput") or 0.0
                gains.append((p.run.stat("request_throughput") or 0.0) / base if base else float("inf"))
            lo_met = load
            if len(gains) >= 2 and gains[-1] < 1.05 and gains[-2] < 1.05:
                self.stopped = (f"the server saturated: throughput grew less than 5% from {self.label(lo_met / 4)} "
                                f"to {self.label(lo_met)} with the SLA still met")
                return
            if load >= self.high:
                self.stopped = f"the upper end of the range ({self.label(self.high)}) meets the SLA"
                return
            load = self._round(min(self.high, load * 2))
        if lo_met is None:
            if not self.stopped:
                self.stopped = f"the lowest load ({self.label(load)}) misses the SLA"
            return
        # bisection between the last met and the first missed load
        while not self._close_enough(lo_met, hi_missed):
            mid = self._round((lo_met * hi_missed) ** 0.5 if hi_missed > 2 * lo_met else (lo_met + hi_missed) / 2)
            if mid <= lo_met or mid >= hi_missed:
                break
            yield mid
            if self.probes[-1].met:
                lo_met = mid
            else:
                hi_missed = mid
        if not self.stopped:
            self.stopped = f"frontier between {self.label(lo_met)} (met) and {self.label(hi_missed)} (missed)"

    @property
    def best(self) -> float | None:
        met = [p.load for p in self.probes if p.met]
        return max(met) if met else None

    def label(self, load: float | None) -> str:
        if load is None:
            return "-"
        return f"concurrency {int(load)}" if self.dimension == "concurrency" else f"rate {load:g} req/s"

    def summary(self) -> dict[str, Any]:
        best = self.best
        return {"objectives": [o.as_dict() for o in self.objectives], "dimension": self.dimension,
                "best": None if best is None else (int(best) if self.dimension == "concurrency" else best),
                "range": [self.low, self.high], "precision": self.precision, "stopped": self.stopped,
                "answer": self.answer(),
                "probes": [p.as_dict(self.dimension) for p in self.probes]}

    def answer(self) -> str:
        """The one-line answer."""
        objectives = ", ".join(o.text for o in self.objectives)
        if self.best is None:
            return f"SLA frontier ({objectives}): no load in range meets it: {self.stopped} ({len(self.probes)} probes)"
        return (f"SLA frontier ({objectives}): highest {self.dimension} that meets it: "
                f"{self.label(self.best).split(' ', 1)[1]}; {self.stopped} ({len(self.probes)} probes)")
