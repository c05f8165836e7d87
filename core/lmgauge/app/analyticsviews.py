"""Reasoning analytics as data, for the live app (``lmgauge serve``) and the static report
(``lmgauge report``, report.html) alike: each function takes plain ``(label, colour,
RunFolder)`` inputs and returns dicts of numbers, strings and SVG charts that each surface lays
out with its own templates and style.

- :func:`length_rows`: report.json ``benchmarks[i].lengths`` (a row per run and benchmark) and
  ``subset_lengths`` (a row per subset), the figures under fixed names (:func:`length_cells`).
- :func:`budget_charts`: a chart per benchmark of ``budget_curve`` (the score at max_tokens B),
  one line per run with its 95% CI dashed.
- :func:`reasoning_view`: both, as the app's "How the model reasons" section.
- :func:`sweep_view`: a sweep folder's sweep.json: the verdict (``no_effect``), the
  accuracy-against-mean-tokens frontier per benchmark, the variants' rows, each variant against
  the next, the variants' budget curves, warnings, notes and stale variants.

The analytics come from report.json (written when an eval finishes) and sweep.json (when a
sweep does); nothing here reads a journal. Charts are inline SVG from
:mod:`lmgauge.htmlreport.svg`, which escapes every text it draws; every other value is plain
data that the (autoescaped) templates escape.
"""
from __future__ import annotations

import re
from typing import Any, Iterable

from markupsafe import Markup

from ..htmlreport.svg import PALETTE, Point, Series, line_chart, tradeoff_chart
from ..runfolder import RunFolder

#: one run as these views take it: (label, colour, run folder)
Labeled = tuple[str, str, RunFolder]
CI_COLOR = "#64748b"  # the legend's colour of the dashed 95% CI lines


def _natural(s: str) -> list[Any]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(s))]


def _get(d: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(d, dict):
            return None
        d = d.get(key)
    return d


# -- one eval run's (or several runs') reasoning analytics -----------------------------------
def length_cells(st: dict[str, Any]) -> dict[str, Any]:
    """The figures of one lengths entry (a benchmark's or a subset's) under fixed names, None
    where the entry lacks them."""
    return {"samples": st.get("samples"), "counted": st.get("counted"), "source": st.get("token_source"),
            "mean": _get(st, "completion_tokens", "mean"), "p50": _get(st, "completion_tokens", "p50"),
            "p90": _get(st, "completion_tokens", "p90"), "max": _get(st, "completion_tokens", "max"),
            "reasoning": _get(st, "reasoning_tokens", "mean"), "answer": _get(st, "answer_tokens", "mean"),
            "correct": st.get("mean_tokens_correct"), "wrong": st.get("mean_tokens_wrong"),
            "truncation": st.get("truncation_rate"), "finished": st.get("score_finished"),
            "cut": st.get("score_truncated"), "per_correct": st.get("tokens_per_correct"),
            "reflections": st.get("reflections_per_1k"), "found": _get(st, "first_correct", "found_rate"),
            "fc_tokens": _get(st, "first_correct", "mean_tokens"),
            "after": _get(st, "first_correct", "mean_share_after")}


def length_rows(runs: Iterable[Labeled]) -> list[dict[str, Any]]:
    """report.json ``lengths``: a row per (run, benchmark), then one per subset
    (``subset_lengths``); runs without the analytics give none. Each row: ``label``,
    ``color``, ``benchmark``, ``subset``, ``overall`` and the figures ``c``
    (:func:`length_cells`)."""
    rows = []
    for label, color, run in runs:
        for s in run.benchmarks:
            if not isinstance(s.lengths, dict):
                continue
            rows.append({"label": label, "color": color, "benchmark": s.benchmark, "subset": "OVERALL",
                         "overall": True, "c": length_cells(s.lengths)})
            subsets = s.subset_lengths if isinstance(s.subset_lengths, dict) else {}
            for name in sorted(subsets, key=_natural):
                if isinstance(subsets[name], dict):
                    rows.append({"label": label, "color": color, "benchmark": s.benchmark, "subset": name,
                                 "overall": False, "c": length_cells(subsets[name])})
    return rows


def budget_series(curve: list[dict[str, Any]], label: str, color: str, ci: bool = True) -> list[Series]:
    """The budget curve as a score line, and its CI bounds as dashed lines."""
    def pts(key: str) -> list[tuple[float, float]]:
        return [(float(p["max_tokens"]), float(p[key])) for p in curve
                if isinstance(p.get("max_tokens"), (int, float)) and isinstance(p.get(key), (int, float))]

    out = [Series(label, color, pts("score"), key="score")]
    if ci:
        out += [Series(f"{label} 95% CI", color, pts("ci_low"), dash="4 3", key="ci_low"),
                Series(f"{label} 95% CI", color, pts("ci_high"), dash="4 3", key="ci_high")]
    return out


def budget_charts(runs: Iterable[Labeled]) -> list[dict[str, Any]]:
    """One chart per benchmark: the score each run would have had at max_tokens B (report.json
    ``budget_curve``), with its 95% CI dashed. Each chart: ``key`` (``budget-BENCHMARK``),
    ``legend`` ((text, colour, dashed) items) and ``svg``."""
    runs = list(runs)
    names: list[str] = []
    for _label, _color, run in runs:
        for s in run.benchmarks:
            if s.budget_curve and s.benchmark not in names:
                names.append(s.benchmark)
    charts = []
    for b in names:
        series, legend = [], []
        for label, color, run in runs:
            s = run.report.summary(b) if run.report is not None else None
            curve = [p for p in (s.budget_curve or []) if isinstance(p, dict)] if s is not None else []
            if not curve:
                continue
            series += budget_series(curve, label, color)
            legend.append((label, color, False))
        legend.append(("95% CI", CI_COLOR, True))
        charts.append({"key": f"budget-{b}", "legend": legend,
                       "svg": Markup(line_chart(f"{b}: score at max_tokens B", series, "max_tokens B", "score"))})
    return charts


def reasoning_view(runs: Iterable[Labeled]) -> dict[str, Any] | None:
    """The app's "How the model reasons" section: the lengths rows, the budget charts and
    whether any count is approximate (cl100k_base tokens, not the model's); None when the
    report holds no analytics (a run made before them)."""
    runs = list(runs)
    rows, charts = length_rows(runs), budget_charts(runs)
    if not rows and not charts:
        return None
    return {"lengths": rows, "budget": charts, "pending": False,
            "approximate": any(r["c"]["source"] == "approximate" for r in rows)}


# -- a sweep folder ----------------------------------------------------------------------------
def comparison_cells(c: dict[str, Any]) -> dict[str, Any]:
    """One paired comparison of a sweep (variant against the next) as table text."""
    from ..eval.paired import format_p, format_points

    def part(r: Any, tokens: bool) -> dict[str, Any]:
        if not isinstance(r, dict) or not isinstance(r.get("diff"), (int, float)):
            return {"diff": "-", "ci": "-", "p": "-", "sig": False}
        if tokens:
            diff, ci = f"{r['diff']:+,.0f}", f"[{r['ci_low']:+,.0f}, {r['ci_high']:+,.0f}]"
        else:
            diff, ci = format_points(r["diff"]), f"[{format_points(r['ci_low'])}, {format_points(r['ci_high'])}]"
        return {"diff": diff, "ci": ci, "p": format_p(float(r["p_value"])), "sig": bool(r.get("significant_adjusted"))}

    return {"pair": f"{c.get('a_label')} → {c.get('b_label')}", "benchmark": c.get("benchmark"),
            "n": c.get("questions"), "score": part(c.get("score"), False), "tokens": part(c.get("tokens"), True)}


def sweep_view(label: str, color: str, run: RunFolder) -> dict[str, Any]:
    """A sweep folder (DIR/sweep.json): the verdict, the accuracy-against-mean-tokens
    frontier per benchmark, the variants' rows, each variant against the next, the variants'
    budget curves, effects, warnings, notes and the variants changed since sweep.json was
    written. Variant colours are the palette in sweep.json's order."""
    from ..eval.sweep import stale_variants, variant_rows

    doc = run.sweep or {}
    entries = [e for e in doc.get("variants") or [] if isinstance(e, dict)]
    colors = {str(e.get("dir")): PALETTE[i % len(PALETTE)] for i, e in enumerate(entries)}
    rows = variant_rows(doc)
    benches = list(dict.fromkeys(r["benchmark"] for r in rows if r["benchmark"] != "-"))
    frontiers, curves = [], []
    for b in benches:
        mine = [r for r in rows if r["benchmark"] == b]
        pts = [Point(r["mean_tokens"], r["score"], str(r["variant"]), r["ci_low"], r["ci_high"],
                     colors.get(str(r["dir"]), PALETTE[0])) for r in mine]
        frontiers.append({"key": f"frontier-{b}", "legend": [],
                          "svg": Markup(tradeoff_chart(f"{b}: score against mean tokens", pts))})
        series, legend = [], []
        for e in entries:
            curve = [p for p in ((e.get("budget_curve") or {}).get(b) or []) if isinstance(p, dict)]
            if curve:
                c = colors[str(e.get("dir"))]
                series += budget_series(curve, str(e.get("label") or e.get("dir")), c, ci=False)
                legend.append((str(e.get("label") or e.get("dir")), c, False))
        if series:
            curves.append({"key": f"sweep-budget-{b}", "legend": legend,
                           "svg": Markup(line_chart(f"{b}: score at max_tokens B", series, "max_tokens B", "score"))})
    comparisons = [c for c in doc.get("comparisons") or [] if isinstance(c, dict) and c.get("adjacent")]
    return {"label": label, "color": color, "doc": doc, "key_names": ", ".join(str(k) for k in doc.get("keys") or []),
            "rows": [{**r, "color": colors.get(str(r["dir"]), PALETTE[0])} for r in rows],
            "frontiers": frontiers, "curves": curves,
            "comparisons": [comparison_cells(c) for c in comparisons],
            "tests": (doc.get("tests") or {}).get("count"), "verdict": doc.get("no_effect"),
            "effects": [str(e) for e in doc.get("effects") or []],
            "warnings": [str(w) for w in doc.get("warnings") or []],
            "notes": [str(n) for n in doc.get("notes") or []], "stale": stale_variants(run.path, doc)}


__all__ = ["Labeled", "length_cells", "length_rows", "budget_series", "budget_charts", "reasoning_view",
           "comparison_cells", "sweep_view"]
