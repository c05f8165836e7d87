"""Perf views as data, built from the perf metric declarations (``register_perf_metrics``:
lmgauge's own and any plugin's): the sweep table's columns are each metric's ``summary``
spec, a level's percentile table its ``columns`` spec, the sweep charts every level metric
and every per-request duration the sweep table names. A metric plugin's figures appear with
no change here.

The live app (``lmgauge serve``) and the static report (``lmgauge report``, report.html) both
render :func:`perf_view`: the at-a-glance cards (with the knee), the sweep charts, the table
(best rows marked), the best configuration, the SLA frontier, the per-level percentile, turn
and endpoint tables and the timelines.

Charts are inline SVG from :mod:`lmgauge.htmlreport.svg` (every text escaped there). Several
runs overlay: one series per run on each chart, one block of table rows per run.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from markupsafe import Markup

from ..interfaces import PerfMetric
from ..runfolder import PERCENTILES, PerfLevel, RunFolder
from ..texttable import fmt_num, fmt_val

#: TTFT dots, throughput bins and server points per level timeline
MAX_DOTS, MAX_BINS, MAX_SERIES_POINTS = 600, 300, 600


def metrics() -> list[PerfMetric]:
    from ..perf.registry import perf_metrics

    return perf_metrics()


def _svg():
    from ..htmlreport import svg

    return svg


def profile(lv: PerfLevel) -> str:
    return "text" if lv.text else "no_text"


@dataclass
class PerfRun:
    """One perf run on a page: its label and colour."""

    label: str
    color: str
    run: RunFolder
    id: str = ""

    @property
    def levels(self) -> list[PerfLevel]:
        return self.run.levels


@dataclass
class Chart:
    key: str
    svg: Markup
    legend: list[tuple[str, str, str]] = field(default_factory=list)  # (text, colour, dash)


# -- headline (runs list) ---------------------------------------------------------------------
def headline(run: RunFolder) -> list[dict[str, Any]]:
    """The runs list's figures of a perf run: the best level of each sweep-table figure that
    has a direction (highest for throughputs, lowest for latencies), from the declarations."""
    levels = [lv for lv in run.levels if lv.succeeded]
    if not levels:
        return []
    from ..perf.tables import summary_columns

    out = []
    for m, stat, header, digits in summary_columns(levels, metrics()):
        if m.unit == "share":
            continue
        if m.kind == "request" and stat != "mean":
            continue
        vals = [(lv, lv.stat(m.summary_key, stat)) for lv in levels if m.applies(lv.text)]
        vals = [(lv, v) for lv, v in vals if v is not None]
        if not vals:
            continue
        lv, v = (max if m.higher_is_better else min)(vals, key=lambda t: t[1])
        out.append({"label": header, "value": v, "text": m.format(v, digits), "unit": m.unit, "level": lv.name,
                    "best": "highest" if m.higher_is_better else "lowest"})
        if len(out) == 3:
            break
    return out


KNEE_LABEL = "Knee (≥95% of peak)"


def card_lines(run: RunFolder) -> list[dict[str, Any]]:
    """An at-a-glance card: the :func:`headline` figures and the knee of the sweep (the
    smallest level at 95% of the peak throughput, summary.json ``best.knee``)."""
    from ..perf.tables import knee_of

    lines = headline(run)
    knee = knee_of(run)
    if knee:
        level = knee["run"] if knee["peak"] is None else f"{knee['run']} (peak {fmt_val(knee['peak'])})"
        lines.append({"label": KNEE_LABEL, "value": knee["value"], "text": fmt_val(knee["value"]), "unit": "req/s",
                      "level": level, "best": ""})
    return lines


# -- tables -----------------------------------------------------------------------------------
def best_names(run: RunFolder) -> set[str]:
    """The names of the levels a run's best configuration names (its table rows are marked)."""
    from ..perf.tables import best_levels, knee_of

    names = {lv.name for lv, _ in best_levels(run).values()}
    knee = knee_of(run)
    if knee:
        names.add(knee["run"])
    return names


def sweep_table(runs: Sequence[PerfRun]) -> dict[str, Any]:
    """One row per level of every run: concurrency, rate or label, requests, failures, and the
    declared summary columns (formatted by each metric's own ``format``); ``best``: a level the
    run's best configuration names."""
    from ..perf.tables import level_cells, summary_columns

    levels = [lv for r in runs for lv in r.levels]
    columns = summary_columns(levels, metrics())
    rows = []
    for r in runs:
        best = best_names(r.run)
        for i, lv in enumerate(r.levels):
            fails = "; ".join(f"{k} ×{n}" for k, n in lv.failures.items())
            rows.append({"run": r.label, "color": r.color, "index": i, "name": lv.name, "best": lv.name in best,
                         "concurrency": lv.concurrency, "rate": lv.rate if lv.rate is not None else lv.label,
                         "requests": lv.requests, "failed": lv.failed, "failures": fails,
                         "interrupted": bool(lv.interrupted), "cells": level_cells(lv, columns)})
    return {"multi": len(runs) > 1, "headers": [c[2] for c in columns], "rows": rows}


def percentile_table(lv: PerfLevel) -> dict[str, Any]:
    """A level's percentiles (rows) of every per-request metric declaring a column for the
    level's profile (columns), mean row last."""
    prof = profile(lv)
    cols = sorted((m for m in metrics() if prof in m.columns and m.applies(lv.text)), key=lambda m: m.order)
    rows = [[f"{p}%", *(m.format(lv.dist(m.summary_key).get(f"p{p}"), m.columns[prof][1]) for m in cols)]
            for p in PERCENTILES]
    rows.append(["mean", *(m.format(lv.dist(m.summary_key).mean, m.columns[prof][2]) for m in cols)])
    return {"headers": ["Percentile", *(m.columns[prof][0] for m in cols)], "rows": rows}


def level_blocks(runs: Sequence[PerfRun]) -> list[dict[str, Any]]:
    """Per level: its head line, notes (the terminal's), percentile table, turns, endpoints."""
    from ..perf.tables import level_notes

    out = []
    for r in runs:
        for i, lv in enumerate(r.levels):
            out.append({"run": r.label, "color": r.color, "index": i, "name": lv.name, "requests": lv.requests,
                        "succeeded": lv.succeeded, "duration_s": lv.duration_s, "notes": _safe(level_notes, lv),
                        "percentiles": percentile_table(lv), "turns": turn_table(lv.turns) if lv.turns else None,
                        "endpoints": sub_table(lv.endpoints, "Endpoint") if lv.endpoints else None})
    return out


def _safe(fn, *args) -> list[str]:
    from ..redaction import redact_text

    try:
        return [redact_text(str(x)) for x in fn(*args)]
    except Exception:  # noqa: BLE001 - a note the data cannot give is left out
        return []


def _mean_columns(levels: Sequence[PerfLevel]) -> list[tuple[PerfMetric, str, int]]:
    prof = "text" if any(lv.text for lv in levels) else "no_text"
    cols = sorted((m for m in metrics() if prof in m.columns), key=lambda m: m.order)
    return [(m, m.columns[prof][0], m.columns[prof][2]) for m in cols]


def turn_table(turns: list[PerfLevel]) -> dict[str, Any]:
    """Multi-turn levels: requests and the mean of every declared column per turn index, the
    p50 and p99 of the first duration among them (TTFT: by turn it shows prefix-cache reuse),
    and the cached prompt tokens and prefix-cache hit rate where the server reports them."""
    cols = _mean_columns(turns)
    spread = next((m for m, _, _ in cols if m.unit == "s"), None)
    headers = ["Turn", "Requests", "OK"]
    for m, h, _ in cols:
        headers += [f"Avg {h}", f"P50 {h}", f"P99 {h}"] if m is spread else [f"Avg {h}"]
    headers += ["Avg cached tok", "Prefix-cache hit"]
    rows = []
    for t in turns:
        row = [str(t.turn), str(t.requests), str(t.succeeded)]
        for m, _, d in cols:
            dist = t.dist(m.summary_key)
            row.append(m.format(dist.mean, d))
            if m is spread:
                row += [m.format(dist.get("p50"), d), m.format(dist.get("p99"), d)]
        cached, hit = t.dist("cached_tokens"), t.dist("prefix_cache_hit_rate")
        row += [f"{cached.mean:,.1f}" if cached.count and cached.mean is not None else "-",
                f"{100 * hit.mean:.1f}%" if hit.count and hit.mean is not None else "-"]
        rows.append(row)
    return {"headers": headers, "rows": rows}


def sub_table(parts: list[PerfLevel], first: str) -> dict[str, Any]:
    """Per-endpoint figures of a level spread over several ``--url``: the sweep columns."""
    from ..perf.tables import level_cells, summary_columns
    from ..redaction import redact_text

    columns = summary_columns(parts, metrics())
    rows = [[redact_text(str(p.endpoint or "?")), str(p.requests), str(p.succeeded), *level_cells(p, columns)]
            for p in parts]
    return {"headers": [first, "Requests", "OK", *(c[2] for c in columns)], "rows": rows}


#: the best configuration's lines: (best_levels key, label, unit)
BEST_LINES = (("rps", "Highest RPS", "req/s"), ("tok", "Highest output throughput", "tok/s"),
              ("in_tok", "Highest input throughput", "tok/s"), ("goodput", "Best goodput", "req/s"),
              ("lat", "Lowest latency (mean)", "s"), ("ttft", "Lowest TTFT (p99)", "s"))


def best_boxes(runs: Sequence[PerfRun]) -> list[dict[str, Any]]:
    """Each run's best configuration (lmgauge.perf.tables.best_levels: the level with the
    highest RPS, output or input throughput and goodput, the lowest mean latency and p99 TTFT),
    the knee of the sweep and summary.json's recommendations."""
    from ..perf.tables import best_levels, knee_of
    from ..redaction import redact_text

    out = []
    for r in runs:
        best = best_levels(r.run)
        lines = []
        for key, label, unit in BEST_LINES:
            if key in best:
                lv, value = best[key]
                lines.append({"label": label, "level": lv.name, "value": value, "text": fmt_val(value), "unit": unit})
        knee = knee_of(r.run)
        if knee:
            lines.append({"label": KNEE_LABEL, "level": knee["run"], "value": knee["value"], "text": fmt_val(knee["value"]),
                          "unit": "req/s"})
        notes = [redact_text(str(n)) for n in r.run.summary.recommendations] if r.run.summary is not None else []
        if lines or notes:
            out.append({"run": r.label, "color": r.color, "lines": lines, "notes": notes})
    return out


# -- charts -----------------------------------------------------------------------------------
def sweep_charts(runs: Sequence[PerfRun]) -> list[list[Chart]]:
    """One chart set per x axis (concurrency, request rate), runs sharing an axis overlaid:
    a chart per level metric of the sweep table (throughputs) and per per-request duration
    (p50/p90/p99 of one run; p50/p99 per run when several)."""
    svg = _svg()
    groups: dict[str, list[PerfRun]] = {}
    for r in runs:
        axis = r.run.axis()
        if sum(1 for lv in r.levels if getattr(lv, axis) is not None) >= 1:
            groups.setdefault(axis, []).append(r)
    out = []
    for axis, rs in groups.items():
        out.append(_axis_charts(svg, axis, rs))
    return [g for g in out if g]


def _axis_charts(svg, axis: str, runs: list[PerfRun]) -> list[Chart]:
    from ..perf.tables import summary_columns

    x_label = "request rate (req/s)" if axis == "rate" else "concurrency"
    levels = [lv for r in runs for lv in r.levels]
    single = len(runs) == 1
    pcts = ["p50", "p90", "p99"] if single else ["p50", "p99"]
    seen: set[str] = set()
    level_ms, request_ms = [], []
    headers: dict[str, str] = {}
    for m, _stat, h, _d in summary_columns(levels, metrics()):
        if m.name in seen or m.unit == "share":
            continue
        seen.add(m.name)
        headers[m.name] = h
        (level_ms if m.kind == "level" else request_ms).append(m)

    def xy(r: PerfRun, m: PerfMetric, stat: str | None) -> list[tuple[float, float]]:
        pts = []
        for lv in r.levels:
            x = getattr(lv, axis)
            if x is None or not m.applies(lv.text):
                continue
            y = lv.stat(m.summary_key, stat)
            if y is not None and not (isinstance(y, float) and math.isnan(y)):
                pts.append((float(x), float(y)))
        return pts

    charts = []
    for m in level_ms:
        series = [svg.Series(r.label, r.color, xy(r, m, None)) for r in runs]
        series = [s for s in series if s.points]
        if series:
            charts.append(Chart(m.summary_key, Markup(svg.line_chart(_title(m, headers[m.name]), series, x_label, m.unit)),
                                [(s.label, s.color, "") for s in series]))
    for m in request_ms:
        series = []
        for r in runs:
            for n, p in enumerate(pcts):
                c = svg.PALETTE[n] if single else r.color
                dash = "" if single else svg.DASHES.get(p, "")
                series.append(svg.Series(p if single else f"{r.label} {p}", c, xy(r, m, p), dash))
        series = [s for s in series if s.points]
        if series:
            unit = "seconds" if m.unit == "s" else m.unit
            charts.append(Chart(m.summary_key, Markup(svg.line_chart(_title(m, headers[m.name]), series, x_label, unit)),
                                [(s.label, s.color, s.dash) for s in series]))
    return charts


def _title(m: PerfMetric, header: str = "") -> str:
    """A chart title from the declaration: its ``title``, else its description up to the first
    colon when short, else the sweep table's header and the unit."""
    text = (m.title or "").strip() or (m.description or "").split(":")[0].strip()
    if not text or len(text) > 44:
        text = f"{header or m.name} ({m.unit})" if m.unit and m.unit != "s" else (header or m.name)
    return text[:1].upper() + text[1:]


def sla_views(runs: Sequence[PerfRun]) -> list[dict[str, Any]]:
    """``--sla-search`` runs: per objective, its measured value at every probe against the
    load (met filled, missed hollow, the limit dashed, the best load ringed), and the probes."""
    svg = _svg()
    out = []
    for r in runs:
        sla = r.run.summary.sla_search if r.run.summary is not None else None
        if not isinstance(sla, dict):
            continue
        dim = "rate" if sla.get("dimension") == "rate" else "concurrency"
        probes = [p for p in sla.get("probes") or [] if isinstance(p, dict) and isinstance(p.get(dim), (int, float))]
        best = sla.get("best") if isinstance(sla.get("best"), (int, float)) else None
        x_label = "request rate (req/s)" if dim == "rate" else "concurrency"
        charts = []
        for obj in sla.get("objectives") or []:
            if not isinstance(obj, dict) or not isinstance(obj.get("value"), (int, float)):
                continue
            text = str(obj.get("text"))
            pts = []
            for p in probes:
                v = (p.get("values") or {}).get(text)
                pts.append(svg.Probe(float(p[dim]), float(v) if isinstance(v, (int, float)) else None, bool(p.get("met"))))
            unit = "seconds" if str(obj.get("metric", "")).endswith("_s") else str(obj.get("metric") or "value")
            charts.append(Chart("sla-frontier", Markup(svg.frontier_chart(f"SLA frontier: {text}", pts, float(obj["value"]),
                                                                           text, x_label, unit, best)),
                                [("met", "#16a34a", ""), ("missed", "#dc2626", ""), (f"limit {text}", "#dc2626", "dashed")]))
        out.append({"run": r.label, "color": r.color, "dimension": dim, "answer": str(sla.get("answer") or sla_answer(sla)),
                    "charts": charts,
                    "probes": [{"load": p[dim], "met": bool(p.get("met")), "failed": ", ".join(map(str, p.get("failed") or [])),
                                "rps": p.get("request_throughput"), "best": best is not None and p[dim] == best}
                               for p in probes]})
    return out


def sla_answer(sla: dict[str, Any]) -> str:
    """The search's one-line answer as the terminal prints it, for a summary.json written
    before ``sla_search.answer`` was."""
    from ..perf.sla import frontier_answer

    best = sla.get("best")
    return frontier_answer([str(o.get("text")) for o in sla.get("objectives") or [] if isinstance(o, dict)],
                           "rate" if sla.get("dimension") == "rate" else "concurrency",
                           float(best) if isinstance(best, (int, float)) and not isinstance(best, bool) else None,
                           str(sla.get("stopped") or ""), len(sla.get("probes") or []))


# -- over time --------------------------------------------------------------------------------
SERVER_CHARTS = (
    ("server-requests", "Server: requests running and waiting", "requests", None, 1.0,
     (("requests_running", "running"), ("requests_waiting", "waiting"))),
    ("server-cache", "Server: KV cache and hit rates", "%", 100.0, 100.0,
     (("kv_cache_usage", "KV-cache usage"), ("prefix_cache_hit_rate", "prefix-cache hit rate"),
      ("spec_decode_acceptance", "spec-decode acceptance"))),
    ("server-preemptions", "Server: preemptions", "per second", None, 1.0, (("preemptions", "preemptions"),)),
    ("server-spec-length", "Server: spec-decode accepted length", "tokens per step", None, 1.0,
     (("spec_decode_accept_length", "accepted length"),)),
)
SERIES_UNITS = {"requests_running": ("requests", 1.0), "requests_waiting": ("requests", 1.0),
                "kv_cache_usage": ("%", 100.0), "prefix_cache_hit_rate": ("%", 100.0), "preemptions": ("per s", 1.0),
                "spec_decode_acceptance": ("%", 100.0), "spec_decode_accept_length": ("tokens/step", 1.0)}
FAMILIES = {"vllm": "vLLM", "sglang": "SGLang", "tgi": "TGI", "lmdeploy": "lmdeploy"}


def _thin(points: list[tuple[float, float]], cap: int) -> list[tuple[float, float]]:
    if len(points) <= cap:
        return points
    step = math.ceil(len(points) / cap)
    return points[::step] + ([points[-1]] if (len(points) - 1) % step else [])


def timelines(runs: Sequence[PerfRun]) -> list[dict[str, Any]]:
    """One block per level: each request's TTFT when its first token came, completions per
    second, offered vs achieved rate (ramp and trace levels), the server's own series."""
    svg = _svg()
    out = []
    for r in runs:
        try:
            times, series = r.run.request_times(), r.run.server_series()
        except Exception:  # noqa: BLE001 - no perf.sqlite (yet): the tables still show
            times, series = {}, {}
        for i, lv in enumerate(r.levels):
            lv_series = series.get(i, {})
            timeline = [row for row in lv.timeline or [] if isinstance(row, dict) and isinstance(row.get("t"), (int, float))]
            t = times.get(i, [])
            ends = [sent + (lat or 0.0) for sent, _, lat, _ in t] + [x for pts in lv_series.values() for x, _ in pts]
            ends += [float(row["t"]) + 1 for row in timeline]
            x_max = float(math.ceil(max(ends, default=1.0)))
            charts = _client_charts(svg, t, x_max)
            if timeline:
                s = [svg.Series(label, c, [(float(row["t"]) + 0.5, float(row.get(key) or 0.0)) for row in timeline], dash, key=key)
                     for key, label, c, dash in (("achieved", "achieved (sent)", svg.PALETTE[0], ""),
                                                 ("finished", "finished", svg.PALETTE[2], "2 3"),
                                                 ("offered", "offered (scheduled)", svg.PALETTE[3], "5 3"))]
                charts.append(Chart("timeline-rate", Markup(svg.time_chart("Offered vs achieved rate", s,
                                                                             "requests per second", x_max)),
                                    [(x.label, x.color, x.dash) for x in s]))
            server = []
            for key, title, unit, y_max, scale, members in SERVER_CHARTS:
                lines = []
                for n, (name, label) in enumerate(members):
                    pts = lv_series.get(name)
                    if pts:
                        lines.append(svg.Series(label, svg.PALETTE[(n + 3) % len(svg.PALETTE)],
                                                _thin([(max(x, 0.0), v * scale) for x, v in pts], MAX_SERIES_POINTS), key=name))
                if lines:
                    server.append(Chart(key, Markup(svg.time_chart(title, lines, unit, x_max, y_max)),
                                        [(s.label, s.color, "") for s in lines]))
            sm = lv.server_metrics if isinstance(lv.server_metrics, dict) else None
            if not charts and not server and not sm:
                continue
            out.append({"run": r.label, "color": r.color, "level": lv.name, "charts": charts + server,
                        "note": _server_note(sm), "figures": _server_figures(sm),
                        "warning": str(sm.get("warning")) if sm and sm.get("warning") else None})
    return out


def _client_charts(svg, times, x_max: float) -> list[Chart]:
    ttft = [(sent + t, t) for sent, t, _, ok in times if ok and t is not None]
    ends = sorted(sent + lat for sent, _, lat, ok in times if ok and lat is not None)
    charts = []
    if ttft:
        s = svg.Series("TTFT", svg.PALETTE[0], _thin(ttft, MAX_DOTS), style="dots", key="client_ttft")
        charts.append(Chart("timeline-ttft", Markup(svg.time_chart("Client: TTFT of each request", [s], "seconds", x_max)),
                            [("TTFT (at first token)", svg.PALETTE[0], "")]))
    if ends:
        width = max(1.0, float(math.ceil(ends[-1] / MAX_BINS)))
        counts: dict[int, int] = {}
        for t in ends:
            k = int(max(t, 0.0) // width)
            counts[k] = counts.get(k, 0) + 1
        last = max(counts)
        covered = max(ends[-1] - last * width, 0.05 * width)
        pts = [((k + 0.5) * width, counts.get(k, 0) / width) for k in range(last)]
        pts.append((last * width + covered / 2, counts[last] / covered))
        unit = "per second" if width == 1 else f"per second ({width:g} s bins)"
        s = svg.Series("completions/s", svg.PALETTE[2], pts, key="client_throughput")
        charts.append(Chart("timeline-throughput", Markup(svg.time_chart("Client: completed requests", [s], unit, x_max)),
                            [("completed requests/s", svg.PALETTE[2], "")]))
    return charts


def _server_figures(sm: dict[str, Any] | None) -> list[dict[str, Any]]:
    series = sm.get("series") if sm else None
    if not isinstance(series, dict):
        return []
    out = []
    for name, (unit, scale) in SERIES_UNITS.items():
        f = series.get(name)
        if isinstance(f, dict):
            out.append({"name": name.replace("_", " "), "unit": unit,
                        **{k: f.get(k) * scale if isinstance(f.get(k), (int, float)) else None for k in ("mean", "max", "last")}})
    return out


def _server_note(sm: dict[str, Any] | None) -> str | None:
    if not sm:
        return None
    from ..redaction import redact_text

    family = FAMILIES.get(str(sm.get("family")), str(sm.get("family") or "unknown"))
    return redact_text(f"{family} metrics from {sm.get('url') or '?'}: {sm.get('read', 0)} of {sm.get('scrapes', 0)} "
                       f"scrapes read" + (f", {sm.get('failed')} failed" if sm.get("failed") else ""))


def perf_view(runs: Sequence[PerfRun], with_timelines: bool = True) -> dict[str, Any]:
    """Everything the perf part of a run (or comparison) page shows."""
    return {"charts": sweep_charts(runs), "table": sweep_table(runs), "best": best_boxes(runs),
            "sla": sla_views(runs), "levels": level_blocks(runs),
            "timelines": timelines(runs) if with_timelines else [], "cards": [
                {"run": r.label, "color": r.color, "lines": card_lines(r.run)} for r in runs]}


def fmt(v: Any) -> str:
    return fmt_num(v) if isinstance(v, (int, float)) else "-"
