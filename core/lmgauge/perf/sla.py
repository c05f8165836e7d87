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
- The search probes LOW first (if LOW misses, there is no frontier in range), then climbs until a
  probe misses, the server fails (more than half its requests fail), is over-saturated
  (``--stop-on-saturation`` stopped the probe) or saturates (throughput grows less than 5 % over
  two steps while the SLA still holds: more load would only queue), or HIGH is reached. Each step
  doubles the load, unless the last two met probes extrapolate (a straight line through their
  *violations*, below) to a crossing of the objective: then it goes to that crossing, at most 4×
  the load and at least one precision step above it (a flat or falling line: doubling).
- Then it narrows the bracket [last met, first missed] until the two are within the precision
  (5 % by default; concurrency stops at neighbours). Each probe aims where the straight line
  through the bracket's two violations crosses 0 (linear interpolation, regula falsi), pushed
  out to a precision step from either end (so that a probe next to the crossing closes the
  bracket), and is then held inside a safeguard: only loads that leave the bisection's
  worst-case count of remaining probes intact are allowed (the idea of the ITP method,
  Oliveira & Takahashi 2020, with the bisection's own midpoints and rounding), the nearest such
  load to the aim is probed. So a search never takes more probes to close the bracket than
  bisection could, and on a smooth curve it closes in one or two.
- A probe's *violation* is the largest relative excess over its objectives: (value − limit) /
  limit for ``<=``/``<``, (limit − value) / limit for ``>=``/``>``; met ⇔ violation ≤ 0 (``<``
  and ``>`` strict).
- **With trials** (``--trials K``, K ≥ 2) a probe meets an objective only if the CI says so: the
  bound of the 95 % t-interval over its trial values on the objective's side (the upper bound
  for ``<=``/``<``, the lower for ``>=``/``>``) meets the limit, i.e. the probe meets it with
  97.5 % one-sided confidence. A probe whose interval straddles the limit counts as missed, and
  the search interpolates on that bound. With one trial, the measured value decides.
- Every probe is a level of the run (summary.json ``runs``, perf.sqlite, the report's chart).
  ``summary["sla_search"]`` = {objectives, dimension, best, stopped, probes: [{concurrency or
  rate, met, failed: [objective texts], request_throughput, ...}]}.
"""
from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

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


def judged(o: Objective, run: PerfLevel, confidence: float = 0.95) -> tuple[bool, float | None, float | None]:
    """(met, measured value, the figure that decided): with two or more trials the bound of the
    t-interval over the trial values on the objective's side, else the measured value."""
    value = o.actual(run)
    trials = run.per_trial or []
    if len(trials) >= 2:
        from .trials import t_interval

        ci = t_interval([t.stat(o.metric, o.stat) for t in trials], confidence)
        if ci is not None:
            bound = ci[1] if o.op in ("<=", "<") else ci[0]
            return OPS[o.op](bound, o.value), value, bound
    return value is not None and OPS[o.op](value, o.value), value, value


def violation(o: Objective, decided: float | None) -> float | None:
    """The relative excess of ``decided`` over the objective (≤ 0: met)."""
    if decided is None or o.value == 0:
        return None
    excess = decided - o.value if o.op in ("<=", "<") else o.value - decided
    return excess / abs(o.value)


@dataclass
class Probe:
    load: float
    met: bool
    failed: list[str]              # the objectives it missed
    values: dict[str, float | None]  # each objective's measured value
    run: PerfLevel
    bounds: dict[str, float | None] | None = None  # with trials: the CI bound that decided
    violation: float | None = None  # the largest relative excess over the objectives

    def as_dict(self, dimension: str) -> dict[str, Any]:
        out = {dimension: int(self.load) if dimension == "concurrency" else self.load, "met": self.met,
               "failed": self.failed, "values": self.values,
               "request_throughput": self.run.stat("request_throughput"), "success_rate": self.run.success_rate}
        if self.bounds is not None:
            out["bounds"] = self.bounds
        if self.run.stopped:
            out["stopped"] = self.run.stopped.get("reason")
        return out


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
    #: met probes needed before the search follows their line instead of doubling
    min_points: int = 2

    def _round(self, x: float) -> float:
        if self.dimension == "concurrency":
            return float(max(1, round(x)))
        return float(f"{x:.4g}")

    def record(self, load: float, run: PerfLevel) -> Probe:
        failed, values, bounds, worst = [], {}, {}, None
        for o in self.objectives:
            met, value, decided = judged(o, run)
            values[o.text], bounds[o.text] = value, decided
            if not met:
                failed.append(o.text)
            v = violation(o, decided)
            if v is not None:
                worst = v if worst is None else max(worst, v)
        if run.stopped:  # --stop-on-saturation: the server could not keep up with this load
            failed = failed or ["over-saturated"]
        trials = len(run.per_trial or []) >= 2
        probe = Probe(load, not failed, failed, values, run, bounds if trials else None, worst)
        self.probes.append(probe)
        return probe

    def _close_enough(self, lo: float, hi: float) -> bool:
        if self.dimension == "concurrency":
            return hi - lo <= max(1.0, math.floor(lo * self.precision))
        return (hi - lo) <= lo * self.precision * (1 + 1e-9)

    def _step(self, lo: float) -> float:
        """The precision step above ``lo``: the farthest load still close enough to it."""
        if self.dimension == "concurrency":
            return max(1.0, math.floor(lo * self.precision))
        return lo * self.precision

    def _mid(self, lo: float, hi: float) -> float:
        """The bisection's next probe (geometric while the bracket spans more than 2×)."""
        return self._round((lo * hi) ** 0.5 if hi > 2 * lo else (lo + hi) / 2)

    def worst_case(self, lo: float, hi: float) -> int:
        """Probes bisection may need to close [lo, hi], over every outcome."""
        memo = self.__dict__.setdefault("_memo", {})
        key = (lo, hi)
        if key not in memo:
            mid = self._mid(lo, hi)
            if self._close_enough(lo, hi) or mid <= lo or mid >= hi:
                memo[key] = 0
            else:
                memo[key] = 1 + max(self.worst_case(lo, mid), self.worst_case(mid, hi))
        return memo[key]

    def _allowed(self, lo: float, hi: float, x: float, left: int) -> bool:
        return lo < x < hi and max(self.worst_case(lo, x), self.worst_case(x, hi)) <= left

    def _choose(self, lo: float, hi: float, aim: float | None, left: int) -> float | None:
        """The load nearest ``aim`` whose outcome leaves at most ``left`` bisection probes (the
        allowed loads form an interval around the bisection's midpoint, which is always one)."""
        mid = self._mid(lo, hi)
        if not lo < mid < hi:
            return None
        if aim is None:
            return mid
        aim = self._round(aim)
        if self._allowed(lo, hi, aim, left):
            return aim
        if self.dimension == "concurrency":  # walk from the midpoint towards the aim
            step = 1.0 if aim > mid else -1.0
            x = mid
            while x + step != aim and self._allowed(lo, hi, x + step, left):
                x += step
            return x
        good, bad = mid, aim  # the allowed interval's end, by bisection
        for _ in range(40):
            m = self._round((good + bad) / 2)
            if m in (good, bad):
                break
            if self._allowed(lo, hi, m, left):
                good = m
            else:
                bad = m
        return good

    def _aim(self, lo: float, hi: float) -> float | None:
        """Where the straight line through the violations at ``lo`` and ``hi`` crosses 0, kept
        a precision step away from either end."""
        pl, ph = self._probe_at(lo), self._probe_at(hi)
        if pl is None or ph is None or pl.violation is None or ph.violation is None or ph.violation <= pl.violation:
            return None
        x = lo + (0 - pl.violation) * (hi - lo) / (ph.violation - pl.violation)
        x = max(x, lo + self._step(lo))
        if self.dimension == "concurrency":
            x = math.floor(x)
        return min(x, hi - self._step(lo))

    def _line(self, lo: float, hi: float) -> tuple[float, float] | None:
        """(violation at ``lo``, slope) of the straight line through the bracket's ends."""
        pl, ph = self._probe_at(lo), self._probe_at(hi)
        if pl is None or ph is None or pl.violation is None or ph.violation is None or hi <= lo:
            return None
        return pl.violation, (ph.violation - pl.violation) / (hi - lo)

    def _looks_straight(self, missed: float) -> bool:
        """Interpolate only where the curve looks smooth: the line through the last two met
        probes, extended to the first missed one, must foresee at least a third of its rise
        (a step or a hockey stick does not: then the search bisects)."""
        met = sorted({p.load: p for p in self.probes if p.met and p.violation is not None and p.load < missed}.values(),
                     key=lambda p: p.load)
        miss = self._probe_at(missed)
        if miss is None or miss.violation is None:
            return False
        if len(met) < 2:  # one point says nothing about the shape
            return False
        a, b = met[-2], met[-1]
        slope = (b.violation - a.violation) / (b.load - a.load)
        predicted_rise = slope * (missed - b.load)
        return predicted_rise > 0 and miss.violation - b.violation <= 3 * predicted_rise

    def _probe_at(self, load: float) -> Probe | None:
        return next((p for p in reversed(self.probes) if p.load == load), None)

    def _climb(self, load: float) -> float:
        """The next load while bracketing: double it, or go to where the last two met probes'
        violations extrapolate to 0 (at most 4×, at least a precision step up)."""
        up = 2 * load
        met = sorted({p.load: p for p in self.probes if p.met and p.violation is not None}.values(), key=lambda p: p.load)
        if len(met) >= self.min_points:
            a, b = met[-2], met[-1]
            slope = (b.violation - a.violation) / (b.load - a.load) if b.load > a.load else 0.0
            if slope > 0 and b.load == load:
                up = min(4 * load, max(b.load - b.violation / slope, load + self._step(load)))
                if self.dimension == "concurrency":
                    up = max(load + 1, math.floor(up))
        return self._round(min(self.high, up))

    def loads(self) -> Iterator[float]:
        """The next load to probe, until the frontier is found (call :meth:`record` after each)."""
        lo_met: float | None = None
        hi_missed: float | None = None
        load = self._round(self.low)
        gains: list[float] = []
        met_loads: list[float] = []
        # bracketing
        while True:
            yield load
            p = self.probes[-1]
            if p.run.requests and p.run.success_rate < 0.5:
                self.stopped = f"the server failed at {self.label(load)} ({1 - p.run.success_rate:.0%} of requests failed)"
                hi_missed = load
                break
            if not p.met:
                if p.run.stopped:
                    self.stopped = f"the server was over-saturated at {self.label(load)}"
                hi_missed = load
                break
            if lo_met is not None:
                prev = next(q for q in reversed(self.probes[:-1]) if q.load == lo_met)
                base = prev.run.stat("request_throughput") or 0.0
                gains.append((p.run.stat("request_throughput") or 0.0) / base if base else float("inf"))
            lo_met = load
            met_loads.append(load)
            if len(gains) >= 2 and gains[-1] < 1.05 and gains[-2] < 1.05:
                self.stopped = (f"the server saturated: throughput grew less than 5% from {self.label(met_loads[-3])} "
                                f"to {self.label(lo_met)} with the SLA still met")
                return
            if load >= self.high:
                self.stopped = f"the upper end of the range ({self.label(self.high)}) meets the SLA"
                return
            load = self._climb(load)
        if lo_met is None:
            if not self.stopped:
                self.stopped = f"the lowest load ({self.label(load)}) misses the SLA"
            return
        # interpolation between the last met and the first missed load, within bisection's budget
        left = self.worst_case(lo_met, hi_missed)
        smooth = self._looks_straight(hi_missed)
        while not self._close_enough(lo_met, hi_missed) and left > 0:
            aim = self._aim(lo_met, hi_missed) if smooth else None
            x = self._choose(lo_met, hi_missed, aim, left - 1)
            if x is None or x <= lo_met or x >= hi_missed:
                break
            line = self._line(lo_met, hi_missed)
            yield x
            left -= 1
            p = self.probes[-1]
            if smooth and line is not None and p.violation is not None:  # the line missed: bisect from now on
                predicted = line[0] + line[1] * (x - lo_met)
                smooth = abs(p.violation - predicted) <= 0.25 * line[1] * (hi_missed - lo_met)
            if p.met:
                lo_met = x
            else:
                hi_missed = x
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
        return frontier_answer([o.text for o in self.objectives], self.dimension, self.best, self.stopped,
                               len(self.probes))


def frontier_answer(objectives: Sequence[str], dimension: str, best: float | None, stopped: str, probes: int) -> str:
    """The SLA search's one-line answer (summary.json ``sla_search.answer``, the terminal's
    line; the report and the app rebuild it from an older summary.json's fields)."""
    text = ", ".join(objectives)
    if best is None:
        return f"SLA frontier ({text}): no load in range meets it: {stopped} ({probes} probes)"
    load = str(int(best)) if dimension == "concurrency" else f"{best:g} req/s"
    return f"SLA frontier ({text}): highest {dimension} that meets it: {load}; {stopped} ({probes} probes)"
