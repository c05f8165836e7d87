"""From journal records to the report (:class:`lmgauge.runfolder.EvalReport`) and the terminal
table. The eval runner, ``lmgauge regrade`` and ``lmgauge serve`` (live rows of a running
eval) build it here, from the same records, the same way.

Rows: one per (benchmark, subset, metric); ``subset`` is ``OVERALL`` for the whole benchmark.
A collection adds rows under its own name: ``OVERALL`` (micro: every question counts once),
``MACRO`` (mean of benchmark scores) and ``WEIGHTED`` (benchmark scores by collection weight).
Samples whose request failed are counted as errors, samples the grader could not grade as
grader errors: neither is ever a wrong answer.

:func:`build_report` also measures how the model reasoned, in the same single pass over the
records (:class:`lmgauge.eval.lengths.LengthAnalytics` fed on the way to :func:`build_results`):
``BenchmarkSummary.lengths``, ``.subset_lengths`` and ``.budget_curve``. :func:`length_lines`
turns them into the terminal summary's lines (``lmgauge eval`` and ``lmgauge report``).
"""
from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from ..interfaces import Metric
from ..runfolder import BenchmarkSummary, EvalReport, ResultRow, SampleRecord
from ..runfolder.schema import now_iso
from ..texttable import clean_cell, grid_table
from .lengths import APPROXIMATE, FALLBACK_TOKENIZER, LengthAnalytics
from .metrics import confidence_interval

TRUNCATION_WARN = 0.05

#: the report lmgauge.evaluate() returns (report.json, typed)
Report = EvalReport


def _natural(s: str) -> list[Any]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]


def _ci_row(benchmark: str, subset: str, metric: str, values: Sequence[float]) -> ResultRow:
    lo, hi = confidence_interval(values)
    return ResultRow(benchmark, subset, metric, round(sum(values) / len(values), 6) if values else None,
                     len(values), _r(lo), _r(hi))


def _r(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(x, 6)


@dataclass
class CollectionSpec:
    name: str
    weights: dict[str, float] = field(default_factory=dict)


@dataclass
class _Stats:
    samples: int = 0
    graded: int = 0
    errors: int = 0
    grader_errors: int = 0
    truncated: int = 0
    error_kinds: Counter = field(default_factory=Counter)


def _error_kind(text: str | None) -> str:
    """How a failure is counted: its text on one line, at most 80 characters."""
    text = " ".join((text or "unknown error").split())
    return text[:80]


def build_results(records: Iterable[SampleRecord], metrics: list[Metric], repeats: int,
                  planned: dict[str, int], collection: CollectionSpec | None = None,
                  ) -> tuple[list[ResultRow], list[BenchmarkSummary]]:
    """(results rows, per-benchmark summaries) from the latest record of every sample,
    read once; only each graded sample's score and extracted answer are kept."""
    questions: dict[tuple[str, str], tuple[tuple[str, ...], list[tuple[int, float, str | None]]]] = {}
    stats: dict[str, _Stats] = defaultdict(_Stats)
    for rec in records:
        st = stats[rec.benchmark]
        st.samples += 1
        if rec.failed:
            st.errors += 1
            st.error_kinds[_error_kind(rec.error)] += 1
            continue
        if rec.grader_failed or rec.score is None:
            st.grader_errors += 1
            st.error_kinds[_error_kind(rec.grade_detail or "grader error")] += 1
            continue
        st.graded += 1
        if rec.truncated:
            st.truncated += 1
        key = (rec.benchmark, rec.sample_id)
        q = questions.get(key)
        if q is None:
            q = questions[key] = (tuple(rec.subsets), [])
        q[1].append((rec.repeat, float(rec.score), rec.extracted))

    active = [m for m in metrics if repeats >= m.min_repeats]
    perq: dict[str, list[tuple[tuple[str, ...], dict[str, float]]]] = defaultdict(list)
    for (b, _sid), (subsets, reps) in questions.items():
        reps.sort(key=lambda r: r[0])
        values = [v for _, v, _ in reps]
        extracted = [x for _, _, x in reps]
        row = {m.label(repeats): float(m.per_question(values, extracted, repeats)) for m in active}
        perq[b].append((subsets, row))

    results: list[ResultRow] = []
    bench_names = sorted(set(stats) | set(perq) | set(planned))
    per_bench_values: dict[str, dict[str, list[float]]] = {}
    for b in bench_names:
        items = perq.get(b, [])
        subsets = sorted({s for subs, _ in items for s in subs}, key=_natural)
        per_bench_values[b] = {}
        for m in active:
            label = m.label(repeats)
            for s in subsets:
                results.append(_ci_row(b, s, label, [row[label] for subs, row in items if s in subs]))
            overall = [row[label] for _, row in items]
            per_bench_values[b][label] = overall
            results.append(_ci_row(b, "OVERALL", label, overall))

    if collection is not None:
        results.extend(_collection_rows(collection, per_bench_values, active, repeats))

    summaries = []
    for b in bench_names:
        st = stats.get(b) or _Stats()
        rate = st.truncated / st.graded if st.graded else 0.0
        warnings = []
        if rate > TRUNCATION_WARN:
            warnings.append(f"{st.truncated} of {st.graded} responses ({rate:.1%}) were cut by max_tokens: "
                            "scores are unreliable (answers missing, or taken from unfinished thinking); raise --max-tokens")
        if st.errors:
            warnings.append(f"{st.errors} samples failed after retries (not scored); "
                            "re-run them with --resume DIR")
        if st.grader_errors:
            warnings.append(f"{st.grader_errors} samples could not be graded (grader error, not scored); "
                            "grade them again with lmgauge regrade DIR")
        missing = planned.get(b, 0) * repeats - st.samples
        if missing > 0:
            warnings.append(f"{missing} samples not run yet; finish with --resume DIR")
        summaries.append(BenchmarkSummary(
            benchmark=b, questions=planned.get(b, len(perq.get(b, []))), samples=st.samples, missing=max(0, missing),
            graded=st.graded, errors=st.errors, truncated=st.truncated, truncated_rate=round(rate, 6),
            warnings=warnings, grader_errors=st.grader_errors,
            error_examples=dict(st.error_kinds.most_common(5)) if st.error_kinds else None))
    return results, summaries


def build_report(records: Iterable[SampleRecord], *, config: Any, metrics: list[Metric], planned: dict[str, int],
                 spec: CollectionSpec | None = None, complete: bool = True, analytics: bool = True,
                 **sections: Any) -> EvalReport:
    """The report of these records under a run's settings (``config``: an EvalConfig; ``spec``:
    the collection's weights). ``sections``: the other fields of the report (``elapsed_s``,
    ``request_phase_s``, ``collection`` as a dict, ``judge``, ``endpoints``, ``regrade``,
    ``created``). ``analytics``: also the reasoning-length analytics of every benchmark
    (lengths, per subset, the budget curve up to the run's ``max_tokens``), from the same
    single read of ``records``."""
    acc = LengthAnalytics() if analytics else None
    results, summaries = build_results(acc.feed(records) if acc is not None else records, metrics, config.repeats,
                                       planned, spec)
    if acc is not None:
        acc.annotate(summaries, getattr(config, "max_tokens", None), repeats=config.repeats)
    report = EvalReport(model=config.model, backend=config.backend, created=sections.pop("created", None) or now_iso(),
                        repeats=config.repeats, config=config.to_dict(), results=results, benchmarks=summaries,
                        complete=complete and not any(s.missing for s in summaries))
    for name, value in sections.items():
        setattr(report, name, value)
    return report


def _collection_rows(spec: CollectionSpec, values: dict[str, dict[str, list[float]]],
                     metrics: list[Metric], repeats: int) -> list[ResultRow]:
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
            rows.append(ResultRow(spec.name, subset, label, round(score, 6), len(pooled),
                                  _r(max(0.0, score - z * se)), _r(min(1.0, score + z * se))))
    return rows


def _n(v: Any, digits: int = 0) -> str:
    """A count or mean of tokens with thousands separators; ``-`` for none."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:,.{digits}f}"


def _share(v: Any) -> str:
    return "-" if v is None else f"{100 * float(v):.1f}%"


def _score3(v: Any) -> str:
    return "-" if v is None else f"{float(v):.3f}"


def length_lines(summaries: Iterable[BenchmarkSummary], who: str = "") -> list[str]:
    """The terminal summary of the reasoning-length analytics: per benchmark with lengths
    (report.json ``benchmarks[i].lengths`` / ``.budget_curve``), a line of token figures, a
    line of what they mean for the score (truncation, tokens per correct answer, reflections,
    first-correct) and the budget curve. ``who``: a run label to put in front (several runs).
    Benchmarks without lengths (runs made before the analytics) give no lines."""
    out = []
    for s in summaries:
        st = s.lengths
        if not isinstance(st, dict):
            continue
        name = f"{who}{s.benchmark}"
        source = st.get("token_source")
        if source == APPROXIMATE:
            source = (f"approximate: {FALLBACK_TOKENIZER} tokens, not the model's; pass --tokenizer for exact "
                      "counts")
        counted = f"{st.get('counted', 0)} of {st.get('samples', 0)} samples counted"
        comp = st.get("completion_tokens") or {}
        if comp:
            reas, ans = st.get("reasoning_tokens") or {}, st.get("answer_tokens") or {}
            out.append(f"{name} tokens ({source or 'no counts'}; {counted}): completion mean {_n(comp.get('mean'))}, "
                       f"p50 {_n(comp.get('p50'))}, p90 {_n(comp.get('p90'))}, max {_n(comp.get('max'))}; "
                       f"reasoning mean {_n(reas.get('mean'))}; answer mean {_n(ans.get('mean'))}; "
                       f"correct {_n(st.get('mean_tokens_correct'))} vs other {_n(st.get('mean_tokens_wrong'))}; "
                       f"{_n(st.get('tokens_per_correct'))} tokens per correct answer")
        else:
            out.append(f"{name} tokens: none counted ({counted}); `lmgauge eval --resume DIR` or `lmgauge regrade DIR` "
                       "counts them")
        parts = [f"{_share(st.get('truncation_rate'))} truncated (score {_score3(st.get('score_finished'))} finished, "
                 f"{_score3(st.get('score_truncated'))} truncated)"]
        if st.get("reflections_per_1k") is not None:
            parts.append(f"{st['reflections_per_1k']:.1f} reflections per 1k reasoning tokens "
                         f"({_n(st.get('reflections_per_sample'), 1)} per sample)")
        fc = st.get("first_correct")
        if isinstance(fc, dict) and fc.get("checked"):
            where = ""
            if fc.get("found") and fc.get("mean_tokens") is not None:
                where = (f", on average at reasoning token {_n(fc.get('mean_tokens'))} with "
                         f"{_share(fc.get('mean_share_after'))} of the reasoning after it")
            parts.append(f"gold first appears in the reasoning of {fc.get('found', 0)} of {fc['checked']} samples{where}")
        out.append(f"{name} reasoning: " + "; ".join(parts))
        curve = [p for p in (s.budget_curve or []) if isinstance(p, dict)]
        if curve and any(p.get("score") is not None for p in curve):
            out.append(f"{name} budget curve (score at max_tokens B): " + " · ".join(
                f"{_n(p.get('max_tokens'))} {_score3(p.get('score'))}" for p in curve))
    return out


def render_table(report: EvalReport) -> str:
    """The seed's table: Model | Dataset | Metric | Subset | Num | Score | 95% CI; then the
    reasoning-length lines (:func:`length_lines`) and the notes."""
    header = ["Model", "Dataset", "Metric", "Subset", "Num", "Score", "95% CI"]
    rows = []
    for r in report.results:
        score = "-" if r.score is None else f"{r.score:.4f}"
        ci = "-" if r.ci_low is None else f"[{r.ci_low:.3f}, {r.ci_high:.3f}]"
        rows.append([report.model or "", r.benchmark, r.metric, r.subset, str(r.count), score, ci])
    lines = [grid_table(header, rows, right={4, 5}, rule_between_rows=True)]
    lines += [clean_cell(line) for line in length_lines(report.benchmarks)]
    notes = [f"{s.benchmark}: {w}" for s in report.benchmarks for w in s.warnings]
    for s in report.benchmarks:
        if s.truncated or s.errors or s.grader_errors:
            graders = f", {s.grader_errors} grader errors" if s.grader_errors else ""
            notes.insert(0, f"{s.benchmark}: {s.truncated} truncated, {s.errors} errors{graders} of {s.samples} samples")
    for s in report.benchmarks:
        if s.error_examples:
            kind, n = next(iter(s.error_examples.items()))
            notes.append(f"{s.benchmark}: most common error ({n}×): {kind}")
    return "\n".join(lines + [f"note: {n}" for n in dict.fromkeys(notes)])
