"""Build the self-contained HTML report of one or several run folders.

Everything from a run folder is untrusted text: it reaches the page either escaped by
``html.escape`` (server-rendered tables, SVG) or inside the JSON data block with every ``<``,
``>`` and ``&`` written as a ``\\u`` escape (so neither ``</script>`` nor ``<!--`` can end the
block), from where the script puts it into the DOM with ``textContent`` only. A
Content-Security-Policy allows only the page's own script (by hash) and no network at all.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import math
import re
from html import escape
from typing import Any, Iterable

import orjson

from .. import __version__
from .assets import CSS, JS
from .rundata import RunFolder, run_labels, sample_status
from .svg import DASHES, PALETTE, Series, ci_bar, fmt_num, fmt_val, line_chart

PAGE_SIZE = 25


def esc(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def json_for_script(data: Any) -> str:
    """JSON that is safe inside ``<script type="application/json">``: ``<``, ``>``, ``&`` and
    the JS line separators become ``\\u`` escapes, so ``</script>`` and ``<!--`` cannot occur."""
    text = orjson.dumps(data).decode("utf-8")
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _natural(s: str) -> list[Any]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(s))]


def _num(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, (int, float)):
        return f"{v:,.{digits}f}"
    return esc(v)


def _pct(v: Any) -> str:
    if v is None:
        return "-"
    v = float(v)
    return "<0.1%" if 0 < v < 0.001 else f"{100 * v:.1f}%"


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _stringify(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    return orjson.dumps(v).decode("utf-8")


# --------------------------------------------------------------------------------------
class Page:
    def __init__(self, runs: list[RunFolder]):
        self.runs = runs
        self.labels = run_labels(runs)
        self.colors = [PALETTE[i % len(PALETTE)] for i in range(len(runs))]
        self.evals = [i for i, r in enumerate(runs) if r.kind == "eval"]
        self.perfs = [i for i, r in enumerate(runs) if r.kind == "perf"]

    def swatch(self, i: int) -> str:
        return f'<span class="sw" style="background:{self.colors[i]}"></span>'

    def run_name(self, i: int) -> str:
        return f"{self.swatch(i)}{esc(self.labels[i])}"

    # -- whole page --------------------------------------------------------------------
    def render(self) -> str:
        title = " vs ".join(dict.fromkeys(self.labels)) if len(self.runs) > 1 else self.labels[0]
        body = [self.header(), "<main>", self.glance(), self.runs_table()]
        if self.evals:
            body.append(self.eval_section())
            if len(self.evals) == 2:  # paired significance of the two runs (lmgauge compare)
                from ..eval.compare import compare_section_for_runs

                body.append(compare_section_for_runs(self.runs[self.evals[0]], self.runs[self.evals[1]]))
        if self.perfs:
            body.append(self.perf_section())
        if self.evals:  # long: last
            body.append('<section id="samples-section">' + self.sample_browser() + "</section>")
        body.append("</main>")
        data = {"version": 1, "page_size": PAGE_SIZE, "eval": [self.eval_data(i) for i in self.evals]}
        script_hash = base64.b64encode(hashlib.sha256(JS.encode("utf-8")).digest()).decode()
        csp = (f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
               f"script-src 'sha256-{script_hash}'; base-uri 'none'; form-action 'none'")
        return "".join([
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{esc(csp)}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            '<meta name="referrer" content="no-referrer">',
            f"<title>lmgauge report: {esc(title)}</title><style>{CSS}</style></head><body>",
            *body,
            f'<script type="application/json" id="lmg-data">{json_for_script(data)}</script>',
            f"<script>{JS}</script></body></html>\n",
        ])

    def header(self) -> str:
        kinds = sorted({r.kind for r in self.runs})
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        n = len(self.runs)
        return (f'<header class="top"><h1>lmgauge report</h1><div class="sub">{n} run{"s" if n > 1 else ""} '
                f'({esc(", ".join(kinds))}) · generated {esc(now)} · lmgauge {esc(__version__)}</div></header>')

    def runs_table(self) -> str:
        rows = []
        for i, r in enumerate(self.runs):
            cfg = orjson.dumps(r.config, option=orjson.OPT_INDENT_2).decode("utf-8") if r.config else "{}"
            extra = ""
            if r.kind == "eval":
                extra = f'repeats {esc(r.report.get("repeats", "?"))}'
                if r.report.get("elapsed_s") is not None:
                    extra += f' · {_num(r.report.get("elapsed_s"), 1)} s'
                if r.report.get("complete") is False:
                    extra += ' · <span class="pill warn">incomplete</span>'
            else:
                extra = f"{len(r.levels)} level{'s' if len(r.levels) != 1 else ''}"
            rows.append(
                f'<tr><td>{self.run_name(i)}</td><td>{esc(r.kind)}</td><td>{esc(r.model)}</td>'
                f'<td>{esc(r.backend)}</td><td class="wrap small">{esc(r.url)}</td><td class="small">{esc(r.created)}</td>'
                f'<td class="small">{extra}</td><td class="wrap small mut">{esc(r.path)}</td>'
                f'<td><details class="cfg"><summary>config</summary><pre>{esc(cfg)}</pre></details></td></tr>')
        return ('<section id="runs"><h2>Runs</h2><div class="scroll"><table class="runs"><thead><tr><th>Run</th><th>Kind</th>'
                '<th>Model</th><th>Backend</th><th>URL</th><th>Created</th><th>Details</th><th>Folder</th><th>Config</th>'
                f'</tr></thead><tbody>{"".join(rows)}</tbody></table></div></section>')

    # -- at a glance -------------------------------------------------------------------
    def glance(self) -> str:
        cards = []
        # eval: one card per benchmark, one line per run (main metric, OVERALL)
        benches: list[str] = []
        for i in self.evals:
            for row in self.runs[i].results:
                if row.get("subset") == "OVERALL" and row["benchmark"] not in benches:
                    benches.append(row["benchmark"])
        for b in benches:
            lines = []
            for i in self.evals:
                run = self.runs[i]
                row = _main_row(run.results, b)
                if row is None:
                    continue
                health = next((h for h in run.benchmarks if h.get("benchmark") == b), {})
                pills = []
                if health.get("truncated"):
                    pills.append(f'<span class="pill warn">{esc(health["truncated"])} truncated</span>')
                if health.get("errors"):
                    n_err = health["errors"]
                    pills.append(f'<span class="pill err">{esc(n_err)} error{"" if n_err == 1 else "s"}</span>')
                ci = ""
                if row.get("ci_low") is not None:
                    ci = f'<span class="lab">95% CI {_num(row["ci_low"])}–{_num(row["ci_high"])}</span>'
                lines.append(
                    f'<div class="row">{self.swatch(i) if len(self.runs) > 1 else ""}'
                    f'<span class="big">{_num(row.get("score"), 4)}</span>{ci_bar(row.get("score"), row.get("ci_low"), row.get("ci_high"), self.colors[i])}</div>'
                    f'<div class="row"><span class="lab">{esc(self.labels[i])} · {esc(row.get("metric"))} · n={esc(row.get("count"))}</span>{ci}{"".join(pills)}</div>')
            cards.append(f'<div class="card"><h3>{esc(b)}</h3>{"".join(lines)}</div>')
        for i in self.perfs:
            best = best_levels(self.runs[i])
            if not best:
                continue
            lines = []
            for label, key, unit in (("Highest RPS", "rps", "req/s"), ("Highest output", "tok", "tok/s"),
                                     ("Lowest latency", "lat", "s")):
                lv, val = best.get(key, (None, None))
                if lv is None:
                    continue
                lines.append(f'<div class="row"><span class="lab">{label}</span><span class="big">{fmt_val(val)}</span>'
                             f'<span class="lab">{unit} @ {esc(level_name(lv))}</span></div>')
            cards.append(f'<div class="card"><h3>{self.swatch(i)}{esc(self.labels[i])} · perf</h3>{"".join(lines)}</div>')
        if not cards:
            return ""
        return f'<section id="glance"><h2>At a glance</h2><div class="cards">{"".join(cards)}</div></section>'

    # -- eval --------------------------------------------------------------------------
    def eval_section(self) -> str:
        return '<section id="eval"><h2>Eval scores</h2>' + self.scores_table() + self.health_table() + "</section>"

    def scores_table(self) -> str:
        keys: list[tuple[str, str, str]] = []
        cells: dict[tuple[str, str, str], dict[int, dict[str, Any]]] = {}
        for i in self.evals:
            for row in self.runs[i].results:
                k = (str(row.get("benchmark")), str(row.get("subset")), str(row.get("metric")))
                if k not in cells:
                    cells[k] = {}
                    keys.append(k)
                cells[k][i] = row
        special = {"OVERALL": 0, "MACRO": 1, "WEIGHTED": 2}
        bench_order = {b: n for n, b in enumerate(dict.fromkeys(k[0] for k in keys))}
        metric_order = {m: n for n, m in enumerate(dict.fromkeys(k[2] for k in keys))}
        keys.sort(key=lambda k: (bench_order[k[0]], metric_order[k[2]], special.get(k[1], 9), _natural(k[1])))
        two = len(self.evals) == 2
        head = "<tr><th>Benchmark</th><th>Metric</th><th>Subset</th>"
        for i in self.evals:
            head += f'<th colspan="2">{self.run_name(i)} <span class="mut small">score · 95% CI</span></th>'
        head += "<th>Δ</th>" if two else ""
        head += "</tr>"
        body = []
        for k in keys:
            b, s, m = k
            cls = ' class="overall"' if s in special else ""
            tr = f"<tr{cls}><td>{esc(b)}</td><td>{esc(m)}</td><td>{esc(s)}</td>"
            for i in self.evals:
                row = cells[k].get(i)
                if row is None:
                    tr += '<td class="num mut">-</td><td></td>'
                    continue
                ci = "-" if row.get("ci_low") is None else f'[{_num(row["ci_low"])}, {_num(row["ci_high"])}]'
                tr += (f'<td class="num">{_num(row.get("score"), 4)} <span class="mut small">n={esc(row.get("count"))}</span></td>'
                       f'<td>{ci_bar(row.get("score"), row.get("ci_low"), row.get("ci_high"), self.colors[i])} '
                       f'<span class="small mut">{ci}</span></td>')
            if two:
                a, c = (cells[k].get(i) for i in self.evals)
                tr += f"<td>{_delta(a, c)}</td>"
            body.append(tr + "</tr>")
        note = ('<p class="small mut">Δ = second run minus first; bold when the 95% confidence intervals do not overlap.</p>'
                if two else "")
        return (f'<div class="scroll"><table class="scores"><thead>{head}</thead><tbody>{"".join(body)}</tbody></table></div>{note}')

    def health_table(self) -> str:
        rows = []
        for i in self.evals:
            for h in self.runs[i].benchmarks:
                trunc, errs = h.get("truncated") or 0, h.get("errors") or 0
                warn = "; ".join(str(w) for w in h.get("warnings") or [])
                err_cell = f'<span class="pill err">{esc(errs)}</span>' if errs else "0"
                trunc_cell = f'<span class="pill warn">{esc(trunc)}</span>' if trunc else "0"
                rows.append(
                    f'<tr><td>{self.run_name(i)}</td><td>{esc(h.get("benchmark"))}</td>'
                    f'<td class="num">{esc(h.get("questions", "-"))}</td><td class="num">{esc(h.get("samples", "-"))}</td>'
                    f'<td class="num">{esc(h.get("graded", "-"))}</td>'
                    f'<td class="num">{err_cell}</td>'
                    f'<td class="num">{trunc_cell}</td>'
                    f'<td class="num">{_pct(h.get("truncated_rate"))}</td><td class="wrap small">{esc(warn)}</td></tr>')
        if not rows:
            return ""
        return ('<h3>Truncation and errors</h3><div class="scroll"><table class="health"><thead><tr><th>Run</th><th>Benchmark</th>'
                '<th class="num">Questions</th><th class="num">Samples</th><th class="num">Graded</th><th class="num">Errors</th>'
                '<th class="num">Truncated</th><th class="num">Trunc. rate</th><th>Warnings</th></tr></thead>'
                f'<tbody>{"".join(rows)}</tbody></table></div>')

    def sample_browser(self) -> str:
        benches = sorted({str(s.get("benchmark")) for i in self.evals for s in self.runs[i].samples()}, key=_natural)
        run_sel = ""
        if len(self.evals) > 1:
            opts = "".join(f'<option value="{n}">{esc(self.labels[i])}</option>' for n, i in enumerate(self.evals))
            run_sel = f'<label>Run <select id="f-run"><option value="">all runs</option>{opts}</select></label>'
        bopts = "".join(f'<option value="{esc(b)}">{esc(b)}</option>' for b in benches)
        seg = "".join(f'<button type="button" data-status="{k}">{lab} <span class="n"></span></button>'
                      for k, lab in (("all", "All"), ("correct", "Correct"), ("wrong", "Wrong"),
                                     ("truncated", "Truncated"), ("error", "Error")))
        return ('<h2 id="samples-h">Samples</h2>'
                f'<div class="controls">{run_sel}<label>Benchmark <select id="f-bench"><option value="">all</option>{bopts}</select></label>'
                f'<div class="seg" id="f-status">{seg}</div>'
                '<input id="f-search" type="search" placeholder="Search question, gold, answer, response, reasoning…" aria-label="search samples"></div>'
                '<div class="pager"><button type="button" id="pg-prev">‹ Prev</button><span id="sample-count" class="mut">'
                'loading…</span><button type="button" id="pg-next">Next ›</button></div><div id="samples"></div>'
                '<noscript><p>The sample browser needs JavaScript; the samples are in samples.jsonl.</p></noscript>')

    def eval_data(self, i: int) -> dict[str, Any]:
        """Samples of one eval run for the browser: questions once (``q``), one entry per
        (question, repeat) (``s``)."""
        qindex: dict[tuple[str, str], int] = {}
        questions: list[dict[str, Any]] = []
        samples: list[dict[str, Any]] = []
        recs = sorted(self.runs[i].samples(), key=lambda r: (_natural(str(r.get("benchmark"))),
                                                             _natural(str(r.get("sample_id"))), int(r.get("repeat") or 0)))
        for rec in recs:
            key = (str(rec.get("benchmark")), str(rec.get("sample_id")))
            qi = qindex.get(key)
            if qi is None:
                qi = qindex[key] = len(questions)
                questions.append({"b": key[0], "id": key[1], "text": _stringify(rec.get("question")) or _stringify(rec.get("prompt")),
                                  "gold": _stringify(rec.get("gold")), "sub": [str(x) for x in rec.get("subsets") or []]})
            samples.append({"qi": qi, "rp": rec.get("repeat"), "st": sample_status(rec), "ok": rec.get("correct"),
                            "x": rec.get("extracted") if rec.get("extracted") is None else _stringify(rec.get("extracted")),
                            "r": rec.get("response"), "th": rec.get("reasoning"), "e": rec.get("error"),
                            "fr": rec.get("finish_reason"), "ct": rec.get("completion_tokens"),
                            "lat": rec.get("latency_s"), "sc": rec.get("score"),
                            "gd": _stringify(rec.get("grade_detail")) or None})
        return {"label": self.labels[i], "q": questions, "s": samples}

    # -- perf --------------------------------------------------------------------------
    def perf_section(self) -> str:
        parts = ['<section id="perf"><h2>Perf</h2>']
        groups: dict[str, list[int]] = {}
        for i in self.perfs:
            groups.setdefault(self.runs[i].axis(), []).append(i)
        for axis, idxs in groups.items():
            parts.append(self.perf_charts(axis, idxs))
        parts.append(self.perf_table())
        for i in self.perfs:
            parts.append(self.best_box(i))
        parts.append("</section>")
        return "".join(parts)

    def perf_charts(self, axis: str, idxs: list[int]) -> str:
        x_label = "request rate (req/s)" if axis == "rate" else "concurrency"
        single = len(idxs) == 1
        pcts = ["p50", "p90", "p99"] if single else ["p50", "p99"]
        charts = []

        def xy(i: int, getter) -> list[tuple[float, float]]:
            out = []
            for lv in self.runs[i].levels:
                x = lv.get(axis)
                y = getter(lv)
                if isinstance(x, (int, float)) and isinstance(y, (int, float)):
                    out.append((float(x), float(y)))
            return out

        def legend(items: list[tuple[str, str, str]]) -> str:
            return '<div class="legend">' + "".join(
                f'<span><span class="ln" style="border-top-color:{c};border-top-style:{"dashed" if d else "solid"}"></span>{esc(t)}</span>'
                for t, c, d in items) + "</div>"

        # throughput: output tok/s and req/s
        for title, key, unit in (("Output throughput", "output_token_throughput", "tokens/s"),
                                 ("Request throughput", "request_throughput", "requests/s")):
            series, leg = [], []
            for i in idxs:
                series.append(Series(self.labels[i], self.colors[i], xy(i, lambda lv, k=key: lv.get(k))))
                leg.append((self.labels[i], self.colors[i], ""))
            charts.append(f'<div class="chartbox" data-chart="{key}">{line_chart(title, series, x_label, unit)}{legend(leg)}</div>')
        for title, key in (("Time to first token (TTFT)", "ttft_s"), ("Time per output token (TPOT)", "tpot_s"),
                           ("End-to-end latency", "latency_s")):
            series, leg = [], []
            for i in idxs:
                for n, p in enumerate(pcts):
                    color = PALETTE[n] if single else self.colors[i]
                    dash = "" if single else DASHES.get(p, "")
                    name = p if single else f"{self.labels[i]} {p}"
                    series.append(Series(name, color, xy(i, lambda lv, k=key, p=p: _get(lv, k, p)), dash))
                    leg.append((name, color, dash))
            charts.append(f'<div class="chartbox" data-chart="{key}">{line_chart(title, series, x_label, "seconds")}{legend(leg)}</div>')
        return f'<div class="charts">{"".join(charts)}</div>'

    def perf_table(self) -> str:
        multi = len(self.perfs) > 1
        head = ("<tr>" + ("<th>Run</th>" if multi else "") + "<th>Conc.</th><th>Rate</th><th class=\"num\">RPS</th>"
                '<th class="num">Avg lat. (s)</th><th class="num">P99 lat. (s)</th><th class="num">Gen. tok/s</th>'
                '<th class="num">Avg TTFT (s)</th><th class="num">P99 TTFT (s)</th><th class="num">Avg TPOT (s)</th>'
                '<th class="num">P99 TPOT (s)</th><th class="num">Avg ITL (s)</th><th class="num">Success</th><th>Failures</th></tr>')
        rows = []
        for i in self.perfs:
            run = self.runs[i]
            best = best_levels(run)
            best_ids = {id(v[0]) for v in best.values() if v[0] is not None}
            for lv in run.levels:
                req = lv.get("requests") or 0
                ok = lv.get("succeeded")
                success = "-" if not req or ok is None else f"{100 * ok / req:.1f}%"
                fails = lv.get("failures") or {}
                ftxt = "; ".join(f"{k}: {v}" for k, v in fails.items()) if isinstance(fails, dict) else str(fails)
                cls = ' class="best"' if id(lv) in best_ids else ""
                rows.append(
                    f"<tr{cls}>" + (f"<td>{self.run_name(i)}</td>" if multi else "")
                    + f'<td class="num">{esc(lv.get("concurrency", "-") if lv.get("concurrency") is not None else "-")}</td>'
                    + f'<td class="num">{esc(lv.get("rate")) if lv.get("rate") is not None else "-"}</td>'
                    + f'<td class="num">{_num(lv.get("request_throughput"), 2)}</td>'
                    + f'<td class="num">{_num(_get(lv, "latency_s", "mean"))}</td><td class="num">{_num(_get(lv, "latency_s", "p99"))}</td>'
                    + f'<td class="num">{_num(lv.get("output_token_throughput"), 1)}</td>'
                    + f'<td class="num">{_num(_get(lv, "ttft_s", "mean"))}</td><td class="num">{_num(_get(lv, "ttft_s", "p99"))}</td>'
                    + f'<td class="num">{_num(_get(lv, "tpot_s", "mean"), 4)}</td><td class="num">{_num(_get(lv, "tpot_s", "p99"), 4)}</td>'
                    + f'<td class="num">{_num(_get(lv, "itl_s", "mean"), 4)}</td>'
                    + f'<td class="num">{success}</td><td class="wrap small">{esc(ftxt)}</td></tr>')
        return ('<h3>Summary</h3><div class="scroll"><table class="perf"><thead>' + head + "</thead><tbody>"
                + "".join(rows) + '</tbody></table></div><p class="small mut">Highlighted rows are a best configuration below.</p>')

    def best_box(self, i: int) -> str:
        run = self.runs[i]
        best = best_levels(run)
        lines = []
        for label, key, unit in (("Highest RPS", "rps", "req/s"), ("Highest output throughput", "tok", "tokens/s"),
                                 ("Lowest latency (mean)", "lat", "s"), ("Lowest TTFT (p99)", "ttft", "s")):
            lv, val = best.get(key, (None, None))
            if lv is not None:
                lines.append(f"<div><b>{label}</b>{esc(level_name(lv))} ({esc(fmt_val(val))} {unit})</div>")
        notes = [str(n) for n in (run.report.get("recommendations") or []) if n]
        note_html = ("<ul class=\"notes\">" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>") if notes else ""
        return (f'<div class="bestbox"><div><b>{self.swatch(i)}{esc(self.labels[i])}</b>best configuration</div>'
                f'{"".join(lines)}{note_html}</div>')


def _main_row(results: list[dict[str, Any]], bench: str) -> dict[str, Any] | None:
    rows = [r for r in results if r.get("benchmark") == bench and r.get("subset") == "OVERALL"]
    for r in rows:
        if r.get("metric") == "AveragePass@1":
            return r
    return rows[0] if rows else None


def _delta(a: dict[str, Any] | None, b: dict[str, Any] | None) -> str:
    if not a or not b or a.get("score") is None or b.get("score") is None:
        return ""
    d = float(b["score"]) - float(a["score"])
    sep = (a.get("ci_high") is not None and b.get("ci_low") is not None
           and (b["ci_low"] > a["ci_high"] or a.get("ci_low", 0) > b.get("ci_high", 1)))
    cls = "delta-up" if d > 0 else "delta-down" if d < 0 else "mut"
    text = f"{d:+.4f}"
    title = "95% CIs do not overlap" if sep else "95% CIs overlap"
    return f'<span class="{cls}" title="{title}">{"<b>" + text + "</b>" if sep else text}</span>'


def level_name(lv: dict[str, Any]) -> str:
    if lv.get("rate") is not None:
        return f"rate {fmt_num(float(lv['rate']))} req/s"
    return f"concurrency {lv.get('concurrency')}"


def best_levels(run: RunFolder) -> dict[str, tuple[dict[str, Any] | None, float | None]]:
    """Best levels of a perf run: highest RPS / output throughput, lowest mean latency and
    p99 TTFT (levels where every request failed are ignored)."""
    levels = [lv for lv in run.levels if (lv.get("succeeded") or 0) > 0 or lv.get("succeeded") is None]
    out: dict[str, tuple[dict[str, Any] | None, float | None]] = {}

    def pick(key: str, getter, highest: bool) -> None:
        cands = [(lv, getter(lv)) for lv in levels]
        cands = [(lv, v) for lv, v in cands if isinstance(v, (int, float)) and not math.isnan(v)]
        if cands:
            out[key] = (max if highest else min)(cands, key=lambda t: t[1])

    pick("rps", lambda lv: lv.get("request_throughput"), True)
    pick("tok", lambda lv: lv.get("output_token_throughput"), True)
    pick("lat", lambda lv: _get(lv, "latency_s", "mean"), False)
    pick("ttft", lambda lv: _get(lv, "ttft_s", "p99"), False)
    return out


def render_page(runs: Iterable[RunFolder]) -> str:
    return Page(list(runs)).render()
