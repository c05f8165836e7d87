"""Two perf runs of the same workload, level by level: is B faster than A, and by how much?
(``lmgauge compare PERF_A PERF_B``, the perf part of ``lmgauge report A B`` and of the app.)

For every level the two runs share (same concurrency, or same request rate) and every declared
perf metric (``--sla`` names: ``ttft_p50``, ``tpot_p99``, ``output_tps`` … and every plugin's;
per-request metrics with the statistics mean, p50, p90 and p99) it gives the ratio B/A with a
confidence interval and a verdict in words.

The interval of the ratio:

- **Both runs have trials** (``--trials K``, K ≥ 2 on both sides): from the trial values. With
  means m_A, m_B, standard deviations s_A, s_B and trial counts n_A, n_B, the ratio is m_B / m_A
  and its interval is ratio × exp(± t · SE), SE² = s_A²/(n_A m_A²) + s_B²/(n_B m_B²) (the delta
  method on log m_B − log m_A), t the (1 − α/2) quantile of Student's t with Welch–Satterthwaite
  degrees of freedom. Trials of A and B are not paired (they ran at other moments).
- **Otherwise**, per-request metrics: a bootstrap over requests. Each run's requests (its
  perf.sqlite rows, every trial pooled) are resampled with replacement ``resamples`` times,
  independently for A and B, the statistic recomputed on each; the interval is the α/2 and
  1 − α/2 quantiles of the resampled B/A ratios (whole requests for ITL, a cluster bootstrap).
  Metrics whose per-request values perf.sqlite does not store get a ratio without an interval.
  Level metrics (rates) of closed loops: the same bootstrap, each resample's wall time scaled by
  its summed latency (Little's law, lmgauge.perf.trials.little_draws); of open loops: batch
  means over time (the metric recomputed on equal time windows of each run), combined as above.

Verdicts: a metric with a direction (``higher_is_better``; token counts have none) is "better"
or "worse" for B when the interval excludes 1, else "no clear difference"; the sentence names the
level and the interval, e.g. "B serves 1.23× A's output tok/s at concurrency 50 (95% CI
1.18–1.28)".

Regression gates (``--fail-if "ttft_p99>+10%,output_tps<-5%"``): a gate fires at a level when
the whole interval lies beyond its threshold (``>+10%``: ci_low > 1.10; ``<-5%``: ci_high <
0.95), i.e. when the change beyond the threshold is real at the one-sided α/2 level; a change
that may be noise never fires.

Runs of different workloads are refused in one line naming the difference: endpoint kind,
dataset (and its file and options, e.g. prompt lengths), fixed prompt, output lengths
(``--max-tokens``/``--min-tokens``), requests per level, streaming, or measured input tokens per
request more than 5 % apart.
"""
from __future__ import annotations

import math
import os
import re
import zlib
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..errors import ConfigError, DataError
from ..interfaces import PerfMetric
from ..runfolder import STATS, PerfLevel, RunFolder, load_run
from .trials import (CI_STATS, Resampled, closed_loop, little_draws, relative_se, request_values, t_quantile,
                     trial_values, window_values)

DEFAULT_RESAMPLES = 1000
TEXT_STATS = ("p50", "p99")      # request statistics in the terminal table (the JSON has CI_STATS)
INPUT_TOLERANCE = 0.05
#: workload settings (config.yaml keys of lmgauge perf) that must be equal
WORKLOAD_KEYS = (("api", "endpoint kind"), ("dataset", "dataset"), ("dataset_path", "dataset file"),
                 ("prompt", "--prompt"), ("max_tokens", "--max-tokens (output length)"),
                 ("min_tokens", "--min-tokens (output length)"), ("number", "--number (requests per level)"),
                 ("stream", "streaming"))


class GatesFailed(Exception):
    """A regression gate fired (exit code 5)."""

    exit_code = 5


# -- what is compared -------------------------------------------------------------------------
@dataclass
class Figure:
    """One compared figure: a metric's statistic (``stat``) or a level metric (``stat`` None)."""

    name: str
    key: str
    stat: str | None
    kind: str                        # request | level
    metric: PerfMetric | None = None
    direction: bool | None = None    # True: higher is better; False: lower; None: no direction

    @property
    def label(self) -> str:
        if self.stat is not None:
            base = self.metric.name if self.metric is not None else self.key
            return f"{base.upper() if len(base) <= 4 else base} {self.stat}"
        m = self.metric
        if m is not None and m.unit in ("tok/s", "req/s", "inputs/s") and m.name.endswith("_tps"):
            return f"{m.name[:-4]} tok/s"
        if m is not None and m.name == "rps":
            return "req/s"
        return self.name


def _direction(m: PerfMetric) -> bool | None:
    """Token and input counts describe the workload (``directional`` False): no better or worse."""
    if not getattr(m, "directional", True):
        return None
    return bool(m.higher_is_better)


def figures_of(metrics: Sequence[PerfMetric], a: PerfLevel, b: PerfLevel, stats: Sequence[str] = CI_STATS,
               extra: Sequence[str] = ()) -> list[Figure]:
    """Every declared metric both levels have a figure for (per-request ones with ``stats``),
    then figures both have that no installed plugin declares, then ``extra`` names (gates)."""
    out: list[Figure] = []
    declared = set()
    for m in metrics:
        declared.add(m.summary_key)
        if a.figure(m.summary_key) is None or b.figure(m.summary_key) is None:
            continue
        if m.kind == "request":
            if not a.dist(m.summary_key).count and not b.dist(m.summary_key).count:
                continue  # neither run measured it (cached tokens of a server that reports none)
            out += [Figure(f"{m.name}_{s}", m.summary_key, s, "request", m, _direction(m)) for s in stats]
        else:
            out.append(Figure(m.name, m.summary_key, None, "level", m, _direction(m)))
    for key, value in a.figures.items():
        if key in declared or b.figure(key) is None:
            continue
        if isinstance(value, (int, float)):
            out.append(Figure(key, key, None, "level"))
        else:
            out += [Figure(f"{key}_{s}", key, s, "request") for s in stats]
    have = {f.name for f in out}
    for name in extra:
        if name not in have:
            f = resolve(name, metrics)
            if f is not None and a.figure(f.key) is not None and b.figure(f.key) is not None:
                out.append(f)
    return out


def resolve(name: str, metrics: Sequence[PerfMetric]) -> Figure | None:
    """A figure by its ``--sla`` name: a level metric (``output_tps``) or a per-request metric
    with a statistic (``ttft_p99``, ``latency_mean``); aliases accepted."""
    from .registry import sla_names

    names = sla_names(list(metrics))
    m = names.get(name)
    if m is not None and m.kind == "level":
        return Figure(m.name, m.summary_key, None, "level", m, _direction(m))
    base, _, stat = name.rpartition("_")
    stat = "mean" if stat == "avg" else stat
    m = names.get(base)
    if m is not None and m.kind == "request" and stat in STATS and stat != "std":
        return Figure(f"{m.name}_{stat}", m.summary_key, stat, "request", m, _direction(m))
    return None


# -- results ----------------------------------------------------------------------------------
@dataclass
class MetricComparison:
    figure: Figure
    a: float | None
    b: float | None
    ratio: float | None
    ci_low: float | None
    ci_high: float | None
    verdict: str
    word: str                 # better | worse | higher | lower | same | no CI | n/a
    method: str               # trials | bootstrap | batch means | none

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "ratio": self.ratio, "ci_low": self.ci_low, "ci_high": self.ci_high,
                "verdict": self.verdict}

    @property
    def significant(self) -> bool:
        return self.ci_low is not None and self.ci_high is not None and (self.ci_low > 1 or self.ci_high < 1)


@dataclass
class LevelComparison:
    level: str
    method: str               # "3 vs 3 trials" | "one measurement each: bootstrap over requests"
    metrics: dict[str, MetricComparison] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "metrics": {k: m.to_dict() for k, m in self.metrics.items()}}


@dataclass
class RunInfo:
    path: str
    model: str
    backend: str
    name: str | None

    @classmethod
    def of(cls, run: RunFolder) -> "RunInfo":
        return cls(str(run.path), run.model, run.backend, run.summary.name if run.summary else None)

    def describe(self) -> str:
        who = " · ".join(x for x in (self.model, self.backend, self.name) if x)
        return f"{self.path} ({who})"


@dataclass
class GateResult:
    gate: "Gate"
    level: str
    comparison: MetricComparison | None
    fired: bool

    def line(self, confidence: float) -> str:
        c = self.comparison
        if c is None or c.ratio is None:
            return f"{self.gate.text} at {self.level}: not measured in both runs"
        ci = _ci_text(c, confidence) if c.ci_low is not None else "no CI"
        return f"{self.gate.metric} at {self.level}: B/A {c.ratio:.3f}× ({ci}) {self.gate.op} {self.gate.pct:+g}%"


@dataclass
class PerfComparison:
    a: RunInfo
    b: RunInfo
    alpha: float
    levels: list[LevelComparison]
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    gates: list[GateResult] = field(default_factory=list)

    @property
    def confidence(self) -> float:
        return 1 - self.alpha

    def to_dict(self) -> dict[str, Any]:
        """``--json``: ``{"kind": "perf", "levels": [{"level", "metrics": {name: {a, b, ratio,
        ci_low, ci_high, verdict}}}]}``."""
        return {"kind": "perf", "levels": [lv.to_dict() for lv in self.levels]}

    def fired(self) -> list[GateResult]:
        return [g for g in self.gates if g.fired]

    def text(self, stats: Sequence[str] = TEXT_STATS) -> str:
        return compare_text(self, stats)


# -- the workload -----------------------------------------------------------------------------
def _dataset_options(pm: Any, dataset: str | None) -> list[str]:
    """Parameter names of the dataset plugin's own options (prompt lengths …)."""
    if not dataset:
        return []
    try:
        cls = pm.get("datasets", dataset)
    except Exception:  # noqa: BLE001 - not installed here: its options are compared by measurement only
        return []
    return [o.name for o in getattr(cls, "options", []) or [] if getattr(o, "name", None)]


def _value_text(v: Any) -> str:
    if v is None:
        return "not set"
    if isinstance(v, (list, tuple)):
        return " ".join(str(x) for x in v) or "not set"
    return str(v)


def workload_difference(ra: RunFolder, rb: RunFolder, pm: Any = None) -> str | None:
    """The first difference between the two runs' workloads, as a phrase (None: the same)."""
    from ..plugins import get_manager

    ca, cb = ra.config, rb.config
    sa, sb = ra.summary, rb.summary
    api_a = (sa.api if sa else None) or ca.get("api")
    api_b = (sb.api if sb else None) or cb.get("api")
    if (api_a or "chat") != (api_b or "chat"):
        return f"endpoint kind differs: A {api_a or 'chat'}, B {api_b or 'chat'}"
    for key, what in WORKLOAD_KEYS[1:]:
        va, vb = ca.get(key), cb.get(key)
        if key == "number":
            va, vb = ([] if v is None else list(v) if isinstance(v, (list, tuple)) else [v] for v in (va, vb))
        if key == "stream":
            va, vb = va is not False, vb is not False
        if va != vb:
            return f"{what} differs: A {_value_text(va)}, B {_value_text(vb)}"
    dataset = ca.get("dataset")
    for name in _dataset_options(pm or get_manager(), dataset):
        va, vb = ca.get(name), cb.get(name)
        if va != vb:
            return f"dataset option {name} differs: A {_value_text(va)}, B {_value_text(vb)}"
    for la, lb in _pairs(ra, rb):
        ia, ib = la.avg_input_tokens, lb.avg_input_tokens
        if ia and ib and abs(ib - ia) > INPUT_TOLERANCE * max(ia, ib):
            return (f"prompt lengths differ at {la.name}: A sent {ia:.0f} input tokens per request on average, "
                    f"B {ib:.0f}")
    return None


def _key(lv: PerfLevel) -> tuple:
    return (lv.concurrency, lv.rate, lv.label)


def _pairs(ra: RunFolder, rb: RunFolder) -> list[tuple[PerfLevel, PerfLevel]]:
    by_b = {_key(lv): lv for lv in rb.levels}
    return [(la, by_b[_key(la)]) for la in ra.levels if _key(la) in by_b]


# -- the comparison ---------------------------------------------------------------------------
def _as_perf(run: RunFolder | str | os.PathLike) -> RunFolder:
    folder = run if isinstance(run, RunFolder) else load_run(run)
    if folder.kind != "perf":
        raise DataError(f"{folder.path} is a {folder.display_kind} run; a perf comparison needs two perf run folders")
    return folder


def _trials(lv: PerfLevel) -> list[PerfLevel]:
    return list(lv.per_trial or []) if len(lv.per_trial or []) >= 2 else []


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _log_ratio_ci(ma: float, rel2_a: float, df_a: float, mb: float, rel2_b: float, df_b: float,
                  confidence: float) -> tuple[float, float, float]:
    """(ratio, low, high) of mb / ma from relative variances of the two means (delta method on
    the log ratio, Welch–Satterthwaite degrees of freedom)."""
    ratio = mb / ma
    v = rel2_a + rel2_b
    if v <= 0:
        return ratio, ratio, ratio
    df = v ** 2 / ((rel2_a ** 2 / df_a if df_a > 0 else 0) + (rel2_b ** 2 / df_b if df_b > 0 else 0))
    t = t_quantile(0.5 + confidence / 2, max(df, 1.0))
    half = t * math.sqrt(v)
    return ratio, ratio * math.exp(-half), ratio * math.exp(half)


def compare_perf_runs(run_a: RunFolder | str | os.PathLike, run_b: RunFolder | str | os.PathLike, *,
                      alpha: float = 0.05, seed: int = 0, resamples: int = DEFAULT_RESAMPLES,
                      gates: str | Sequence["Gate"] | None = None, pm: Any = None) -> PerfComparison:
    """Compare two perf run folders level by level (module doc). ``gates``: ``--fail-if`` text
    (or parsed gates), checked into :attr:`PerfComparison.gates`. Runs of different workloads,
    or with no level in common, raise a one-line :class:`DataError`."""
    from .registry import perf_metrics

    if not 0 < alpha < 1:
        raise DataError(f"alpha must be between 0 and 1, got {alpha}", "e.g. --alpha 0.05")
    ra, rb = _as_perf(run_a), _as_perf(run_b)
    metrics = perf_metrics(pm)
    parsed = parse_gates(gates, metrics) if isinstance(gates, str) or gates is None else list(gates)
    diff = workload_difference(ra, rb, pm)
    if diff is not None:
        raise DataError(f"cannot compare {ra.path} and {rb.path}: the workloads differ: {diff}",
                        "compare two perf runs of the same workload (same dataset, lengths, requests and endpoint)")
    pairs = _pairs(ra, rb)
    keys_b = {_key(lv) for lv in rb.levels}
    keys_a = {_key(lv) for lv in ra.levels}
    skipped = [f"{lv.name} (only in A)" for lv in ra.levels if _key(lv) not in keys_b]
    skipped += [f"{lv.name} (only in B)" for lv in rb.levels if _key(lv) not in keys_a]
    if not pairs:
        raise DataError(f"nothing to compare: {ra.path} and {rb.path} share no level "
                        f"(A: {', '.join(lv.name for lv in ra.levels) or 'none'}; "
                        f"B: {', '.join(lv.name for lv in rb.levels) or 'none'})",
                        "run both with the same --concurrency or --rate values")
    if parsed:
        for la, lb in pairs:
            if not (_trials(la) and _trials(lb)):
                which = "either run" if not (_trials(la) or _trials(lb)) else "A" if not _trials(la) else "B"
                raise ConfigError(f"--fail-if needs trials on both runs: {la.name} has none in {which}",
                                  "re-run both with --trials 3 or more: one measurement's interval misses the drift "
                                  "between runs, and gates on it fire on a server compared with itself "
                                  "(docs/compare.md)")
    confidence = 1 - alpha
    notes: list[str] = []
    rows: dict[int, dict[int, list]] = {}

    def rows_of(which: int, run: RunFolder, level: PerfLevel) -> list:
        if which not in rows:
            grouped: dict[int, list] = {}
            for r in run.requests():
                grouped.setdefault(r.level, []).append(r)
            rows[which] = grouped
        return rows[which].get(run.levels.index(level), [])

    out = []
    extra = [g.metric for g in parsed]
    for la, lb in pairs:
        ta, tb = _trials(la), _trials(lb)
        use_trials = bool(ta and tb)
        if use_trials:
            method = f"{len(ta)} vs {len(tb)} trials: t-interval on the log ratio of trial means"
        else:
            method = "bootstrap over requests" + ("" if closed_loop(la) else "; rates: batch means over time")
            notes.append("without trials on both sides the intervals see only the noise inside each run, not the drift "
                         "between runs: on a server compared with itself they exclude 1 far more often than 5 % "
                         "(bench/RESULTS.md); decide with --trials 3 or more")
            if ta or tb:
                notes.append(f"{la.name}: only {'A' if ta else 'B'} has trials; compared by a bootstrap over requests "
                             "(every trial pooled), which sees no variation between trials")
        lc = LevelComparison(la.name, method)
        boot: dict[tuple[int, str], Resampled] = {}
        for k, f in enumerate(figures_of(metrics, la, lb, extra=extra)):
            if use_trials:
                va = trial_values(ta, _StatMetric(f.key), f.stat)
                vb = trial_values(tb, _StatMetric(f.key), f.stat)
                lc.metrics[f.name] = _from_trials(f, va, vb, la.name, confidence)
            else:
                lc.metrics[f.name] = _from_requests(f, la, lb, lambda w, lv: rows_of(w, ra if w == 0 else rb, lv),
                                                    boot, [seed, zlib.crc32(f"{la.name}\0{f.name}".encode())],
                                                    resamples, confidence)
        for side, a, b in (("A", la, lb), ("B", lb, la)):
            if a.requests < b.requests:
                notes.append(f"{la.name}: {side} measured {a.requests} requests, the other {b.requests}"
                             + (" (interrupted)" if a.interrupted else " (stopped early)" if a.stopped else ""))
        oa, ob = la.avg_output_tokens, lb.avg_output_tokens
        if oa and ob and abs(ob - oa) > 0.05 * max(oa, ob):
            notes.append(f"{la.name}: outputs differ in length (A {oa:.0f}, B {ob:.0f} tokens per request on average): "
                         "token throughputs compare different amounts of text")
        out.append(lc)
    for key in ("seed", "temperature", "tokenizer", "warmup"):
        va, vb = ra.config.get(key), rb.config.get(key)
        if va != vb:
            notes.append(f"{key} differs: A {_value_text(va)}, B {_value_text(vb)}")
    result = PerfComparison(RunInfo.of(ra), RunInfo.of(rb), alpha, out, skipped, list(dict.fromkeys(notes)))
    result.gates = check_gates(result, parsed)
    return result


class _StatMetric:
    """What trial_values needs of a metric: its summary key."""

    def __init__(self, key: str):
        self.summary_key = key


def _from_trials(f: Figure, va: list[float], vb: list[float], level: str, confidence: float) -> MetricComparison:
    a = _mean(va) if va else None
    b = _mean(vb) if vb else None
    if len(va) < 2 or len(vb) < 2 or not a or b is None or a <= 0 or b < 0:
        return _no_ratio(f, a, b, level, "trials")
    if b == 0:
        return _no_ratio(f, a, b, level, "trials")
    sa = sum((x - a) ** 2 for x in va) / (len(va) - 1)
    sb = sum((x - b) ** 2 for x in vb) / (len(vb) - 1)
    ratio, lo, hi = _log_ratio_ci(a, sa / (len(va) * a * a), len(va) - 1, b, sb / (len(vb) * b * b), len(vb) - 1,
                                  confidence)
    return _verdict(f, a, b, ratio, lo, hi, level, confidence, "trials")


def _from_requests(f: Figure, la: PerfLevel, lb: PerfLevel, rows_of, boot: dict, seed: list[int], resamples: int,
                   confidence: float) -> MetricComparison:
    import numpy as np

    a, b = la.stat(f.key, f.stat), lb.stat(f.key, f.stat)
    if a is None or b is None or a <= 0 or b <= 0:
        return _no_ratio(f, a, b, la.name, "none")
    ratio = b / a
    if f.kind == "request":
        m = f.metric or _Undeclared(f.key)
        draws = []
        for which, lv in ((0, la), (1, lb)):
            res = boot.get((which, f.key))
            if res is None:
                values = request_values(rows_of(which, lv), m)
                res = boot[(which, f.key)] = Resampled(values, resamples, seed=[*seed, which]) if len(values) >= 2 else None
                if res is not None:
                    res.prepare(CI_STATS)
            draws.append(res.draws(f.stat) if res is not None else None)
        if draws[0] is None or draws[1] is None:
            return _verdict(f, a, b, ratio, None, None, la.name, confidence, "none",
                            why="per-request values not in perf.sqlite")
        with np.errstate(divide="ignore", invalid="ignore"):
            r = draws[1] / draws[0]
        r = r[np.isfinite(r)]
        if len(r) < 10:
            return _verdict(f, a, b, ratio, None, None, la.name, confidence, "none", why="too few requests")
        lo, hi = np.quantile(r, [0.5 - confidence / 2, 0.5 + confidence / 2])
        return _verdict(f, a, b, ratio, float(lo), float(hi), la.name, confidence, "bootstrap")
    if f.metric is None:
        return _verdict(f, a, b, ratio, None, None, la.name, confidence, "none", why="metric not installed here")
    if closed_loop(la) and closed_loop(lb):
        draws = [little_draws(rows_of(which, lv), f.metric, lv.slo, lv.duration_s, seed=[*seed, which])
                 for which, lv in ((0, la), (1, lb))]
        if draws[0] is not None and draws[1] is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                r = draws[1] / draws[0]
            r = r[np.isfinite(r)]
            if len(r) >= 10:
                lo, hi = np.quantile(r, [0.5 - confidence / 2, 0.5 + confidence / 2])
                return _verdict(f, a, b, ratio, float(lo), float(hi), la.name, confidence, "bootstrap")
    rel = []
    for which, lv in ((0, la), (1, lb)):
        windows = window_values(rows_of(which, lv), f.metric, lv.slo)
        rel.append(relative_se(windows) if windows else None)
    if rel[0] is None or rel[1] is None:
        return _verdict(f, a, b, ratio, None, None, la.name, confidence, "none", why="too few requests for batch means")
    ratio, lo, hi = _log_ratio_ci(a, rel[0][0] ** 2, rel[0][1], b, rel[1][0] ** 2, rel[1][1], confidence)
    return _verdict(f, a, b, ratio, lo, hi, la.name, confidence, "batch means")


class _Undeclared:
    """A per-request figure no installed plugin declares: its stored values, successful requests."""

    over = "ok"

    def __init__(self, key: str):
        self.summary_key = key


def _no_ratio(f: Figure, a: float | None, b: float | None, level: str, method: str) -> MetricComparison:
    why = "not measured in both runs" if a is None or b is None else "A is 0: no ratio" if not a else "B is 0: no ratio"
    return MetricComparison(f, a, b, None, None, None, f"{f.label} at {level}: {why}", "n/a", method)


def _ci_text(c: MetricComparison, confidence: float) -> str:
    return f"{100 * confidence:g}% CI {c.ci_low:.3f}–{c.ci_high:.3f}"


def _verdict(f: Figure, a: float, b: float, ratio: float, lo: float | None, hi: float | None, level: str,
             confidence: float, method: str, why: str | None = None) -> MetricComparison:
    c = MetricComparison(f, a, b, ratio, lo, hi, "", "", method)
    if lo is None or hi is None:
        c.word = "no CI"
        c.verdict = f"B's {f.label} is {ratio:.3f}× A's at {level} (no CI: {why or 'not computable'})"
        return c
    ci = f"({_ci_text(c, confidence)})"
    if not c.significant:
        c.word = "same"
        c.verdict = f"no clear difference in {f.label} at {level}: B/A {ratio:.3f}× {ci}"
        return c
    higher = lo > 1
    if f.direction is None:
        c.word = "higher" if higher else "lower"
        c.verdict = f"B's {f.label} is {ratio:.3f}× A's at {level} {ci}: {c.word}"
        return c
    better = higher == f.direction
    c.word = "better" if better else "worse"
    by = f"by {abs(ratio - 1):.1%}"
    if f.kind == "level" and f.direction and f.metric is not None and "/s" in f.metric.unit:
        c.verdict = f"B serves {ratio:.2f}× A's {f.label} at {level} {ci}: B is {c.word} {by}"
    else:
        c.verdict = f"B's {f.label} is {ratio:.3f}× A's at {level} {ci}: B is {c.word} {by}"
    return c


# -- regression gates -------------------------------------------------------------------------
_GATE = re.compile(r"^\s*([a-z][a-z0-9_]*)\s*(>|<)\s*([+-]?\d+(?:\.\d+)?)\s*%\s*$")


@dataclass
class Gate:
    text: str
    metric: str
    op: str
    pct: float

    @property
    def threshold(self) -> float:
        return 1 + self.pct / 100

    def fires(self, c: MetricComparison) -> bool:
        if c.ci_low is None or c.ci_high is None:
            return False
        return c.ci_low > self.threshold if self.op == ">" else c.ci_high < self.threshold


def parse_gates(text: str | None, metrics: Sequence[PerfMetric]) -> list[Gate]:
    """``--fail-if "ttft_p99>+10%,output_tps<-5%"``: comma-separated ``METRIC > +P%`` (B's
    figure more than P % above A's) or ``METRIC < -P%`` (more than P % below)."""
    out = []
    for part in (text or "").split(","):
        if not part.strip():
            continue
        m = _GATE.match(part.strip().lower())
        if not m:
            raise ConfigError(f"--fail-if: cannot read {part.strip()!r}",
                              "use METRIC>+P% or METRIC<-P%, e.g. --fail-if 'ttft_p99>+10%,output_tps<-5%'")
        name, op, pct = m.group(1), m.group(2), float(m.group(3))
        if resolve(name, metrics) is None:
            from .registry import sla_names

            names = sla_names(list(metrics))
            request = sorted(n for n, x in names.items() if x.kind == "request")
            level = sorted(n for n, x in names.items() if x.kind == "level")
            raise ConfigError(f"--fail-if: unknown metric {name!r} in {part.strip()!r}",
                              f"use {', '.join(request)} with a statistic (_p99, _mean, …), or {', '.join(level)}")
        out.append(Gate(part.strip(), resolve(name, metrics).name, op, pct))
    return out


def check_gates(result: PerfComparison, gates: Sequence[Gate]) -> list[GateResult]:
    out = []
    for g in gates:
        for lv in result.levels:
            c = lv.metrics.get(g.metric)
            out.append(GateResult(g, lv.level, c, c is not None and g.fires(c)))
    return out


# -- text ---------------------------------------------------------------------------------------
def _fmt(f: Figure, v: float | None) -> str:
    if v is None:
        return "-"
    unit = f.metric.unit if f.metric is not None else ""
    if unit == "s":
        return f"{1000 * v:.2f} ms"
    if unit == "share":
        return f"{100 * v:.1f}%"
    if abs(v) >= 100:
        return f"{v:,.1f}"
    return f"{v:.3g}" if abs(v) < 1 else f"{v:.2f}"


def level_table(lc: LevelComparison, confidence: float, stats: Sequence[str] = TEXT_STATS,
                gated: Sequence[str] = ()) -> str:
    from ..texttable import grid_table

    rows = []
    for name, c in lc.metrics.items():
        f = c.figure
        if f.stat is not None and f.stat not in stats and name not in gated:
            continue
        ci = "-" if c.ci_low is None else f"{c.ci_low:.3f}–{c.ci_high:.3f}"
        word = {"better": "B better", "worse": "B worse", "higher": "B higher", "lower": "B lower",
                "same": "no clear difference"}.get(c.word, c.word)
        rows.append([name, _fmt(f, c.a), _fmt(f, c.b), "-" if c.ratio is None else f"{c.ratio:.3f}", ci, word])
    return grid_table(["Metric", "A", "B", "B/A", f"{100 * confidence:g}% CI", "Verdict"], rows, right={1, 2, 3, 4})


def compare_text(result: PerfComparison, stats: Sequence[str] = TEXT_STATS) -> str:
    """Terminal output: A and B, a table per shared level, the clear differences in words,
    skipped levels, notes, gates."""
    lines = [f"A: {result.a.describe()}", f"B: {result.b.describe()}",
             f"B/A per level with {100 * result.confidence:g}% confidence intervals (the JSON also has mean and p90)"]
    gated = [g.gate.metric for g in result.gates]
    for lc in result.levels:
        lines.append(f"{lc.level} ({lc.method})")
        lines.append(level_table(lc, result.confidence, stats, gated))
    clear = [c.verdict for lc in result.levels for c in lc.metrics.values()
             if c.word in ("better", "worse") and (c.figure.stat is None or c.figure.stat in stats)]
    if clear:
        lines.append("Clear differences:")
        lines += [f"  • {v}" for v in clear]
    else:
        lines.append("No clear difference in any figure at any shared level.")
    lines += [f"skipped: {s}" for s in result.skipped]
    lines += [f"note: {n}" for n in result.notes]
    for g in result.gates:
        if g.fired:
            lines.append(f"gate {g.gate.text}: FAILED: {g.line(result.confidence)}")
    if result.gates and not result.fired():
        lines.append(f"gates ({', '.join(dict.fromkeys(g.gate.text for g in result.gates))}): passed (no change beyond "
                     "a threshold is shown by the intervals)")
    return "\n".join(lines)


# -- the report page and the app ----------------------------------------------------------------
def perf_compare_view(result: PerfComparison, stats: Sequence[str] = TEXT_STATS) -> dict[str, Any]:
    """The comparison as plain data, the report page's section and the app's compare page
    alike: A and B described, the clear differences in words (``clear``), a table per shared
    level (``levels``: rows of name, A, B, B/A, CI, word, verdict; request statistics
    ``stats`` only), skipped levels, notes and the confidence in percent. ``error`` is None
    (a refused pair is ``{"error": line}``)."""
    levels = []
    for lc in result.levels:
        rows = []
        for name, c in lc.metrics.items():
            if c.figure.stat is not None and c.figure.stat not in stats:
                continue
            rows.append({"name": name, "a": _fmt(c.figure, c.a), "b": _fmt(c.figure, c.b),
                         "ratio": "-" if c.ratio is None else f"{c.ratio:.3f}",
                         "ci": "-" if c.ci_low is None else f"{c.ci_low:.3f}–{c.ci_high:.3f}",
                         "word": c.word, "verdict": c.verdict})
        levels.append({"level": lc.level, "method": lc.method, "rows": rows})
    clear = [c.verdict for lc in result.levels for c in lc.metrics.values()
             if c.word in ("better", "worse") and (c.figure.stat is None or c.figure.stat in stats)]
    return {"error": None, "a": result.a.describe(), "b": result.b.describe(), "levels": levels, "clear": clear,
            "skipped": list(result.skipped), "notes": list(result.notes), "confidence": f"{100 * result.confidence:g}"}


def perf_compare_view_for_runs(run_a: RunFolder, run_b: RunFolder, **kwargs: Any) -> dict[str, Any]:
    """:func:`perf_compare_view` of two perf runs; runs that cannot be compared (other
    workloads, no shared level) give ``{"error": the one-line reason}``."""
    from ..errors import LmgaugeError

    try:
        result = compare_perf_runs(run_a, run_b, **kwargs)
    except LmgaugeError as exc:
        return {"error": exc.line()}
    return perf_compare_view(result)


def compare_section_html(result: PerfComparison) -> str:
    """The report page's section (template ``perfcompare.html.j2``, every value escaped)."""
    from ..htmlreport.templating import render

    return render("perfcompare.html.j2", **perf_compare_view(result))


def compare_perf_section_for_runs(run_a: RunFolder, run_b: RunFolder, **kwargs: Any) -> str:
    """The section for two perf runs on the report page; runs that cannot be compared give a
    short explanation instead (the page is still written)."""
    from ..htmlreport.templating import render

    return render("perfcompare.html.j2", **perf_compare_view_for_runs(run_a, run_b, **kwargs))
