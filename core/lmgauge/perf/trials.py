"""Trials (``--trials K``) and the confidence intervals of perf figures.

A level measured K times (each trial: fresh connections, the optional cache reset, the warm-up,
then the same seeded requests and arrival times) is one entry of summary.json ``runs``:

- its figures are over every trial's requests pooled (per-request distributions over all of
  them; rates = what all trials served / the sum of their wall times);
- ``per_trial`` holds each trial's own level (``trial`` = 1 … K);
- ``ci`` maps each metric's ``--sla`` name (``ttft_p50``, ``output_tps`` …, every declared
  metric, plugin ones included; per-request metrics with the statistics :data:`CI_STATS`) to
  its 95 % confidence interval ``[low, high]``.

The intervals:

- **K ≥ 2: t-interval over the trial values.** mean ± t(0.975, K−1) · s / √K, where s is the
  standard deviation of the K trial values (ddof 1). Trials are independent repetitions of the
  whole measurement, so this interval holds whatever happens inside a level (batching,
  autocorrelated latencies, warm caches) as long as the trials are alike.
- **K = 1, per-request metrics: a bootstrap over requests.** Requests are resampled with
  replacement (:data:`BOOTSTRAP_RESAMPLES` times, seeded) and the statistic recomputed; the
  interval is the 2.5 and 97.5 % quantiles of the resampled statistics (percentile bootstrap).
  A metric with several values per request (ITL) resamples whole requests (a cluster
  bootstrap, :data:`LIST_RESAMPLES` times), since a request's gaps are not independent of each
  other; its quantiles are read from the values binned at 2,048 of their own quantiles (denser
  in the tails: within 1 % of the exact p99 of a resample, 0.2 % of its p50).
- **K = 1, level metrics (rates) of a closed loop: a bootstrap over requests with Little's law.**
  A rate is not a per-request value: resampling requests with the wall time held fixed would
  give a zero-width interval for fixed output lengths. In a closed loop the same number of
  requests is always in flight, so the wall time is the requests' total time in the system
  divided by that number: each resample's wall time is the level's × (its requests' summed
  latency / the level's), and the metric's own ``level()`` is computed on the resample
  (:data:`LEVEL_RESAMPLES` times); percentile interval as above.
- **K = 1, level metrics of an open loop: batch means over time.** The schedule, not the
  server, sets an open loop's wall time. The level's span is cut into W equal windows (W = n/30
  clamped to 2…10) and ``level()`` computed on each window's requests (by the time they ended);
  the interval is the level's value × (1 ± t(0.975, W−1) · s_w / (√W · mean_w)).

With K = 1 the intervals see only the noise within one measurement, not the drift between
measurements (another server state, another moment): use trials to decide between engines.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from ..interfaces import PerfMetric
from ..runfolder import PerfLevel, RequestRow

CI_STATS = ("mean", "p50", "p90", "p99")
CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 1000
LIST_RESAMPLES = 400         # cluster bootstrap of metrics with many values per request (ITL)
LEVEL_RESAMPLES = 400        # bootstrap of a closed loop's level metrics (Little's law)
CLUSTER_BINS = 2048          # quantile bins of the cluster bootstrap (denser in the tails)
MAX_WINDOWS = 10
REQUESTS_PER_WINDOW = 30
_CELLS = 4_000_000           # numbers per bootstrap chunk (memory bound)


# -- names -------------------------------------------------------------------------------------
def stat_name(m: PerfMetric, stat: str | None) -> str:
    """The ``--sla`` name of a metric's statistic: ``ttft_p50``; a level metric's own name."""
    return m.name if stat is None else f"{m.name}_{stat}"


def named_figures(metrics: Sequence[PerfMetric], level: PerfLevel,
                  stats: Sequence[str] = CI_STATS) -> list[tuple[str, PerfMetric, str | None]]:
    """(name, metric, stat) of every declared metric this level has a figure for: per-request
    metrics with each of ``stats``, level metrics alone."""
    out = []
    for m in metrics:
        if level.figure(m.summary_key) is None:
            continue
        if m.kind == "request":
            out += [(stat_name(m, s), m, s) for s in stats]
        else:
            out.append((stat_name(m, None), m, None))
    return out


# -- small statistics ----------------------------------------------------------------------------
def t_quantile(p: float, df: float) -> float:
    from scipy import stats

    return float(stats.t.ppf(p, df))


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, sd


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> list[float] | None:
    """mean ± t · s / √n of ``values`` (None with fewer than two)."""
    vals = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if len(vals) < 2:
        return None
    mean, sd = mean_sd(vals)
    half = t_quantile(0.5 + confidence / 2, len(vals) - 1) * sd / math.sqrt(len(vals))
    return [mean - half, mean + half]


def trial_values(trials: Sequence[PerfLevel], m: PerfMetric, stat: str | None) -> list[float]:
    out = []
    for t in trials:
        v = t.stat(m.summary_key, stat)
        if v is not None:
            out.append(v)
    return out


# -- bootstrap over requests -------------------------------------------------------------------
def request_values(rows: Iterable[RequestRow], m: PerfMetric) -> list[list[float]]:
    """The metric's values per request, over the requests its level aggregates (successful
    ones, or all for ``over = "all"``); requests without a value are left out."""
    out = []
    for r in rows:
        if m.over != "all" and not r.success:
            continue
        v = r.values.get(m.summary_key)
        if isinstance(v, list):
            vals = [float(x) for x in v if x is not None]
        elif v is None or isinstance(v, bool):
            vals = []
        else:
            vals = [float(v)]
        if vals and not any(math.isnan(x) for x in vals):
            out.append(vals)
    return out


def _quantile_of(stat: str) -> float | None:
    if stat in ("max",):
        return 100.0
    if stat in ("min",):
        return 0.0
    if stat.startswith("p") and stat[1:].isdigit():
        return float(stat[1:])
    return None


class Resampled:
    """Bootstrap draws of statistics of one metric of one level: requests resampled with
    replacement ``resamples`` times (seeded; whole requests for metrics with several values per
    request). :meth:`draws` gives the statistic of every resample."""

    def __init__(self, per_request: list[list[float]], resamples: int = BOOTSTRAP_RESAMPLES, seed: Any = 0):
        import numpy as np

        self.np = np
        self.n = len(per_request)
        self.scalar = all(len(v) == 1 for v in per_request)
        if not self.scalar:
            resamples = min(resamples, LIST_RESAMPLES)
        self.resamples = resamples
        self.rng = np.random.default_rng(seed)
        if self.scalar:
            self.values = np.array([v[0] for v in per_request], dtype=float)
        else:
            lengths = np.array([len(v) for v in per_request])
            flat = np.concatenate([np.asarray(v, dtype=float) for v in per_request]) if self.n else np.zeros(0)
            owner = np.repeat(np.arange(self.n), lengths)
            order = np.argsort(flat, kind="stable")
            self.sorted, self.owner = flat[order], owner[order]
            self.sums = np.array([sum(v) for v in per_request], dtype=float)
            self.lengths = lengths.astype(float)
        self._draws: dict[str, Any] = {}
        self._idx = None
        self._hist = None

    def _indices(self):
        if self._idx is None:
            self._idx = self.rng.integers(0, self.n, size=(self.resamples, self.n))
        return self._idx

    def prepare(self, stats: Sequence[str]) -> None:
        """Compute the draws of several statistics in one pass over the resamples."""
        np = self.np
        todo = [s for s in dict.fromkeys(stats) if s not in self._draws and (s == "mean" or _quantile_of(s) is not None)]
        if not todo or self.n < 2:
            return
        if not self.scalar:
            quantiles = [s for s in todo if s != "mean"]
            if "mean" in todo:
                self._draws["mean"] = self._cluster(self._indices(), ["mean"])["mean"]
            if quantiles:
                self._draws.update(self._cluster(self._indices(), quantiles))
            return
        idx = self._indices()
        qs = [_quantile_of(s) for s in todo if s != "mean"]
        out = {s: np.empty(self.resamples) for s in todo}
        step = max(1, _CELLS // self.n)
        for a in range(0, self.resamples, step):
            sample = self.values[idx[a:a + step]]
            if "mean" in out:
                out["mean"][a:a + step] = sample.mean(axis=1)
            if qs:
                pct = np.percentile(sample, qs, axis=1)
                for s, row in zip([s for s in todo if s != "mean"], pct):
                    out[s][a:a + step] = row
        self._draws.update(out)

    def draws(self, stat: str):
        """The statistic (mean, pXX, min, max) of each resample (a numpy array), or None."""
        if stat in self._draws:
            return self._draws[stat]
        q = _quantile_of(stat)
        if self.n < 2 or (stat != "mean" and q is None):
            return None
        self.prepare([stat])
        return self._draws[stat]

    def _cluster(self, idx, stats: Sequence[str]) -> dict[str, Any]:
        """Weighted statistics: each request weighs as often as the resample drew it. Quantiles
        are read from the pooled values binned at :data:`CLUSTER_BINS` of their own quantiles
        (linear inside a bin): one matrix product per resample block instead of a sort."""
        np = self.np
        b, n = idx.shape
        counts = np.bincount((idx + (np.arange(b) * n)[:, None]).ravel(), minlength=b * n).reshape(b, n)
        counts = counts.astype(np.float32)
        if list(stats) == ["mean"]:
            total = counts @ self.lengths
            return {"mean": np.where(total > 0, (counts @ self.sums) / np.maximum(total, 1), np.nan)}
        if self._hist is None:
            levels = 0.5 - 0.5 * np.cos(np.pi * np.linspace(0, 1, CLUSTER_BINS + 1))  # denser in the tails
            edges = np.unique(np.quantile(self.sorted, levels))
            if len(edges) < 2:
                edges = np.array([edges[0], edges[0]])
            k = np.clip(np.searchsorted(edges, self.sorted, side="right") - 1, 0, len(edges) - 2)
            nb = len(edges) - 1
            hist = np.bincount(self.owner * nb + k, minlength=n * nb).reshape(n, nb).astype(np.float32)
            self._hist = (edges, hist)
        edges, hist = self._hist
        weights = counts @ hist                              # resample × bin
        cum = np.cumsum(weights, axis=1)
        total = cum[:, -1]
        out = {}
        for s in stats:
            target = _quantile_of(s) / 100 * total
            k = np.minimum((cum < target[:, None]).sum(axis=1), weights.shape[1] - 1)
            before = np.where(k > 0, cum[np.arange(b), k - 1], 0.0)
            inside = weights[np.arange(b), k]
            frac = np.where(inside > 0, (target - before) / np.maximum(inside, 1e-12), 0.0)
            out[s] = edges[k] + np.clip(frac, 0, 1) * (edges[k + 1] - edges[k])
        return out


def percentile_interval(draws, confidence: float = CONFIDENCE) -> list[float] | None:
    import numpy as np

    if draws is None:
        return None
    d = draws[np.isfinite(draws)]
    if len(d) < 10:
        return None
    lo, hi = np.quantile(d, [0.5 - confidence / 2, 0.5 + confidence / 2])
    return [float(lo), float(hi)]


# -- batch means over time (level metrics of one trial) -----------------------------------------
def window_values(rows: Sequence[RequestRow], m: PerfMetric, slo: dict[str, float] | None) -> list[float] | None:
    """The level metric computed on each of W equal time windows of each trial (requests by
    the moment they ended), or None when there are too few requests for two windows."""
    from .metrics import LevelInput, meets_slo

    by_trial: dict[Any, list[RequestRow]] = {}
    for r in rows:
        if r.sent_s is not None:
            by_trial.setdefault(r.trial, []).append(r)
    out: list[float] = []
    for trial_rows in by_trial.values():
        ok = sum(1 for r in trial_rows if r.success)
        w = min(MAX_WINDOWS, ok // REQUESTS_PER_WINDOW)
        if w < 2:
            continue
        ends = [_end(r) for r in trial_rows]
        start = min(r.scheduled_s if r.scheduled_s is not None else r.sent_s for r in trial_rows)
        span = max(ends) - start
        if span <= 0:
            continue
        width = span / w
        buckets: list[list[RequestRow]] = [[] for _ in range(w)]
        for r, e in zip(trial_rows, ends):
            buckets[min(w - 1, int((e - start) / width))].append(r)
        for part in buckets:
            good = [r for r in part if r.success]
            ctx = LevelInput(part, good, width, dict(slo or {}), sum(1 for r in part if slo and meets_slo(r, slo)),
                             sum(r.prompt_tokens or 0 for r in good), sum(r.completion_tokens or 0 for r in good))
            try:
                v = m.level(ctx)
            except Exception:  # noqa: BLE001 - a plugin metric that cannot take a window gets no interval
                return None
            if v is None or isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
                return None
            out.append(float(v))
    return out if len(out) >= 2 else None


def little_draws(rows: Sequence[RequestRow], m: PerfMetric, slo: dict[str, float] | None, wall: float,
                 resamples: int = LEVEL_RESAMPLES, seed: Any = 0):
    """Bootstrap draws of a closed loop's level metric: requests resampled, the wall time scaled
    by the resample's summed latency (Little's law: a fixed number in flight); None when the
    level has too few requests or the metric cannot take a resample."""
    import numpy as np

    from .metrics import LevelInput, meets_slo

    rows = list(rows)
    n = len(rows)
    if n < 10 or wall <= 0:
        return None
    occ = np.array([float(r.values.get("latency_s") or 0.0) for r in rows])
    total = occ.sum()
    if total <= 0:
        return None
    good = np.array([bool(slo) and meets_slo(r, slo) for r in rows])
    ok = np.array([r.success for r in rows])
    tin = np.array([float(r.prompt_tokens or 0) if r.success else 0.0 for r in rows])
    tout = np.array([float(r.completion_tokens or 0) if r.success else 0.0 for r in rows])
    rng = np.random.default_rng(seed)
    out = np.empty(resamples)
    for b in range(resamples):
        idx = rng.integers(0, n, n)
        ctx = LevelInput(_Picked(rows, idx), _Picked(rows, idx[ok[idx]]), wall * occ[idx].sum() / total,
                         dict(slo or {}), int(good[idx].sum()), int(tin[idx].sum()), int(tout[idx].sum()))
        try:
            v = m.level(ctx)
        except Exception:  # noqa: BLE001 - a plugin metric that cannot take a resample gets no interval
            return None
        out[b] = float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan
    return out if np.isfinite(out).sum() >= 10 else None


class _Picked(Sequence):
    """The rows a resample drew (built only if a metric looks at them: most count them)."""

    def __init__(self, rows: Sequence[RequestRow], idx: Any):
        self.rows, self.idx = rows, idx

    def __len__(self) -> int:
        return len(self.idx)

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self.rows[i] for i in self.idx[k]]
        return self.rows[self.idx[k]]

    def __iter__(self):
        return (self.rows[i] for i in self.idx)


def closed_loop(level: PerfLevel) -> bool:
    return level.rate is None and level.concurrency is not None and level.ramp is None and not level.trace


def _end(r: RequestRow) -> float:
    lat = r.values.get("latency_s")
    return r.sent_s + lat if isinstance(lat, (int, float)) else r.sent_s


def relative_se(values: Sequence[float]) -> tuple[float, int] | None:
    """(standard error of the mean of ``values`` relative to it, degrees of freedom)."""
    if len(values) < 2:
        return None
    mean, sd = mean_sd(values)
    if mean <= 0:
        return None
    return sd / math.sqrt(len(values)) / mean, len(values) - 1


# -- one level's intervals ------------------------------------------------------------------------
def level_ci(level: PerfLevel, trials: Sequence[PerfLevel], rows: Sequence[RequestRow], metrics: Sequence[PerfMetric],
             confidence: float = CONFIDENCE, seed: int = 0) -> dict[str, list[float]]:
    """``runs[i].ci`` of a level (module doc): from the trial values when there are two or
    more trials, else a bootstrap over ``rows`` (per-request metrics) and batch means over
    time (level metrics)."""
    out: dict[str, list[float]] = {}
    named = named_figures(metrics, level)
    if len(trials) >= 2:
        for name, m, stat in named:
            ci = t_interval(trial_values(trials, m, stat), confidence)
            if ci is not None:
                out[name] = ci
        return out
    boot: dict[str, Resampled] = {}
    for k, (name, m, stat) in enumerate(named):
        if m.kind == "request":
            if m.name not in boot:
                boot[m.name] = Resampled(request_values(rows, m), seed=[seed, k])
                boot[m.name].prepare(CI_STATS)
            ci = percentile_interval(boot[m.name].draws(stat), confidence)
        elif closed_loop(level):
            ci = percentile_interval(little_draws(rows, m, level.slo, level.duration_s, seed=[seed, k]), confidence)
        else:
            value = level.stat(m.summary_key)
            windows = window_values(rows, m, level.slo)
            rel = relative_se(windows) if windows else None
            ci = None
            if value is not None and rel is not None:
                half = t_quantile(0.5 + confidence / 2, rel[1]) * rel[0] * value
                ci = [value - half, value + half]
        if ci is not None:
            out[name] = ci
    return out


# -- merging trials -------------------------------------------------------------------------------
@dataclass
class Trial:
    """One trial of a level as the run loop collected it."""

    number: int
    level: PerfLevel
    records: list = field(default_factory=list)
    rows: list[RequestRow] = field(default_factory=list)
    wall_s: float = 0.0
    cpu_s: float | None = None


def merge_trials(trials: Sequence[Trial], metrics: Sequence[PerfMetric], *, concurrency: int | None,
                 rate: float | None, slo: dict[str, float]) -> PerfLevel:
    """One level over every trial's requests: distributions over the pooled requests, rates over
    the summed wall times; per-turn figures pooled by turn index (spans summed), sessions counted
    over every trial, per-endpoint figures over the pooled requests. Identity, workload and
    timeline come from the first trial (each trial keeps its own in ``per_trial``)."""
    from .metrics import aggregate, per_endpoint, per_session

    first = trials[0].level
    records = [r for t in trials for r in t.records]
    rows = [r for t in trials for r in t.rows]
    cpu = [t.cpu_s for t in trials if t.cpu_s is not None]
    merged = aggregate(records, rows, metrics, wall_s=sum(t.wall_s for t in trials), concurrency=concurrency, rate=rate,
                       slo=slo, cpu_s=sum(cpu) if cpu else None)
    for name in ("achieved_rate", "scheduled_rate"):
        vals = [getattr(t.level, name) for t in trials if getattr(t.level, name) is not None]
        setattr(merged, name, sum(vals) / len(vals) if vals else None)
    for name in ("workers", "api", "generates_text", "tokenizer", "clock_origin", "label", "ramp", "trace", "timeline",
                 "nodes", "server_metrics"):
        setattr(merged, name, getattr(first, name))
    if first.endpoints:
        merged.endpoints = per_endpoint(records, rows, metrics, wall_s=merged.duration_s, slo=slo)
    if first.turns:
        merged.turns = _merge_turns(trials, metrics, slo)
    if first.sessions:
        renumbered = []
        for t in trials:
            for r in t.records:
                c = copy.copy(r)
                if c.session is not None:
                    c.session = (t.number, c.session)
                renumbered.append(c)
        merged.sessions = per_session(renumbered)
    interrupted = [t.level for t in trials if t.level.interrupted]
    if interrupted:
        merged.interrupted = True
        merged.abandoned_in_flight = sum(lv.abandoned_in_flight or 0 for lv in interrupted)
    stopped = [t.level.stopped for t in trials if t.level.stopped]
    if stopped:
        merged.stopped = stopped[0]
        merged.abandoned_in_flight = sum(t.level.abandoned_in_flight or 0 for t in trials) or None
    merged.trials = len(trials)
    merged.per_trial = [t.level for t in trials]
    return merged


def _merge_turns(trials: Sequence[Trial], metrics: Sequence[PerfMetric], slo: dict[str, float]) -> list[PerfLevel]:
    from .metrics import aggregate

    spans: dict[int, float] = {}
    for t in trials:
        for turn in t.level.turns or []:
            spans[turn.turn] = spans.get(turn.turn, 0.0) + (turn.duration_s or 0.0)
    out = []
    for k in sorted(spans):
        pairs = [(rec, row) for t in trials for rec, row in zip(t.records, t.rows) if rec.turn == k]
        agg = aggregate([p[0] for p in pairs], [p[1] for p in pairs], metrics, wall_s=spans[k], concurrency=None,
                        rate=None, slo=slo)
        agg.turn = k
        out.append(agg)
    return out


def ci_text(level: PerfLevel, metrics: Sequence[PerfMetric], names: Sequence[str] = (
        "output_tps", "rps", "ttft_p50", "ttft_p99", "tpot_p50", "latency_p50")) -> str | None:
    """One note line: the 95 % CIs of a few headline figures of a level."""
    ci = level.ci or {}
    if not ci:
        return None
    by_name = {m.name: m for m in metrics}
    parts = []
    for name in names:
        bounds = ci.get(name)
        if not bounds or bounds[0] is None or bounds[1] is None:
            continue
        base, _, stat = name.rpartition("_")
        m = by_name.get(name) or by_name.get(base)
        digits = 4 if m is not None and m.unit == "s" else 2
        unit = f" {m.unit}" if m is not None and m.unit else ""
        parts.append(f"{name} {bounds[0]:.{digits}f}–{bounds[1]:.{digits}f}{unit}")
    if not parts:
        return None
    how = f"across {level.trials} trials" if (level.trials or 0) >= 2 else "within the level (bootstrap over requests)"
    return f"95% CI {how}: " + ", ".join(parts)
