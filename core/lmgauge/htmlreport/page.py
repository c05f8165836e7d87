"""Build the self-contained HTML report of one or several run folders.

The Python side computes plain data (rows, numbers, labels) and the SVG charts; the markup is
in jinja2 templates (``htmlreport/templates/``) rendered with autoescape, so everything from a
run folder (untrusted text: model output, questions, config values, URLs, error texts) is
escaped where it is written. The samples travel in the JSON data block with every ``<``, ``>``
and ``&`` written as a ``\\u`` escape (so neither ``</script>`` nor ``<!--`` can end the
block), from where the script puts them into the DOM with ``textContent`` only. A
Content-Security-Policy allows only the page's own script (by hash) and no network at all.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from typing import Any, Iterable

import orjson
from markupsafe import Markup

from ..version import __version__
from .assets import CSS, JS
from ..app.analyticsviews import budget_charts, length_rows, sweep_view
from ..app.perfviews import PerfRun, perf_view
from ..runfolder import RunFolder, run_labels
from .svg import PALETTE, ci_bar
from .templating import json_for_script, render

__all__ = ["render_page", "json_for_script"]

PAGE_SIZE = 25
#: characters of sample text (questions, responses, reasoning, judge answers) a bounded report
#: embeds over all its eval runs: with the rest of the page, report.html stays near 10 MB
TEXT_BUDGET = 7_000_000
#: the least a sample keeps of each text; a run with more samples than the budget allows at
#: this size embeds an even spread of its samples (said on the page), not shorter texts
MIN_CUT = 400
WHERE_FULL = "`lmgauge serve`"
STATUSES = (("all", "All"), ("correct", "Correct"), ("wrong", "Wrong"), ("truncated", "Truncated"), ("error", "Error"))


def _natural(s: str) -> list[Any]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(s))]


def _stringify(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    return orjson.dumps(v).decode("utf-8")


@dataclass
class RunView:
    """One run as the templates see it: its folder, label and colour."""

    index: int
    label: str
    color: str
    run: RunFolder

    @property
    def config_json(self) -> str:
        cfg = self.run.config
        return orjson.dumps(cfg, option=orjson.OPT_INDENT_2).decode("utf-8") if cfg else "{}"


# --------------------------------------------------------------------------------------
@dataclass
class Bound:
    """How much of one run's samples a report embeds: ``cut`` characters of each text (None:
    everything, ``--full-samples``) and every ``step``-th sample in the report's order."""

    cut: int | None
    step: int
    total: int

    @classmethod
    def of(cls, total: int, runs: int, full: bool) -> "Bound":
        if full or total == 0:
            return cls(None, 1, total)
        allowance = TEXT_BUDGET // max(1, runs) // total // 2  # two long texts a sample
        if allowance >= MIN_CUT:
            return cls(allowance, 1, total)
        return cls(MIN_CUT, -(-total * MIN_CUT * 2 * max(1, runs) // TEXT_BUDGET), total)

    @property
    def embedded(self) -> int:
        return -(-self.total // self.step)


class Page:
    def __init__(self, runs: list[RunFolder], full_samples: bool = False):
        self.full_samples = full_samples
        labels = run_labels(runs)
        self.views = [RunView(i, labels[i], PALETTE[i % len(PALETTE)], r) for i, r in enumerate(runs)]
        self.evals = [v for v in self.views if v.run.kind == "eval"]
        self.perfs = [v for v in self.views if v.run.kind == "perf"]
        self.sweeps = [v for v in self.views if v.run.kind == "sweep"]

    # -- whole page --------------------------------------------------------------------
    def render(self) -> str:
        labels = [v.label for v in self.views]
        title = " vs ".join(dict.fromkeys(labels)) if len(self.views) > 1 else labels[0]
        compare = Markup("")
        if len(self.evals) == 2:  # paired significance of the two runs (lmgauge compare)
            from ..eval.compare import compare_section_for_runs

            compare = Markup(compare_section_for_runs(self.evals[0].run, self.evals[1].run))
        perf_compare = Markup("")
        if len(self.perfs) == 2:  # B/A per level with CIs (lmgauge compare of two perf runs)
            from ..perf.compare import compare_perf_section_for_runs

            perf_compare = Markup(compare_perf_section_for_runs(self.perfs[0].run, self.perfs[1].run))
        data = {"version": 1, "page_size": PAGE_SIZE, "eval": [self.eval_data(v) for v in self.evals]}
        script_hash = base64.b64encode(hashlib.sha256(JS.encode("utf-8")).digest()).decode()
        csp = (f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
               f"script-src 'sha256-{script_hash}'; base-uri 'none'; form-action 'none'")
        kinds = sorted({v.run.kind for v in self.views})
        perf = perf_view([PerfRun(v.label, v.color, v.run) for v in self.perfs]) if self.perfs else None
        return render(
            "page.html.j2", title=title, csp=csp, css=Markup(CSS), js=Markup(JS), data_json=json_for_script(data),
            runs=self.views, multi=len(self.views) > 1, kinds=", ".join(kinds), version=__version__,
            generated=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            eval_cards=self.eval_cards(), perf_cards=perf["cards"] if perf else [],
            evals=self.evals, scores=self.scores() if self.evals else None, health=self.health_rows(),
            endpoints=self.endpoint_rows(), judges=self.judge_rows(), compare=compare, perf_compare=perf_compare,
            lengths=self.length_rows(), budget_charts=self.budget_charts(), sweeps=self.sweep_sections(),
            perf=perf, samples=self.sample_controls() if self.evals else None) + "\n"

    # -- at a glance -------------------------------------------------------------------
    def eval_cards(self) -> list[dict[str, Any]]:
        """One card per benchmark, one line per run (main metric, OVERALL)."""
        benches: list[str] = []
        for v in self.evals:
            for b in v.run.report.benchmark_names():
                if b not in benches:
                    benches.append(b)
        cards = []
        for b in benches:
            lines = []
            for v in self.evals:
                row = v.run.report.main_row(b)
                if row is None:
                    continue
                health = v.run.report.summary(b)
                lines.append({"view": v, "row": row, "truncated": health.truncated if health else 0,
                              "errors": health.errors if health else 0,
                              "bar": Markup(ci_bar(row.score, row.ci_low, row.ci_high, v.color))})
            cards.append({"title": b, "lines": lines})
        return cards

    # -- eval --------------------------------------------------------------------------
    def scores(self) -> dict[str, Any]:
        """Every (benchmark, subset, metric) row with one cell per eval run, Δ with two."""
        keys: list[tuple[str, str, str]] = []
        cells: dict[tuple[str, str, str], dict[int, Any]] = {}
        for v in self.evals:
            for row in v.run.results:
                k = (row.benchmark, row.subset, row.metric)
                if k not in cells:
                    cells[k] = {}
                    keys.append(k)
                cells[k][v.index] = row
        special = {"OVERALL": 0, "MACRO": 1, "WEIGHTED": 2}
        bench_order = {b: n for n, b in enumerate(dict.fromkeys(k[0] for k in keys))}
        metric_order = {m: n for n, m in enumerate(dict.fromkeys(k[2] for k in keys))}
        keys.sort(key=lambda k: (bench_order[k[0]], metric_order[k[2]], special.get(k[1], 9), _natural(k[1])))
        two = len(self.evals) == 2
        rows = []
        for k in keys:
            row_cells = []
            for v in self.evals:
                row = cells[k].get(v.index)
                row_cells.append(None if row is None else {
                    "row": row, "bar": Markup(ci_bar(row.score, row.ci_low, row.ci_high, v.color))})
            delta = _delta(*(cells[k].get(v.index) for v in self.evals)) if two else None
            rows.append({"benchmark": k[0], "subset": k[1], "metric": k[2], "overall": k[1] in special,
                         "cells": row_cells, "delta": delta})
        return {"rows": rows, "two": two}

    # -- reasoning analytics and sweeps: lmgauge.app.analyticsviews, shared with lmgauge serve --
    def length_rows(self) -> list[dict[str, Any]]:
        """report.json ``lengths``: a row per (run, benchmark), then one per subset."""
        return length_rows((v.label, v.color, v.run) for v in self.evals)

    def budget_charts(self) -> list[dict[str, Any]]:
        """One chart per benchmark of report.json ``budget_curve``, a line per run, CIs dashed."""
        return budget_charts((v.label, v.color, v.run) for v in self.evals)

    def sweep_sections(self) -> list[dict[str, Any]]:
        """One section per sweep folder (DIR/sweep.json), with its run view (heading, anchor)."""
        return [{**sweep_view(v.label, v.color, v.run), "view": v} for v in self.sweeps]

    def health_rows(self) -> list[dict[str, Any]]:
        return [{"view": v, "h": h, "warnings": "; ".join(h.warnings)} for v in self.evals for h in v.run.benchmarks]

    def endpoint_rows(self) -> list[dict[str, Any]]:
        """Requests, failures, parking and latency per endpoint of runs with several
        ``--base-url`` (report.json ``endpoints``)."""
        rows = []
        for v in self.evals:
            endpoints = v.run.report.endpoints or []
            if len(endpoints) < 2:
                continue
            rows += [{"view": v, "e": e} for e in endpoints if isinstance(e, dict)]
        return rows

    def judge_rows(self) -> list[dict[str, Any]]:
        """report.json ``judge``: one row per (run, benchmark) and the run's overall row."""
        out = []
        for v in self.evals:
            judge = v.run.report.judge
            if not isinstance(judge, dict) or not isinstance(judge.get("overall"), dict):
                continue
            benches = judge.get("benchmarks") if isinstance(judge.get("benchmarks"), dict) else {}
            rows = [{"name": str(b), "s": s, "overall": False} for b, s in benches.items() if isinstance(s, dict)]
            rows.append({"name": "OVERALL", "s": judge["overall"], "overall": True})
            out.append({"view": v, "judge": judge, "rows": rows})
        return out

    def sample_controls(self) -> dict[str, Any]:
        benches = sorted({b for v in self.evals for b in {k[0] for k in v.run.journal().index}}, key=_natural)
        bounds = [self.bound(v) for v in self.evals]
        cut = [f"{v.label}: {b.embedded:,} of {b.total:,} samples" for v, b in zip(self.evals, bounds) if b.step > 1]
        return {"benches": benches, "statuses": STATUSES, "several": len(self.evals) > 1,
                "bounded": any(b.cut is not None for b in bounds), "spread": cut,
                "cut": min((b.cut for b in bounds if b.cut is not None), default=None)}

    def bound(self, v: RunView) -> Bound:
        return Bound.of(len(v.run.journal().index), len(self.evals), self.full_samples)

    def eval_data(self, v: RunView) -> dict[str, Any]:
        """Samples of one eval run for the browser: questions once (``q``), one entry per
        (question, repeat) (``s``). Unless ``full_samples``, long texts are cut to head and tail
        (``*n``: the full length) and a run too large for the budget embeds an even spread of
        its samples, so the page stays near 10 MB however large the journal."""
        from ..app.views import cut_text

        bound = self.bound(v)

        def text(value: Any, field: str, out: dict[str, Any]) -> None:
            full = _stringify(value) if value is not None else None
            kept, was_cut = cut_text(full, bound.cut, WHERE_FULL)
            out[field] = kept
            if was_cut:
                out[field + "n"] = len(full or "")

        qindex: dict[tuple[str, str], int] = {}
        questions: list[dict[str, Any]] = []
        samples: list[dict[str, Any]] = []
        journal = v.run.journal()
        order = sorted(journal.index.items(), key=lambda kv: (_natural(kv[0][0]), _natural(kv[0][1]), kv[0][2]))
        for rec in journal.read(off for _, off in order[::bound.step]):
            key = (rec.benchmark, rec.sample_id)
            qi = qindex.get(key)
            if qi is None:
                qi = qindex[key] = len(questions)
                q: dict[str, Any] = {"b": key[0], "id": key[1], "gold": _stringify(rec.gold), "sub": list(rec.subsets)}
                text(_stringify(rec.question) or _stringify(rec.prompt), "text", q)
                questions.append(q)
            s: dict[str, Any] = {"qi": qi, "rp": rec.repeat, "st": rec.status, "ok": rec.correct,
                                 "x": rec.extracted if rec.extracted is None else _stringify(rec.extracted),
                                 "fr": rec.finish_reason, "ct": rec.completion_tokens,
                                 "lat": rec.latency_s, "sc": rec.score,
                                 "gd": _stringify(rec.grade_detail) or None, "jv": rec.judge_verdict}
            text(rec.response, "r", s)
            text(rec.reasoning, "th", s)
            text(rec.error, "e", s)
            text(rec.judge_text, "jt", s)
            samples.append(s)
        return {"label": v.label, "q": questions, "s": samples, "total": bound.total}


def _delta(a: Any, b: Any) -> dict[str, Any] | None:
    """Second run minus first; ``sep`` when the 95% CIs do not overlap."""
    if not a or not b or a.score is None or b.score is None:
        return None
    d = float(b.score) - float(a.score)
    sep = (a.ci_high is not None and b.ci_low is not None
           and (b.ci_low > a.ci_high or (a.ci_low or 0) > (b.ci_high if b.ci_high is not None else 1)))
    return {"text": f"{d:+.4f}", "sep": bool(sep),
            "cls": "delta-up" if d > 0 else "delta-down" if d < 0 else "mut"}


def render_page(runs: Iterable[RunFolder], full_samples: bool = False) -> str:
    """The report page; unless ``full_samples``, long sample texts are cut to head and tail
    (the page stays near 10 MB; ``lmgauge serve`` shows them whole)."""
    return Page(list(runs), full_samples).render()

