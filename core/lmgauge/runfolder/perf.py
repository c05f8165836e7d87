"""``summary.json`` of a perf run folder: :class:`PerfSummary` with one :class:`PerfLevel` per
level (``runs``), and :class:`Distribution`, the statistics of a per-request figure.

A level's figures are those of the perf metrics declared through ``register_perf_metrics``
(lmgauge.perf.builtin_metrics and any plugin's): ``figures`` maps each metric's ``key`` to its
:class:`Distribution` (per-request metrics) or number (level metrics: rates, shares). Every
other field of a level is its identity (concurrency, rate, label), counts, the workload that
paced it and what happened (failures, interruptions). summary.json keeps the flat shape of
schema 1: figures sit beside the other fields under their keys.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Iterable, Sequence

from .schema import SCHEMA_VERSION, split_known

PERCENTILES = (10, 25, 50, 66, 75, 80, 90, 95, 98, 99)
STATS = ("mean", "std", "min", "max", *(f"p{p}" for p in PERCENTILES))
#: endpoint kinds of schema 1 that generate no text (schema 2 records ``generates_text``)
_V1_NO_TEXT = ("embeddings", "rerank", "score")


@dataclass
class Distribution:
    """count, mean, std (population), min, max and percentiles 10…99 (linear interpolation,
    as numpy) of a per-request figure; every statistic ``None`` when ``count`` is 0."""

    count: int = 0
    values: dict[str, float | None] = field(default_factory=lambda: dict.fromkeys(STATS))

    @classmethod
    def of(cls, values: Iterable[float | None]) -> "Distribution":
        vals = sorted(v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v)))
        n = len(vals)
        out: dict[str, float | None] = dict.fromkeys(STATS)
        if n:
            mean = sum(vals) / n
            out["mean"] = mean
            out["std"] = math.sqrt(sum((v - mean) ** 2 for v in vals) / n)
            out["min"], out["max"] = vals[0], vals[-1]
            for p in PERCENTILES:
                out[f"p{p}"] = percentile(vals, p)
        return cls(n, out)

    def get(self, stat: str) -> float | None:
        """A statistic by name: ``mean`` (``avg``), ``std``, ``min``, ``max``, ``p50`` …, ``count``."""
        if stat == "count":
            return self.count
        return self.values.get("mean" if stat == "avg" else stat)

    def __getitem__(self, stat: str) -> float | None:
        return self.get(stat)

    @property
    def mean(self) -> float | None:
        return self.values.get("mean")

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, **self.values}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Distribution":
        return cls(int(data.get("count") or 0), {k: v for k, v in data.items() if k != "count"})

    @staticmethod
    def looks_like(value: Any) -> bool:
        return isinstance(value, dict) and "count" in value and "mean" in value


def percentile(sorted_values: Sequence[float], p: float) -> float:
    rank = p / 100 * (len(sorted_values) - 1)
    lo = int(math.floor(rank))
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (rank - lo)


def _figure_in(value: Any) -> Any:
    return Distribution.from_dict(value) if Distribution.looks_like(value) else value


def _figure_out(value: Any) -> Any:
    return value.to_dict() if isinstance(value, Distribution) else value


@dataclass
class PerfLevel:
    """One level of a perf run (summary.json ``runs[i]``): a concurrency, a request rate, a
    ramp or a trace replay, merged over its trials. ``turns`` and ``endpoints`` hold the same
    shape per turn index (multi-turn) and per server (several ``--url``)."""

    concurrency: int | None = None
    rate: float | None = None
    label: str | None = None
    requests: int = 0
    succeeded: int = 0
    failed: int = 0
    duration_s: float = 0.0
    api: str | None = None
    generates_text: bool | None = None
    input_unit: str | None = None
    workers: int | None = None
    tokenizer: str | None = None
    clock_origin: float | None = None
    failures: dict[str, int] = field(default_factory=dict)
    failure_examples: dict[str, str] = field(default_factory=dict)
    usage_source: dict[str, int] = field(default_factory=dict)
    client_cpu_s: float | None = None
    client_cpu_share: float | None = None
    target_rate: float | None = None
    scheduled_rate: float | None = None
    achieved_rate: float | None = None
    input_tokens_total: int = 0
    output_tokens_total: int = 0
    avg_input_tokens: float | None = None
    avg_output_tokens: float | None = None
    inputs_total: int | None = None
    embedding_dims: list[int] | None = None
    images: dict[str, Any] | None = None
    slo: dict[str, float] | None = None
    slo_attainment: float | None = None
    interrupted: bool | None = None
    abandoned_in_flight: int | None = None
    sessions: dict[str, Any] | None = None
    turns: list["PerfLevel"] | None = None
    turn: int | None = None
    endpoints: list["PerfLevel"] | None = None
    endpoint: str | None = None
    ramp: dict[str, Any] | None = None
    trace: dict[str, Any] | None = None
    timeline: list[dict[str, Any]] | None = None
    nodes: list[dict[str, Any]] | None = None
    server_metrics: dict[str, Any] | None = None
    sla: dict[str, Any] | None = None
    trials: int | None = None
    ci: dict[str, list[float | None]] | None = None
    per_trial: list["PerfLevel"] | None = None
    trial: int | None = None
    reset_cache: dict[str, Any] | None = None
    stopped: dict[str, Any] | None = None
    notes: list[str] | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    # -- reading -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """How the level is named in tables and advice: its own label (ramp, trace replay),
        else its request rate or concurrency."""
        if self.label:
            return str(self.label)
        if self.rate is not None:
            return f"rate {self.rate:g} req/s"
        return f"concurrency {self.concurrency}"

    @property
    def text(self) -> bool:
        """The endpoint generates text (chat, completions, responses …), so TTFT, ITL and
        output tokens mean something."""
        if self.generates_text is not None:
            return bool(self.generates_text)
        return self.api not in _V1_NO_TEXT

    @property
    def success_rate(self) -> float:
        return self.succeeded / self.requests if self.requests else 0.0

    def figure(self, key: str) -> Any:
        """A declared metric's figure by its key (``ttft_s``, ``request_throughput`` …):
        a :class:`Distribution`, a number, or ``None`` when this level has none."""
        return self.figures.get(key)

    def dist(self, key: str) -> Distribution:
        """A per-request metric's :class:`Distribution` (empty when absent)."""
        value = self.figures.get(key)
        return value if isinstance(value, Distribution) else Distribution()

    def stat(self, key: str, stat: str | None = None) -> float | None:
        """One number: a level figure, or a statistic of a per-request one."""
        value = self.figures.get(key)
        if isinstance(value, Distribution):
            return value.get(stat or "mean")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return None if isinstance(value, float) and math.isnan(value) else float(value)
        return None

    # -- JSON ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name in ("figures", "extra"):
                continue
            value = getattr(self, f.name)
            if value is None and f.name in _OPTIONAL:
                continue
            if f.name in _NESTED and value is not None:
                value = [lv.to_dict() for lv in value]
            out[f.name] = value
        out["success_rate"] = self.success_rate
        for k, v in self.figures.items():
            out[k] = _figure_out(v)
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PerfLevel":
        known, rest = split_known(cls, data)
        for name in _NESTED:
            if isinstance(known.get(name), list):
                known[name] = [cls.from_dict(x) for x in known[name] if isinstance(x, dict)]
            elif name in known:
                known[name] = None
        for name in ("failures", "failure_examples", "usage_source"):
            if not isinstance(known.get(name), dict):
                known[name] = {}
        figures, extra = {}, {}
        for k, v in rest.items():
            if k == "success_rate":
                continue
            if Distribution.looks_like(v) or v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)):
                figures[k] = _figure_in(v)
            else:
                extra[k] = v
        return cls(**known, figures=figures, extra=extra)


_NESTED = ("turns", "endpoints", "per_trial")
_OPTIONAL = ("label", "generates_text", "input_unit", "workers", "tokenizer", "clock_origin", "inputs_total", "embedding_dims",
             "images", "slo", "slo_attainment", "interrupted", "abandoned_in_flight", "sessions", "turns", "turn",
             "endpoints", "endpoint", "ramp", "trace", "timeline", "nodes", "server_metrics", "sla", "trials", "ci",
             "per_trial", "trial", "reset_cache", "stopped", "notes", "api")


@dataclass
class PerfSummary:
    """summary.json: the run's identity and settings (``config``, redacted), one
    :class:`PerfLevel` per level in ``runs``, and what the sweep concluded (``best``,
    ``recommendations``, ``sla_search``)."""

    model: str = ""
    url: str | None = None
    urls: list[str] | None = None
    backend: str | None = None
    name: str | None = None
    created: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    load_time_s: float | None = None
    tokenizer: str | None = None
    api: str | None = None
    generates_text: bool | None = None
    runs: list[PerfLevel] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=dict)
    recommendations: list[str] = field(default_factory=list)
    sla_search: dict[str, Any] | None = None
    trials: int | None = None
    saturation: dict[str, Any] | None = None
    #: the level running now (its label, requests done and failed of total, elapsed, req/s,
    #: TTFT and latency p50/p99 so far), rewritten every 2 s while it runs; None between levels
    current: dict[str, Any] | None = None
    kind: str = "perf"
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def levels(self) -> list[PerfLevel]:
        return self.runs

    @property
    def text(self) -> bool:
        if self.generates_text is not None:
            return bool(self.generates_text)
        if self.runs:
            return any(lv.text for lv in self.runs)
        return self.api not in _V1_NO_TEXT

    def axis(self) -> str:
        """``"rate"`` when any level is open-loop, else ``"concurrency"``."""
        return "rate" if any(lv.rate is not None for lv in self.runs) else "concurrency"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "schema_version": self.schema_version, "model": self.model,
                               "url": self.url}
        if self.urls:
            out["urls"] = self.urls
        out.update(backend=self.backend, name=self.name, created=self.created, config=self.config,
                   load_time_s=self.load_time_s, tokenizer=self.tokenizer, api=self.api)
        if self.generates_text is not None:
            out["generates_text"] = self.generates_text
        out["runs"] = [lv.to_dict() for lv in self.runs]
        out["best"] = self.best
        out["recommendations"] = self.recommendations
        for name in ("sla_search", "trials", "saturation", "current"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PerfSummary":
        known, extra = split_known(cls, data)
        known["runs"] = [PerfLevel.from_dict(lv) for lv in known.get("runs") or [] if isinstance(lv, dict)]
        known.setdefault("schema_version", 1)
        if not isinstance(known.get("config"), dict):
            known["config"] = {}
        if not isinstance(known.get("best"), dict):
            known["best"] = {}
        known["recommendations"] = [str(r) for r in known.get("recommendations") or [] if r]
        if known.get("schema_version", 1) < 2:
            for lv in known["runs"]:
                _v1_level(lv, known.get("api"))
        return cls(**known, extra=extra)


def _v1_level(lv: PerfLevel, api: str | None) -> None:
    """Schema 1 levels name their endpoint kind; whether it generated text, and what its
    requests' inputs were, follow from it."""
    lv.api = lv.api or api
    if lv.generates_text is None:
        lv.generates_text = lv.api not in _V1_NO_TEXT
    if lv.input_unit is None and not lv.generates_text:
        lv.input_unit = "inputs" if lv.api == "embeddings" else "documents"
    for sub in (lv.turns or []) + (lv.endpoints or []):
        _v1_level(sub, lv.api)
