"""The app's views as plain data: each function takes run folders (or the app's run states)
and returns dicts and lists of numbers and strings that a template renders (templates under
``app/templates/``, autoescaped). Nothing here knows a benchmark or a metric by name: eval
rows are whatever metrics the run computed, sample blocks come from
``Benchmark.sample_view``, perf columns from the perf metric declarations (perfviews.py).

The same functions serve the live app and can serve a static page: they take
:class:`lmgauge.runfolder.RunFolder` objects (plus, for a running eval, the rows recomputed
from its journal).
"""
from __future__ import annotations

import math
import re
from typing import Any, Iterable

import orjson

from ..redaction import redact, redact_text
from ..runfolder import MAIN_METRIC, OVERALL, BenchmarkSummary, ResultRow, RunFolder, SampleRecord

from ..htmlreport.svg import PALETTE  # the one chart code of lmgauge (pure functions, no run data)

SPECIAL_SUBSETS = {"OVERALL": 0, "MACRO": 1, "WEIGHTED": 2}
#: characters of a text shown before "show all" (head and tail each)
CUT_HEAD, CUT_TAIL = 3000, 1000


def natural(s: str) -> list[Any]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(s))]


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def stringify(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, str):
        return v
    return orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS).decode("utf-8", "replace")


def config_text(cfg: dict[str, Any]) -> str:
    """The run's settings as JSON (already redacted by the library; redacted again)."""
    return orjson.dumps(redact(cfg), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS,
                        default=str).decode("utf-8")


# -- eval: scores ---------------------------------------------------------------------------
def score_tables(rows: list[ResultRow]) -> list[dict[str, Any]]:
    """One table per benchmark (and collection): a row per subset (OVERALL first), a column
    per metric the run computed, each cell a score with its 95% CI and count."""
    benches = list(dict.fromkeys(r.benchmark for r in rows))
    out = []
    for b in benches:
        mine = [r for r in rows if r.benchmark == b]
        metrics = list(dict.fromkeys(r.metric for r in mine))
        subsets = sorted(dict.fromkeys(r.subset for r in mine), key=lambda s: (SPECIAL_SUBSETS.get(s, 9), natural(s)))
        cells = {(r.subset, r.metric): r for r in mine}
        table_rows = []
        for s in subsets:
            table_rows.append({"subset": s, "overall": s in SPECIAL_SUBSETS,
                               "count": next((cells[(s, m)].count for m in metrics if (s, m) in cells), None),
                               "cells": [_cell(cells.get((s, m))) for m in metrics]})
        out.append({"benchmark": b, "metrics": metrics, "rows": table_rows})
    return out


def _cell(r: ResultRow | None) -> dict[str, Any] | None:
    if r is None:
        return None
    return {"score": r.score, "ci_low": r.ci_low, "ci_high": r.ci_high, "count": r.count}


def cards(rows: list[ResultRow], summaries: list[BenchmarkSummary]) -> list[dict[str, Any]]:
    """At a glance: each benchmark's headline (OVERALL, the main metric) with its health."""

    health = {s.benchmark: s for s in summaries}
    out = []
    for h in headline(rows):
        s = health.get(h["benchmark"])
        out.append({**h, "truncated": s.truncated if s else 0, "errors": (s.errors + s.grader_errors) if s else 0,
                    "samples": s.samples if s else None, "missing": s.missing if s else 0})
    return out


def health_rows(summaries: list[BenchmarkSummary]) -> list[dict[str, Any]]:
    out = []
    for s in summaries:
        out.append({"benchmark": s.benchmark, "questions": s.questions, "samples": s.samples, "graded": s.graded,
                    "errors": s.errors, "grader_errors": s.grader_errors, "truncated": s.truncated,
                    "truncated_rate": s.truncated_rate, "missing": s.missing,
                    "warnings": [redact_text(w) for w in s.warnings],
                    "error_examples": [{"text": redact_text(str(k)), "count": n}
                                       for k, n in (s.error_examples or {}).items()]})
    return out


def analytics(summaries: list[BenchmarkSummary]) -> list[dict[str, Any]]:
    """The sections a newer report adds per benchmark (``BenchmarkSummary.extra``), as generic
    tables (generic_blocks). Lengths, their subsets and the budget curve are not among them:
    the run page lays those out ("How the model reasons", :mod:`.analyticsviews`)."""
    out = []
    for s in summaries:
        blocks: list[dict[str, Any]] = []
        for k, v in s.extra.items():
            blocks += generic_blocks(k.replace("_", " "), v)
        if blocks:
            out.append({"benchmark": s.benchmark, "blocks": blocks})
    return out


def reasoning(run: RunFolder, live: bool) -> dict[str, Any] | None:
    """The run page's "How the model reasons" (:func:`.analyticsviews.reasoning_view` of the
    run's report.json). ``live``: the figures come from the journal (a run still going, or
    one stopped before its report): the analytics are computed when the run finishes, so the
    section only says that (None when the run is complete but its report has none)."""
    if live:
        return {"pending": True, "lengths": [], "budget": [], "approximate": False}
    from .analyticsviews import reasoning_view

    return reasoning_view([(run.model or "run", color(0), run)])


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def _flat(d: dict[str, Any]) -> dict[str, Any]:
    """One level of nesting flattened (``completion_tokens.mean``); deeper values as JSON."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and all(_scalar(x) for x in v.values()):
            out.update({f"{k}.{kk}": vv for kk, vv in v.items()})
        else:
            out[str(k)] = v if _scalar(v) else stringify(v)
    return out


def generic_blocks(title: str, value: Any) -> list[dict[str, Any]]:
    """Plain data as blocks of the shape ``Benchmark.sample_view`` gives: the scalars of a
    mapping as fields and its mappings of figures as one table (a row each); a mapping of
    mappings as a table (a row per key, nested figures flattened); a list of rows as a table."""
    if value is None or value == {} or value == []:
        return []
    if isinstance(value, dict):
        if all(isinstance(v, dict) for v in value.values()):
            rows = {str(k): _flat(v) for k, v in value.items()}
            cols = list(dict.fromkeys(c for r in rows.values() for c in r))
            return [{"kind": "table", "title": title, "columns": ["", *cols],
                     "rows": [[k, *(r.get(c) for c in cols)] for k, r in rows.items()]}]
        scalars = [[k, v] for k, v in value.items() if _scalar(v)]
        figures = {k: v for k, v in value.items() if isinstance(v, dict) and all(_scalar(x) for x in v.values())}
        rest = [[k, stringify(v)] for k, v in value.items() if not _scalar(v) and k not in figures]
        blocks = []
        if scalars or rest:
            blocks.append({"kind": "fields", "title": title, "items": scalars + rest})
        shapes: dict[tuple[str, ...], list[str]] = {}  # one table per set of figures (mean/p50/…, found/…)
        for k, v in figures.items():
            shapes.setdefault(tuple(v), []).append(k)
        for cols, keys in shapes.items():
            blocks.append({"kind": "table", "title": title if not blocks else "", "columns": ["", *cols],
                           "rows": [[k, *(figures[k].get(c) for c in cols)] for k in keys]})
        return blocks
    if isinstance(value, list):
        if all(isinstance(v, dict) for v in value):
            rows = [_flat(v) for v in value]
            cols = list(dict.fromkeys(c for r in rows for c in r))
            return [{"kind": "table", "title": title, "columns": cols, "rows": [[r.get(c) for c in cols] for r in rows]}]
        return [{"kind": "text", "title": title, "text": "\n".join(str(v) for v in value)}]
    return [{"kind": "text", "title": title, "text": str(value)}]


def generic_block(title: str, value: Any) -> dict[str, Any] | None:
    """One block (the first of :func:`generic_blocks`), for the sections that take one."""
    blocks = generic_blocks(title, value)
    if len(blocks) > 1:
        return {"kind": "fields", "title": title, "items": [[k, v] for b in blocks for k, v in
                                                            (b.get("items") or [[r[0], stringify(r[1:])] for r in b.get("rows", [])])]}
    return blocks[0] if blocks else None


def judge_view(judge: dict[str, Any] | None) -> dict[str, Any] | None:
    """report.json ``judge``: the judge's settings line and one row per benchmark and overall."""
    if not isinstance(judge, dict) or not isinstance(judge.get("overall"), dict):
        return None
    benches = judge.get("benchmarks") if isinstance(judge.get("benchmarks"), dict) else {}
    rows = []
    for name, s in [*benches.items(), ("OVERALL", judge["overall"])]:
        if not isinstance(s, dict):
            continue
        vd = s.get("verdicts") if isinstance(s.get("verdicts"), dict) else {}
        ag = s.get("agreement") if isinstance(s.get("agreement"), dict) else {}
        rows.append({"name": str(name), "overall": name == "OVERALL", "judged": s.get("judged"),
                     "correct": vd.get("correct", 0), "incorrect": vd.get("incorrect", 0),
                     "unparsable": vd.get("unparsable", 0), "failed": vd.get("error", 0),
                     "rule_undecided": s.get("rule_undecided"), "score_changed": s.get("score_changed"),
                     "compared": ag.get("samples", 0), "agreement": ag.get("agreement"), "kappa": ag.get("kappa")})
    return {"model": judge.get("model"), "mode": judge.get("mode"), "asked": judge.get("asked"),
            "cached": judge.get("cached"), "failed": judge.get("failed"), "elapsed_s": judge.get("elapsed_s"),
            "base_url": redact_text(str(judge.get("base_url") or "")), "rows": rows}


def endpoint_rows(endpoints: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    out = []
    for e in endpoints or []:
        if isinstance(e, dict):
            out.append({**{k: v for k, v in e.items() if not isinstance(v, (dict, list))},
                        "url": redact_text(str(e.get("url") or "")),
                        "last_error": redact_text(str(e["last_error"])) if e.get("last_error") else None})
    return out


def eval_view(run: RunFolder, rows: list[ResultRow], summaries: list[BenchmarkSummary],
              live: bool = False) -> dict[str, Any]:
    """Everything the eval part of a run page shows, as data (``live``: ``rows`` and
    ``summaries`` are recomputed from the journal, not the report's)."""
    report = run.report
    return {"cards": cards(rows, summaries), "tables": score_tables(rows), "health": health_rows(summaries),
            "reasoning": reasoning(run, live), "analytics": analytics(summaries),
            "judge": judge_view(report.judge if report else None),
            "endpoints": endpoint_rows(report.endpoints if report else None),
            "regrade": generic_block("regrade", report.regrade) if report and report.regrade else None,
            "collection": generic_block("collection", report.collection) if report and report.collection else None}


# -- samples --------------------------------------------------------------------------------
def cut_text(text: str | None, cut: int | None, where: str = "") -> tuple[str | None, bool]:
    """Head and tail of a long text (``cut``: characters kept in all, about 3:1). The mark
    between them says how much is left out and, with ``where``, where the full text is."""
    if text is None or not cut or len(text) <= cut:
        return text, False
    head = max(1, cut * 3 // 4)
    tail = max(1, cut - head)
    mark = f"… {len(text) - head - tail:,} characters cut{': full text in ' + where if where else ''} …"
    return f"{text[:head]}\n{mark}\n{text[-tail:]}", True


def sample_json(rec: SampleRecord, views: list[dict[str, Any]] | None = None, cut: int | None = None) -> dict[str, Any]:
    """One sample as the API returns it: the issue's fields, the judge's, the benchmark's own
    blocks (``views``) and, when cut, the full lengths."""
    response, r_cut = cut_text(rec.response, cut)
    reasoning, t_cut = cut_text(rec.reasoning, cut)
    out = {"benchmark": rec.benchmark, "sample_id": rec.sample_id, "repeat": rec.repeat, "subsets": list(rec.subsets),
           "status": rec.status, "correct": rec.correct, "score": rec.score, "score_status": rec.score_status,
           "question": stringify(rec.question) if rec.question not in (None, "") else stringify(_prompt_text(rec.prompt)),
           "gold": stringify(rec.gold), "extracted": stringify(rec.extracted), "response": response,
           "reasoning": reasoning, "finish_reason": rec.finish_reason, "truncated": rec.truncated,
           "grade_detail": stringify(rec.grade_detail), "error": redact_text(rec.error) if rec.error else None,
           "prompt_tokens": rec.prompt_tokens, "completion_tokens": rec.completion_tokens,
           "reasoning_tokens": rec.reasoning_tokens, "answer_tokens": rec.answer_tokens,
           "latency_s": rec.latency_s, "attempts": rec.attempts,
           "judge_verdict": rec.judge_verdict, "judge_text": rec.judge_text, "judge_model": rec.judge_model,
           "rule_score": rec.rule_score, "score_source": rec.score_source,
           "response_chars": len(rec.response) if rec.response is not None else None,
           "reasoning_chars": len(rec.reasoning) if rec.reasoning is not None else None,
           "cut": r_cut or t_cut, "views": views or []}
    return out


def _prompt_text(prompt: Any) -> Any:
    if isinstance(prompt, list):
        users = [m.get("content") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        return users[-1] if users else prompt
    return prompt


def clean_blocks(blocks: Any) -> list[dict[str, Any]]:
    """A benchmark's ``sample_view`` blocks, checked: only the three documented kinds, every
    value made plain text (the page shows them as untrusted text)."""
    out = []
    if not isinstance(blocks, list):
        return out
    for b in blocks[:20]:
        if not isinstance(b, dict):
            continue
        kind, title = b.get("kind"), str(b.get("title") or "")
        if kind == "table":
            cols = [str(c) for c in b.get("columns") or []]
            rows = [[_cell_value(c) for c in row] for row in (b.get("rows") or [])[:500] if isinstance(row, (list, tuple))]
            out.append({"kind": "table", "title": title, "columns": cols, "rows": rows})
        elif kind == "text":
            out.append({"kind": "text", "title": title, "text": str(b.get("text") or "")})
        elif kind == "fields":
            items = [[str(i[0]), _cell_value(i[1])] for i in b.get("items") or [] if isinstance(i, (list, tuple)) and len(i) == 2]
            out.append({"kind": "fields", "title": title, "items": items})
    return out


def _cell_value(v: Any) -> Any:
    if isinstance(v, dict) and "text" in v:
        status = v.get("status")
        return {"text": str(v.get("text")), "status": status if status in ("pass", "fail", "warn") else None}
    if v is None or isinstance(v, (bool, int, float)):
        return v if not (isinstance(v, float) and math.isnan(v)) else None
    return str(v) if not isinstance(v, (dict, list)) else stringify(v)


# -- comparison -------------------------------------------------------------------------------
def compare_scores(labels: list[str], rows_of: list[list[ResultRow]]) -> dict[str, Any]:
    """Every (benchmark, subset, metric) row with one cell per run; Δ (run minus the first)
    with a flag when the 95% CIs do not overlap."""
    keys: list[tuple[str, str, str]] = []
    cells: dict[tuple[str, str, str], dict[int, ResultRow]] = {}
    for i, rows in enumerate(rows_of):
        for r in rows:
            k = (r.benchmark, r.subset, r.metric)
            if k not in cells:
                cells[k] = {}
                keys.append(k)
            cells[k][i] = r
    bench_order = {b: n for n, b in enumerate(dict.fromkeys(k[0] for k in keys))}
    metric_order = {m: n for n, m in enumerate(dict.fromkeys(k[2] for k in keys))}
    keys.sort(key=lambda k: (bench_order[k[0]], metric_order[k[2]], SPECIAL_SUBSETS.get(k[1], 9), natural(k[1])))
    out = []
    for k in keys:
        row_cells = [_cell(cells[k].get(i)) for i in range(len(labels))]
        base = cells[k].get(0)
        deltas = [None] + [_delta(base, cells[k].get(i)) for i in range(1, len(labels))]
        out.append({"benchmark": k[0], "subset": k[1], "metric": k[2], "overall": k[1] in SPECIAL_SUBSETS,
                    "cells": row_cells, "deltas": deltas})
    return {"labels": labels, "rows": out}


def _delta(a: ResultRow | None, b: ResultRow | None) -> dict[str, Any] | None:
    if a is None or b is None or a.score is None or b.score is None:
        return None
    d = float(b.score) - float(a.score)
    sep = (a.ci_high is not None and b.ci_low is not None and a.ci_low is not None and b.ci_high is not None
           and (b.ci_low > a.ci_high or a.ci_low > b.ci_high))
    return {"value": d, "sep": bool(sep)}


class _Scores:
    """A journal as the pairing reads it: the scored record of every sample, rebuilt from
    the app's index (no text is read)."""

    def __init__(self, journal: Any):
        self.journal = journal

    def __iter__(self):
        from .journal import iter_scored

        with self.journal.lock:
            entries = list(self.journal.entries.values())
        return iter_scored(entries)


def with_index(run: RunFolder, journal: Any) -> RunFolder:
    """``run`` whose samples() come from the app's index of its journal (``journal``: an
    :class:`lmgauge.app.journal.EvalJournal`): what lmgauge compare needs, without re-reading
    150 MB of texts."""
    import dataclasses

    return dataclasses.replace(run, _journal=_Scores(journal))


def paired_view(run_a: RunFolder, run_b: RunFolder) -> dict[str, Any]:
    """The paired comparison of ``lmgauge compare A B`` (lmgauge.eval.compare) as data; runs
    that cannot be paired give the reason in one line."""
    from ..errors import LmgaugeError

    try:
        from ..eval.compare import compare_runs
        from ..eval.paired import format_p, format_points

        result = compare_runs(run_a, run_b)
    except LmgaugeError as exc:
        return {"error": exc.line()}
    except Exception as exc:  # noqa: BLE001 - the comparison is one section; the page stays
        return {"error": f"the paired comparison failed: {type(exc).__name__}: {exc}"}
    rows = []
    for row in result.rows:
        r = row.result
        rows.append({"benchmark": row.benchmark, "subset": row.subset, "overall": row.subset == OVERALL, "n": r.n,
                     "a": format_points(r.mean_a, sign=False), "b": format_points(r.mean_b, sign=False),
                     "diff": format_points(r.diff), "ci": f"[{format_points(r.ci_low)}, {format_points(r.ci_high)}]",
                     "p": format_p(r.p_value), "test": r.test, "significant": r.significant,
                     "verdict": row.verdict})
    return {"error": None, "alpha": result.alpha, "rows": rows, "skipped": list(result.skipped),
            "notes": list(result.notes), "ci_label": f"{100 * (1 - result.alpha):g}% CI"}


def current_level(current: dict[str, Any]) -> dict[str, Any]:
    """A running perf level's figures so far (summary.json's ``current``, rewritten every 2 s
    while the level runs; gone once its own figures land): requests done and failed of the
    total, the pace, TTFT and latency p50/p99 of the finished requests."""
    def num(key: str) -> float | None:
        v = current.get(key)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    figures = [(label, num(key), unit) for label, key, unit in (
        ("requests/s", "rps", "req/s"), ("TTFT p50", "ttft_p50_s", "s"), ("TTFT p99", "ttft_p99_s", "s"),
        ("latency p50", "latency_p50_s", "s"), ("latency p99", "latency_p99_s", "s"))]
    return {"label": stringify(current.get("label")) or "?", "trial": num("trial"),
            "requests": num("requests"), "failed": num("failed"), "total": num("total"),
            "elapsed_s": num("elapsed_s"),
            "figures": [{"label": lab, "value": v, "unit": u} for lab, v, u in figures if v is not None]}


def perf_headline(run: RunFolder) -> list[dict[str, Any]]:
    from .perfviews import headline

    return headline(run)


def unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def headline(rows) -> list[dict[str, Any]]:
    """Each benchmark's OVERALL score under the main metric (AveragePass@1, else the first)."""
    labels = [r.metric for r in rows]
    main = MAIN_METRIC if MAIN_METRIC in labels else (labels[0] if labels else None)
    return [{"benchmark": r.benchmark, "metric": r.metric, "score": r.score, "ci_low": r.ci_low, "ci_high": r.ci_high,
             "count": r.count} for r in rows if r.metric == main and r.subset == OVERALL]
