"""The levels of a perf run: a sweep over ``--concurrency`` or ``--rate``, one ramp or trace
replay level, or the probes of the SLA search (``--sla-search``, lmgauge.perf.sla)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from .config import PerfConfig

UNBOUNDED = 10**12  # requests of a level bounded by --duration only


@dataclass
class Level:
    concurrency: int | None
    rate: float | None
    count: int
    ramp: Any = None     # lmgauge.perf.loadgen.Ramp: the rate moves over the level
    timed: bool = False  # trace replay: requests go out at their own offsets

    @property
    def label(self) -> str:
        if self.timed:
            return "trace replay"
        if self.ramp is not None:
            return f"ramp {self.ramp.start:g}→{self.ramp.end:g} req/s"
        return f"rate {self.rate:g}" if self.rate is not None else f"concurrency {self.concurrency}"


def sla_search(c: PerfConfig):
    """The SLA search of ``--sla-search`` (None without it)."""
    if not (c.sla_search or c.sla_auto_tune):
        if c.sla or c.sla_params:
            raise ConfigError("--sla sets the objectives of --sla-search", "add --sla-search concurrency (or rate)")
        return None
    from .sla import SLASearch, parse_objectives, parse_range

    dimension = {"parallel": "concurrency", None: "concurrency"}.get(c.sla_search, c.sla_search)
    objectives = parse_objectives(c.sla, c.sla_params)
    if not objectives:
        raise ConfigError("--sla-search needs objectives", "e.g. --sla 'ttft_p99<=500ms,tpot_p90<=50ms'")
    if c.rate or c.ramp_up or (dimension == "concurrency" and c.concurrency):
        raise ConfigError(f"--sla-search {dimension} chooses the {dimension} levels itself",
                          "drop --concurrency/--rate/--ramp-up (with --sla-search rate, one --concurrency caps requests in flight)")
    if dimension == "rate" and len(c.concurrency) > 1:
        raise ConfigError("--sla-search rate takes at most one --concurrency (the cap on requests in flight)")
    if len(c.number) > 1:
        raise ConfigError("--sla-search takes one --number (requests per probe)")
    low, high = parse_range(c.sla_range, dimension, c.sla_lower_bound, c.sla_upper_bound)
    return SLASearch(objectives, dimension, low, high, c.sla_precision or 0.05)


def plan_levels(c: PerfConfig, timed: bool = False) -> list[Level]:
    """The levels of the sweep. ``timed``: the dataset replays its own send times (one level,
    every request of the trace unless --number/--duration cut it; --concurrency caps requests
    in flight). A --ramp-up is one level too."""
    if c.trials is not None and (isinstance(c.trials, bool) or not isinstance(c.trials, int) or c.trials < 1):
        raise ConfigError(f"--trials must be a whole number ≥ 1, got {c.trials!r}", "e.g. --trials 3")
    conc, number, rates = list(c.concurrency), list(c.number), list(c.rate)
    if timed or c.ramp_up:
        from .loadgen import Ramp

        what = "a trace replay (its requests carry their own send times)" if timed else "--ramp-up"
        if rates:
            raise ConfigError(f"--rate cannot be used with {what}", "drop --rate")
        if len(conc) > 1 or len(number) > 1:
            raise ConfigError(f"{what} is one level: give at most one --concurrency (the cap on requests in flight) "
                              "and one --number")
        if timed and c.ramp_up:
            raise ConfigError("--ramp-up cannot be used with a trace replay (the trace sets the send times)")
        n = number[0] if number else (100 if c.ramp_up and not c.duration else UNBOUNDED)
        ramp = None
        if c.ramp_up:
            a, b = float(c.ramp_up_start_rps), float(c.ramp_up_end_rps)
            ramp = Ramp(c.ramp_up, a, b, c.duration) if c.duration else Ramp.for_count(c.ramp_up, a, b, n)
        return [Level(conc[0] if conc else None, None, n, ramp=ramp, timed=timed)]
    if rates and len(conc) > 1:
        raise ConfigError(f"--rate takes at most one --concurrency value (the cap on requests in flight), got {len(conc)}",
                          "sweep either --concurrency or --rate")
    levels = rates or conc or [1]
    if number and len(number) not in (1, len(levels)):
        what = "--rate" if rates else "--concurrency"
        raise ConfigError(f"--number has {len(number)} values for {len(levels)} {what} levels",
                          f"give one --number, or one per {what} value")
    plan = []
    for i, lv in enumerate(levels):
        if number:
            n = number[i] if len(number) > 1 else number[0]
        elif c.duration:
            n = UNBOUNDED
        else:
            n = 100 if rates else max(10, 4 * int(lv))
        if rates:
            plan.append(Level(conc[0] if conc else None, float(lv), n))
        else:
            plan.append(Level(int(lv), None, n))
    return plan
