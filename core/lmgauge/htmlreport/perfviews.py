"""The report's perf part as plain data and SVG charts for the templates: the at-a-glance
cards (with the knee), the sweep charts (throughput and latency against concurrency or request
rate), the summary table, the best configuration of each run, the SLA frontier of
``--sla-search`` runs, the per-turn table of multi-turn levels, and one timeline per level
(client TTFT and completions, offered vs achieved rate, the server's ``--server-metrics``
series), its points capped so that long levels stay light.

Endpoints that return vectors or scores (embeddings, rerank, score) have no TTFT or TPOT: their
levels get latency, requests/s, input tokens/s and inputs/s instead (as the terminal tables)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from markupsafe import Markup

from ..runfolder import PerfLevel, RunFolder
from .svg import DASHES, PALETTE, Probe, Series, fmt_num, fmt_val, frontier_chart, line_chart, time_chart

if TYPE_CHECKING:
    from .page import RunView

LATENCY_CHARTS = (("Time to first token (TTFT)", "ttft_s"), ("Time per output token (TPOT)", "tpot_s"),
                  ("End-to-end latency", "latency_s"))


def is_no_text(run: RunFolder, lv: PerfLevel) -> bool:
    """A level of an endpoint without generated text (embeddings, rerank, score)."""
    return not lv.text


def level_name(lv: PerfLevel) -> str:
    if lv.label:
        return str(lv.label)
    if lv.rate is not None:
        return f"rate {fmt_num(float(lv.rate))} req/s"
    return f"concurrency {lv.concurrency}"


def best_levels(run: RunFolder) -> dict[str, tuple[PerfLevel | None, float | None]]:
    """Best levels of a perf run: highest RPS / output throughput, lowest mean latency and
    p99 TTFT (levels where every request failed are ignored)."""
    levels = [lv for lv in run.levels if lv.succeeded > 0]
    out: dict[str, tuple[PerfLevel | None, float | None]] = {}

    def pick(key: str, getter: Callable[[PerfLevel], Any], highest: bool) -> None:
        cands = [(lv, getter(lv)) for lv in levels]
        cands = [(lv, v) for lv, v in cands if isinstance(v, (int, float)) and not math.isnan(v)]
        if cands:
            out[key] = (max if highest else min)(cands, key=lambda t: t[1])

    pick("rps", lambda lv: lv.stat("request_throughput"), True)
    pick("tok", lambda lv: lv.stat("output_token_throughput") if lv.text else None, True)
    pick("in_tok", lambda lv: None if lv.text else lv.stat("input_token_throughput"), True)
    pick("lat", lambda lv: lv.dist("latency_s").mean, False)
    pick("ttft", lambda lv: lv.dist("ttft_s").get("p99") if lv.text else None, False)
    return out


def knee_of(run: RunFolder) -> dict[str, Any] | None:
    """summary.json ``best.knee``: the smallest level of a sweep reaching 95% of its peak
    throughput (run, value, peak), or None."""
    knee = run.summary.best.get("knee") if run.summary is not None else None
    if not isinstance(knee, dict) or not isinstance(knee.get("value"), (int, float)):
        return None
    peak = knee.get("peak")
    return {"run": str(knee.get("run") or "?"), "value": float(knee["value"]),
            "peak": float(peak) if isinstance(peak, (int, float)) else None}


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def sla_answer(sla: dict[str, Any]) -> str:
    """The search's one-line answer, as the terminal prints it."""
    objectives = ", ".join(str(o.get("text")) for o in sla.get("objectives") or [] if isinstance(o, dict))
    n = len(sla.get("probes") or [])
    best, stopped = sla.get("best"), sla.get("stopped") or ""
    if not isinstance(best, (int, float)):
        return f"SLA frontier ({objectives}): no load in range meets it: {stopped} ({n} probes)"
    dim = "rate" if sla.get("dimension") == "rate" else "concurrency"
    load = f"{fmt_num(float(best))} req/s" if dim == "rate" else str(best)
    return f"SLA frontier ({objectives}): highest {dim} that meets it: {load}; {stopped} ({n} probes)"


BEST_LINES = (("Highest RPS", "rps", "req/s"), ("Highest output throughput", "tok", "tokens/s"),
              ("Highest input throughput", "in_tok", "tokens/s"), ("Lowest latency (mean)", "lat", "s"),
              ("Lowest TTFT (p99)", "ttft", "s"))


@dataclass
class Chart:
    key: str
    svg: Markup
    legend: list[tuple[str, str, str]] = field(default_factory=list)  # (text, colour, dash)


class PerfViews:
    """Everything the perf templates show, for the perf runs of a page."""

    def __init__(self, views: list["RunView"]):
        self.views = views
        self.multi = len(views) > 1

    # -- at a glance -------------------------------------------------------------------
    def cards(self) -> list[dict[str, Any]]:
        out = []
        for v in self.views:
            best = best_levels(v.run)
            lines = []
            for label, key, unit in (("Highest RPS", "rps", "req/s"), ("Highest output", "tok", "tok/s"),
                                     ("Highest input", "in_tok", "tok/s"), ("Lowest latency", "lat", "s")):
                lv, val = best.get(key, (None, None))
                if lv is not None:
                    lines.append({"label": label, "value": val, "unit": unit, "level": level_name(lv)})
            knee = knee_of(v.run)
            if knee:
                lines.append({"label": "Knee (≥95% of peak)", "value": knee["value"], "unit": "req/s",
                              "level": f"{knee['run']} (peak {fmt_val(knee['peak'])})" if knee["peak"] is not None else knee["run"]})
            if lines:
                out.append({"view": v, "lines": lines})
        return out

    # -- sweep charts ------------------------------------------------------------------
    def chart_groups(self) -> list[list[Chart]]:
        """One chart set per x axis (concurrency, request rate); runs sharing an axis overlaid."""
        groups: dict[str, list["RunView"]] = {}
        for v in self.views:
            axis = v.run.axis()
            if any(isinstance(getattr(lv, axis), (int, float)) for lv in v.run.levels):  # not a lone ramp or trace level
                groups.setdefault(axis, []).append(v)
        return [self.sweep_charts(axis, vs) for axis, vs in groups.items()]

    def sweep_charts(self, axis: str, views: list["RunView"]) -> list[Chart]:
        x_label = "request rate (req/s)" if axis == "rate" else "concurrency"
        single = len(views) == 1
        pcts = ["p50", "p90", "p99"] if single else ["p50", "p99"]
        text = any(not is_no_text(v.run, lv) for v in views for lv in v.run.levels)
        no_text = any(is_no_text(v.run, lv) for v in views for lv in v.run.levels)

        def xy(v: "RunView", getter: Callable[[PerfLevel], Any], kind: bool | None) -> list[tuple[float, float]]:
            """(x, y) of the run's levels; ``kind`` True: text levels only, False: no-text only."""
            out = []
            for lv in v.run.levels:
                if kind is not None and is_no_text(v.run, lv) == kind:
                    continue
                x, y = getattr(lv, axis), getter(lv)
                if isinstance(x, (int, float)) and isinstance(y, (int, float)):
                    out.append((float(x), float(y)))
            return out

        throughputs: list[tuple[str, str, str, bool | None]] = [("Request throughput", "request_throughput", "requests/s", None)]
        if text:
            throughputs.insert(0, ("Output throughput", "output_token_throughput", "tokens/s", True))
        if no_text:
            throughputs.append(("Input throughput", "input_token_throughput", "tokens/s", False))
        charts = []
        for title, key, unit, kind in throughputs:
            series = [Series(v.label, v.color, xy(v, lambda lv, k=key: lv.stat(k), kind)) for v in views]
            series = [s for s in series if s.points]
            charts.append(Chart(key, Markup(line_chart(title, series, x_label, unit)), [(s.label, s.color, "") for s in series]))
        for title, key in (LATENCY_CHARTS if text else LATENCY_CHARTS[2:]):
            series = []
            for v in views:
                for n, p in enumerate(pcts):
                    color = PALETTE[n] if single else v.color
                    dash = "" if single else DASHES.get(p, "")
                    name = p if single else f"{v.label} {p}"
                    kind = None if key == "latency_s" else True
                    series.append(Series(name, color, xy(v, lambda lv, k=key, p=p: lv.dist(k).get(p), kind), dash))
            series = [s for s in series if s.points]
            charts.append(Chart(key, Markup(line_chart(title, series, x_label, "seconds")),
                                [(s.label, s.color, s.dash) for s in series]))
        return charts

    # -- table -------------------------------------------------------------------------
    def table(self) -> dict[str, Any]:
        """The summary table: the sweep columns the perf metrics declare (as the terminal's,
        lmgauge.perf.tables), for text endpoints when any level generates text, else for
        embeddings/rerank/score; a plugin metric's columns appear with them."""
        from ..perf.registry import perf_metrics
        from ..perf.tables import level_cells, summary_columns

        columns = summary_columns([lv for v in self.views for lv in v.run.levels], perf_metrics())
        rows = []
        for v in self.views:
            best_ids = {id(b[0]) for b in best_levels(v.run).values() if b[0] is not None}
            for lv in v.run.levels:
                rows.append({
                    "view": v, "lv": lv, "best": id(lv) in best_ids, "no_text": is_no_text(v.run, lv),
                    "rate": lv.rate if lv.rate is not None else lv.label, "cells": level_cells(lv, columns),
                    "failures": "; ".join(f"{k}: {n}" for k, n in lv.failures.items())})
        return {"rows": rows, "columns": [c[2] for c in columns]}

    def timelines(self) -> list[dict[str, Any]]:
        """One block per level: client TTFT and completions over time, offered vs achieved rate
        (ramp and trace levels), and the server's series where it was scraped."""
        out = []
        for v in self.views:
            times, series = v.run.request_times(), v.run.server_series()
            for i, lv in enumerate(v.run.levels):
                level_series = series.get(i, {})
                timeline = lv.timeline if isinstance(lv.timeline, list) else []
                x_max = _span(times.get(i, []), level_series, timeline)
                charts = client_charts(times.get(i, []), x_max)
                rate = rate_chart(timeline, x_max)
                if rate is not None:
                    charts.append(rate)
                server = server_charts(level_series, x_max)
                sm = lv.server_metrics
                if not charts and not server and not sm:
                    continue
                out.append({"view": v, "level": level_name(lv), "charts": charts, "server": server,
                            "note": server_note(sm), "figures": server_figures(sm),
                            "warning": sm.get("warning") if isinstance(sm, dict) else None})
        return out

    def turn_tables(self) -> list[dict[str, Any]]:
        """Multi-turn levels: figures per turn index (summary.json ``turns``) and per session."""
        out = []
        for v in self.views:
            for lv in v.run.levels:
                if lv.turns:
                    sessions = lv.sessions if isinstance(lv.sessions, dict) else None
                    out.append({"view": v, "level": level_name(lv), "turns": lv.turns, "sessions": sessions})
        return out

    def sla_searches(self) -> list[dict[str, Any]]:
        """``--sla-search`` runs: per objective, its measured value at every probe against the
        load, the limit, met and missed probes, the best load; the one-line answer."""
        out = []
        for v in self.views:
            sla = v.run.summary.sla_search if v.run.summary is not None else None
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
                points = [Probe(float(p[dim]), _number((p.get("values") or {}).get(text)), bool(p.get("met")))
                          for p in probes]
                unit = "seconds" if str(obj.get("metric", "")).endswith("_s") else str(obj.get("metric") or "value")
                svg = frontier_chart(f"SLA frontier: {text}", points, float(obj["value"]), text, x_label, unit, best)
                charts.append(Chart("sla-frontier", Markup(svg), [("met", "#16a34a", ""), ("missed", "#dc2626", ""),
                                                                  (f"limit {text}", "#dc2626", "dashed")]))
            out.append({"view": v, "dimension": dim, "answer": sla_answer(sla), "charts": charts,
                        "probes": [{"load": p[dim], "met": bool(p.get("met")), "failed": ", ".join(map(str, p.get("failed") or [])),
                                    "rps": p.get("request_throughput"), "best": best is not None and p[dim] == best}
                                   for p in probes]})
        return out

    def best_boxes(self) -> list[dict[str, Any]]:
        out = []
        for v in self.views:
            best = best_levels(v.run)
            lines = []
            for label, key, unit in BEST_LINES:
                lv, val = best.get(key, (None, None))
                if lv is not None:
                    lines.append({"label": label, "level": level_name(lv), "value": val, "unit": unit})
            knee = knee_of(v.run)
            if knee:
                lines.append({"label": "Knee (≥95% of peak)", "level": knee["run"], "value": knee["value"], "unit": "req/s"})
            notes = list(v.run.summary.recommendations) if v.run.summary is not None else []
            out.append({"view": v, "lines": lines, "notes": notes})
        return out


# -- over time -------------------------------------------------------------------------------
MAX_DOTS = 600    # TTFT points drawn per level (every k-th request beyond that)
MAX_BINS = 300    # throughput bins per level (wider bins beyond that)
MAX_SERIES_POINTS = 600
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
FAMILIES = {"vllm": "vLLM", "sglang": "SGLang", "tgi": "TGI", "lmdeploy": "lmdeploy"}


def _thin(points: list[tuple[float, float]], cap: int) -> list[tuple[float, float]]:
    """Every k-th point, so at most about ``cap`` remain (the last one kept)."""
    if len(points) <= cap:
        return points
    step = math.ceil(len(points) / cap)
    return points[::step] + ([points[-1]] if (len(points) - 1) % step else [])


def client_charts(times: list[tuple[float, float | None, float | None, bool]], x_max: float) -> list[Chart]:
    """TTFT of each request at the moment its first token came (sent + TTFT), and completions
    per second (successful requests by the moment they ended)."""
    ttft = [(sent + t, t) for sent, t, _, ok in times if ok and t is not None]
    ends = sorted(sent + lat for sent, _, lat, ok in times if ok and lat is not None)
    charts = []
    if ttft:
        s = Series("TTFT", PALETTE[0], _thin(ttft, MAX_DOTS), style="dots", key="client_ttft")
        charts.append(Chart("timeline-ttft", Markup(time_chart("Client: TTFT of each request", [s], "seconds", x_max)),
                            [("TTFT (at first token)", PALETTE[0], "")]))
    if ends:
        width = max(1.0, float(math.ceil(ends[-1] / MAX_BINS)))
        counts: dict[int, int] = {}
        for t in ends:
            k = int(max(t, 0.0) // width)
            counts[k] = counts.get(k, 0) + 1
        last = max(counts)
        covered = max(ends[-1] - last * width, 0.05 * width)  # the last bin ends with the last request
        pts = [((k + 0.5) * width, counts.get(k, 0) / width) for k in range(last)]
        pts.append((last * width + covered / 2, counts[last] / covered))
        unit = "per second" if width == 1 else f"per second ({width:g} s bins)"
        s = Series("completions/s", PALETTE[2], pts, key="client_throughput")
        charts.append(Chart("timeline-throughput",
                            Markup(time_chart("Client: completed requests", [s], unit, x_max)),
                            [("completed requests/s", PALETTE[2], "")]))
    return charts


def rate_chart(timeline: list[dict[str, Any]], x_max: float) -> Chart | None:
    """Offered (scheduled) against achieved (sent) and finished requests per second, from
    summary.json ``timeline`` (trace-replay and ramp levels)."""
    rows = [r for r in timeline if isinstance(r, dict) and isinstance(r.get("t"), (int, float))]
    if not rows:
        return None
    series = [Series(label, color, [(float(r["t"]) + 0.5, float(r.get(key) or 0.0)) for r in rows], dash, key=key)
              for key, label, color, dash in (("achieved", "achieved (sent)", PALETTE[0], ""), ("finished", "finished", PALETTE[2], "2 3"),
                                              ("offered", "offered (scheduled)", PALETTE[3], "5 3"))]
    return Chart("timeline-rate", Markup(time_chart("Offered vs achieved rate", series, "requests per second", x_max)),
                 [(s.label, s.color, s.dash) for s in series])


def server_charts(series: dict[str, list[tuple[float, float]]], x_max: float) -> list[Chart]:
    charts = []
    for key, title, unit, y_max, scale, members in SERVER_CHARTS:
        lines = []
        for n, (name, label) in enumerate(members):
            points = series.get(name)
            if points:
                pts = _thin([(max(t, 0.0), v * scale) for t, v in points], MAX_SERIES_POINTS)
                lines.append(Series(label, PALETTE[(n + 3) % len(PALETTE)], pts, key=name))
        if lines:
            charts.append(Chart(key, Markup(time_chart(title, lines, unit, x_max, y_max)),
                                [(s.label, s.color, "") for s in lines]))
    return charts


def _span(times: list[tuple[float, float | None, float | None, bool]], series: dict[str, list[tuple[float, float]]],
          timeline: list[dict[str, Any]]) -> float:
    ends = [sent + (lat or 0.0) for sent, _, lat, _ in times]
    ends += [t for pts in series.values() for t, _ in pts]
    ends += [float(r["t"]) + 1 for r in timeline if isinstance(r, dict) and isinstance(r.get("t"), (int, float))]
    return float(math.ceil(max(ends, default=1.0)))  # whole seconds: the throughput bins end there


SERIES_UNITS = {"requests_running": ("requests", 1.0), "requests_waiting": ("requests", 1.0),
                "kv_cache_usage": ("%", 100.0), "prefix_cache_hit_rate": ("%", 100.0), "preemptions": ("per s", 1.0),
                "spec_decode_acceptance": ("%", 100.0), "spec_decode_accept_length": ("tokens/step", 1.0)}


def server_figures(sm: Any) -> list[dict[str, Any]]:
    """Mean, max and last of each normalised series (summary.json ``server_metrics.series``),
    ratios in percent."""
    series = sm.get("series") if isinstance(sm, dict) else None
    if not isinstance(series, dict):
        return []
    out = []
    for name, (unit, scale) in SERIES_UNITS.items():
        f = series.get(name)
        if isinstance(f, dict):
            out.append({"name": name.replace("_", " "), "unit": unit,
                        **{k: f.get(k) * scale if isinstance(f.get(k), (int, float)) else None for k in ("mean", "max", "last")}})
    return out


def server_note(sm: Any) -> str | None:
    """One line on what the scraper read (summary.json ``server_metrics``)."""
    if not isinstance(sm, dict):
        return None
    family = FAMILIES.get(str(sm.get("family")), str(sm.get("family") or "unknown"))
    return (f"{family} metrics from {sm.get('url') or '?'}: {sm.get('read', 0)} of {sm.get('scrapes', 0)} scrapes read"
            + (f", {sm.get('failed')} failed" if sm.get("failed") else ""))
