"""``report.json`` of an eval (or regrade) run folder, and ``changes.jsonl`` of a regrade.

:class:`EvalReport` is what report.json holds: ``results`` (one :class:`ResultRow` per
benchmark, subset and metric) and ``benchmarks`` (one :class:`BenchmarkSummary` each: counts,
health, warnings and the analytics the report builder adds), plus the run's identity and the
optional sections (collection, judge, endpoints, regrade). The eval runner and ``lmgauge
regrade`` build it with :func:`lmgauge.eval.report.build_report`; every reader gets it from
:class:`lmgauge.runfolder.RunFolder`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Iterator

from .schema import SCHEMA_VERSION, split_known

MAIN_METRIC = "AveragePass@1"
OVERALL = "OVERALL"


@dataclass
class ResultRow:
    """One score: a metric over the questions of a benchmark's subset (``OVERALL``: all of
    them; a collection adds ``MACRO`` and ``WEIGHTED``), with its 95% CI."""

    benchmark: str
    subset: str
    metric: str
    score: float | None = None
    count: int = 0
    ci_low: float | None = None
    ci_high: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"benchmark": self.benchmark, "subset": self.subset, "metric": self.metric, "score": self.score,
                "count": self.count, "ci_low": self.ci_low, "ci_high": self.ci_high, **self.extra}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ResultRow":
        known, extra = split_known(cls, data)
        return cls(**known, extra=extra)


@dataclass
class BenchmarkSummary:
    """One benchmark's counts and health: ``samples`` journaled (latest per key), ``graded``,
    ``errors`` (requests that failed), ``grader_errors`` (answers the grader could not
    grade), ``truncated`` (cut by max_tokens), ``missing`` (planned, not run yet), and the
    warnings. ``lengths`` / ``subset_lengths`` / ``budget_curve`` hold the reasoning-length
    analytics (lmgauge.eval.lengths) when computed."""

    benchmark: str
    questions: int = 0
    samples: int = 0
    missing: int = 0
    graded: int = 0
    errors: int = 0
    truncated: int = 0
    truncated_rate: float = 0.0
    warnings: list[str] = field(default_factory=list)
    grader_errors: int = 0
    error_examples: dict[str, int] | None = None
    lengths: dict[str, Any] | None = None
    subset_lengths: dict[str, dict[str, Any]] | None = None
    budget_curve: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        for name in ("error_examples", "lengths", "subset_lengths", "budget_curve"):
            if out[name] is None:
                del out[name]
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BenchmarkSummary":
        known, extra = split_known(cls, data)
        known["warnings"] = [str(w) for w in known.get("warnings") or []]
        return cls(**known, extra=extra)


@dataclass
class EvalReport:
    """report.json. ``config`` is the run's settings (redacted); ``complete`` is false while
    samples are missing (interrupted, or not yet run)."""

    model: str = ""
    backend: str | None = None
    created: str = ""
    elapsed_s: float | None = None
    request_phase_s: float | None = None
    complete: bool = False
    repeats: int = 1
    config: dict[str, Any] = field(default_factory=dict)
    results: list[ResultRow] = field(default_factory=list)
    benchmarks: list[BenchmarkSummary] = field(default_factory=list)
    collection: dict[str, Any] | None = None
    judge: dict[str, Any] | None = None
    endpoints: list[dict[str, Any]] | None = None
    regrade: dict[str, Any] | None = None
    kind: str = "eval"
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    # -- reading -------------------------------------------------------------------------
    def rows(self, benchmark: str | None = None, subset: str | None = None,
             metric: str | None = None) -> Iterator[ResultRow]:
        for r in self.results:
            if ((benchmark is None or r.benchmark == benchmark) and (subset is None or r.subset == subset)
                    and (metric is None or r.metric == metric)):
                yield r

    def score(self, benchmark: str, metric: str = MAIN_METRIC, subset: str = OVERALL) -> float | None:
        row = next(self.rows(benchmark, subset, metric), None)
        if row is None:
            raise KeyError(f"no result for {benchmark}/{subset}/{metric}")
        return row.score

    def main_row(self, benchmark: str) -> ResultRow | None:
        """The benchmark's headline: AveragePass@1 over OVERALL, else its first OVERALL row."""
        rows = list(self.rows(benchmark, OVERALL))
        return next((r for r in rows if r.metric == MAIN_METRIC), rows[0] if rows else None)

    def benchmark_names(self) -> list[str]:
        """Benchmarks (and collections) with an OVERALL row, in report order."""
        return list(dict.fromkeys(r.benchmark for r in self.results if r.subset == OVERALL))

    def summary(self, benchmark: str) -> BenchmarkSummary | None:
        return next((b for b in self.benchmarks if b.benchmark == benchmark), None)

    @property
    def main_metric(self) -> str | None:
        labels = [r.metric for r in self.results]
        return MAIN_METRIC if MAIN_METRIC in labels else (labels[0] if labels else None)

    def main_scores(self) -> dict[str, float | None]:
        """Each benchmark's OVERALL score under the main metric."""
        label = self.main_metric
        return {r.benchmark: r.score for r in self.results if r.metric == label and r.subset == OVERALL}

    @property
    def data(self) -> dict[str, Any]:
        """report.json as a plain mapping (what ``lmgauge.evaluate`` returned before the report
        was typed: scripts that read ``report.data[...]`` keep working)."""
        return self.to_dict()

    # -- JSON ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "schema_version": self.schema_version, "model": self.model,
                               "backend": self.backend, "created": self.created, "elapsed_s": self.elapsed_s,
                               "request_phase_s": self.request_phase_s, "complete": self.complete,
                               "repeats": self.repeats, "config": self.config,
                               "results": [r.to_dict() for r in self.results],
                               "benchmarks": [b.to_dict() for b in self.benchmarks]}
        for name in ("collection", "judge", "endpoints", "regrade"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EvalReport":
        known, extra = split_known(cls, data)
        known["results"] = [ResultRow.from_dict(r) for r in known.get("results") or [] if isinstance(r, dict)]
        known["benchmarks"] = [BenchmarkSummary.from_dict(b) for b in known.get("benchmarks") or []
                               if isinstance(b, dict)]
        known.setdefault("schema_version", 1)
        if not isinstance(known.get("config"), dict):
            known["config"] = {}
        return cls(**known, extra=extra)


@dataclass
class RegradeChange:
    """One line of a regrade's ``changes.jsonl``: a sample whose score changed."""

    benchmark: str
    sample_id: str
    repeat: int
    change: str  # "wrong→right", "right→wrong" or "score"
    score_before: float
    score_after: float
    extracted_before: str | None = None
    extracted_after: str | None = None
    detail_before: str | None = None
    detail_after: str | None = None
    judge_verdict: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RegradeChange":
        known, extra = split_known(cls, data)
        return cls(**known, extra=extra)
