"""From journal records to ``report.json`` and the terminal table.

Rows: one per (benchmark, subset, metric); ``subset`` is ``OVERALL`` for the whole benchmark.
A collection adds rows under its own name: ``OVERALL`` (micro: every question counts once),
``MACRO`` (mean of benchmark scores) and ``WEIGHTED`` (benchmark scores by collection weight).
Samples whose request failed are counted as errors, never as wrong answers.
"""
from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..interfaces import Metric
from ..texttable import grid_table
from .metrics import confidence_interval

TRUNCATION_WARN = 0.05


def _natural(s: str) -> list[Any]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]


def _ci_row(benchmark: str, subset: str, metric: str, values: Sequence[float]) -> dict[str, Any]:
    lo, hi = confidence_interval(values)
    return {"benchmark": benchmark, "subset": subset, "metric": metric,
            "score": round(sum(values) / len(values), 6) if values else None,
            "count": len(values), "ci_low": _r(lo), "ci_high": _r(hi)}


def _r(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(x, 6)


@dataclass
class Report:
    """The result of an eval: ``data`` is exactly what report.json holds."""

    data: dict[str, Any]

    @property
    def results(self) -> list[dict[str, Any]]:
        return self.data["results"]

    def score(self, benchmark: str, metric: str = "AveragePass@1", subset: str = "OVERALL") -> float | None:
        for row in self.results:
            if (row["benchmark"], row["subset"], row["metric"]) == (benchmark, subset, metric):
                return row["score"]
        raise KeyError(f"no result for {benchmark}/{subset}/{metric}")

    def table(self) -> str:
        return render_table(self.data)

    def to_dict(self) -> dict[str, Any]:
        return self.data


@dataclass
class CollectionSpec:
    name: str
    weights: dict[str, float] = field(default_factory=dict)


def build_results(records: list[dict[str, Any]], metrics: list[Metric], repeats: int,
                  planned: dict[str, int], collection: CollectionSpec | None = None,
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Return (results rows, per-benchmark summaries)."""
    # group graded repeats per question, in repeat order
    questions: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    stats: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for rec in records:
        b = rec["benchmark"]
        st = stats[b]
        st["samples"] += 1
        if rec.get("error"):
            st["errors"] += 1
            continue
        st["graded"] += 1
        if rec.get("truncated"):
            st["truncated"] += 1
        questions[(b, rec["sample_id"])].append(rec)

    active = [m for m in metrics if repeats >= m.min_repeats]
    # per-question metric values, with their subsets
    perq: dict[str, list[tuple[tuple[str, ...], dict[str, float]]]] = defaultdict(list)
    for (b, _sid), recs in questions.items():
        recs.sort(key=lambda r: r["repeat"])
        values = [float(r["score"]) for r in recs]
        extracted = [r.get("extracted") for r in recs]
        row = {m.label(repeats): float(m.per_question(values, extracted, repeats)) for m in active}
        perq[b].append((tuple(recs[0].get("subsets") or ()), row))

    results: list[dict[str, Any]] = []
    bench_names = sorted(set(stats) | set(perq) | set(planned))
    per_bench_values: dict[str, dict[str, list[float]]] = {}
    for b in bench_names:
        items = perq.get(b, [])
        subsets = sorted({s for subs, _ in items for s in subs}, key=_natural)
        per_bench_values[b] = {}
        for m in active:
            label = m.label(repeats)
            for s in subsets:
                vals = [row[label] for subs, row in items if s in subs]
                results.append(_ci_row(b, s, label, vals))
            overall = [row[label] for _, row in items]
            per_bench_values[b][label] = overall
            results.append(_ci_row(b, "OVERALL", label, overall))

    if collection is not None:
        results.extend(_collection_rows(collection, per_bench_values, active, repeats))

    summaries = []
    for b in bench_names:
        st = stats.get(b, {})
        graded = st.get("graded", 0)
        trunc = st.get("truncated", 0)
        rate = trunc / graded if graded else 0.0
        warnings = []
        if rate > TRUNCATION_WARN:
            warnings.append(f"{trunc} of {graded} responses ({rate:.1%}) were cut by max_tokens: "
                            "scores are unreliable (answers missing, or taken from unfinished thinking); raise --max-tokens")
        if st.get("errors"):
            warnings.append(f"{st['errors']} samples failed after retries (not scored); "
                            "re-run them with --resume DIR")
        missing = planned.get(b, 0) * repeats - st.get("samples", 0)
        if missing > 0:
            warnings.append(f"{missing} samples not run yet; finish with --resume DIR")
        summaries.append({"benchmark": b, "questions": planned.get(b, len(perq.get(b, []))),
                          "samples": st.get("samples", 0), "missing": max(0, missing), "graded": graded,
                          "errors": st.get("errors", 0), "truncated": trunc,
                          "truncated_rate": round(rate, 6), "warnings": warnings})
    return results, summaries


def _collection_rows(spec: CollectionSpec, values: dict[str, dict[str, list[float]]],
                     metrics: list[Metric], repeats: int) -> list[dict[str, Any]]:
    from scipy import stats

    z = float(stats.norm.ppf(0.975))
    rows = []
    names = [b for b in spec.weights if values.get(b)]
    for m in metrics:
        label = m.label(repeats)
        pooled = [v for b in names for v in values[b].get(label, [])]
        rows.append(_ci_row(spec.name, "OVERALL", label, pooled))
        means, ses = [], []
        for b in names:
            vals = values[b].get(label, [])
            n = len(vals)
            mean = sum(vals) / n
            var = sum((v - mean) ** 2 for v in vals) / (n - 1) if n > 1 else 0.0
            means.append(mean)
            ses.append(math.sqrt(var / n))
        if not names:
            continue
        for subset, w in (("MACRO", [1.0] * len(names)), ("WEIGHTED", [float(spec.weights[b]) for b in names])):
            total = sum(w)
            if total <= 0:
                continue
            ws = [x / total for x in w]
            score = sum(wi * mi for wi, mi in zip(ws, means))
            se = math.sqrt(sum((wi * si) ** 2 for wi, si in zip(ws, ses)))
            rows.append({"benchmark": spec.name, "subset": subset, "metric": label,
                         "score": round(score, 6), "count": len(pooled),
                         "ci_low": _r(max(0.0, score - z * se)), "ci_high": _r(min(1.0, score + z * se))})
    return rows


def render_table(data: dict[str, Any]) -> str:
    """The seed's table: Model | Dataset | Metric | Subset | Num | Score | 95% CI."""
    header = ["Model", "Dataset", "Metric", "Subset", "Num", "Score", "95% CI"]
    rows = []
    for r in data["results"]:
        score = "-" if r["score"] is None else f"{r['score']:.4f}"
        ci = "-" if r.get("ci_low") is None else f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
        rows.append([data.get("model", ""), r["benchmark"], r["metric"], r["subset"],
                     str(r["count"]), score, ci])
    lines = [grid_table(header, rows, right={4, 5}, rule_between_rows=True)]
    notes = [f"{s['benchmark']}: {w}" for s in data.get("benchmarks", []) for w in s["warnings"]]
    for s in data.get("benchmarks", []):
        if s.get("truncated") or s.get("errors"):
            notes.insert(0, f"{s['benchmark']}: {s['truncated']} truncated, {s['errors']} errors "
                            f"of {s['samples']} samples")
    return "\n".join(lines + [f"note: {n}" for n in dict.fromkeys(notes)])
