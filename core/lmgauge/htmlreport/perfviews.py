"""The report's perf part as plain data for the templates: the at-a-glance cards, the sweep
charts (throughput and latency against concurrency or request rate), the summary table and the
best configuration of each run.

Endpoints that return vectors or scores (embeddings, rerank, score) have no TTFT or TPOT: their
levels get latency, requests/s, input tokens/s and inputs/s instead (as the terminal tables)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from markupsafe import Markup

from ..perf.output import NO_TEXT_APIS
from .rundata import RunFolder
from .svg import DASHES, PALETTE, Series, fmt_num, line_chart

if TYPE_CHECKING:
    from .page import RunView

LATENCY_CHARTS = (("Time to first token (TTFT)", "ttft_s"), ("Time per output token (TPOT)", "tpot_s"),
                  ("End-to-end latency", "latency_s"))


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def is_no_text(run: RunFolder, lv: dict[str, Any]) -> bool:
    """A level of an endpoint without generated text (embeddings, rerank, score)."""
    return (lv.get("api") or run.report.get("api")) in NO_TEXT_APIS


def level_name(lv: dict[str, Any]) -> str:
    if lv.get("label"):
        return str(lv["label"])
    if lv.get("rate") is not None:
        return f"rate {fmt_num(float(lv['rate']))} req/s"
    return f"concurrency {lv.get('concurrency')}"


def best_levels(run: RunFolder) -> dict[str, tuple[dict[str, Any] | None, float | None]]:
    """Best levels of a perf run: highest RPS / output throughput, lowest mean latency and
    p99 TTFT (levels where every request failed are ignored)."""
    levels = [lv for lv in run.levels if (lv.get("succeeded") or 0) > 0 or lv.get("succeeded") is None]
    out: dict[str, tuple[dict[str, Any] | None, float | None]] = {}

    def pick(key: str, getter: Callable[[dict[str, Any]], Any], highest: bool) -> None:
        cands = [(lv, getter(lv)) for lv in levels]
        cands = [(lv, v) for lv, v in cands if isinstance(v, (int, float)) and not math.isnan(v)]
        if cands:
            out[key] = (max if highest else min)(cands, key=lambda t: t[1])

    pick("rps", lambda lv: lv.get("request_throughput"), True)
    pick("tok", lambda lv: None if is_no_text(run, lv) else lv.get("output_token_throughput"), True)
    pick("in_tok", lambda lv: lv.get("input_token_throughput") if is_no_text(run, lv) else None, True)
    pick("lat", lambda lv: _get(lv, "latency_s", "mean"), False)
    pick("ttft", lambda lv: None if is_no_text(run, lv) else _get(lv, "ttft_s", "p99"), False)
    return out


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
            if lines:
                out.append({"view": v, "lines": lines})
        return out

    # -- sweep charts ------------------------------------------------------------------
    def chart_groups(self) -> list[list[Chart]]:
        """One chart set per x axis (concurrency, request rate); runs sharing an axis overlaid."""
        groups: dict[str, list["RunView"]] = {}
        for v in self.views:
            groups.setdefault(v.run.axis(), []).append(v)
        return [self.sweep_charts(axis, vs) for axis, vs in groups.items()]

    def sweep_charts(self, axis: str, views: list["RunView"]) -> list[Chart]:
        x_label = "request rate (req/s)" if axis == "rate" else "concurrency"
        single = len(views) == 1
        pcts = ["p50", "p90", "p99"] if single else ["p50", "p99"]
        text = any(not is_no_text(v.run, lv) for v in views for lv in v.run.levels)
        no_text = any(is_no_text(v.run, lv) for v in views for lv in v.run.levels)

        def xy(v: "RunView", getter: Callable[[dict[str, Any]], Any]) -> list[tuple[float, float]]:
            out = []
            for lv in v.run.levels:
                x, y = lv.get(axis), getter(lv)
                if isinstance(x, (int, float)) and isinstance(y, (int, float)):
                    out.append((float(x), float(y)))
            return out

        throughputs = [("Request throughput", "request_throughput", "requests/s")]
        if text:
            throughputs.insert(0, ("Output throughput", "output_token_throughput", "tokens/s"))
        if no_text:
            throughputs.append(("Input throughput", "input_token_throughput", "tokens/s"))
        charts = []
        for title, key, unit in throughputs:
            series = [Series(v.label, v.color, xy(v, lambda lv, k=key: lv.get(k))) for v in views]
            charts.append(Chart(key, Markup(line_chart(title, series, x_label, unit)),
                                [(v.label, v.color, "") for v in views]))
        latency = LATENCY_CHARTS if text else LATENCY_CHARTS[2:]
        for title, key in latency:
            series, legend = [], []
            for v in views:
                for n, p in enumerate(pcts):
                    color = PALETTE[n] if single else v.color
                    dash = "" if single else DASHES.get(p, "")
                    name = p if single else f"{v.label} {p}"
                    series.append(Series(name, color, xy(v, lambda lv, k=key, p=p: _get(lv, k, p)), dash))
                    legend.append((name, color, dash))
            charts.append(Chart(key, Markup(line_chart(title, series, x_label, "seconds")), legend))
        return charts

    # -- table -------------------------------------------------------------------------
    def table(self) -> dict[str, Any]:
        """The summary table: TTFT/TPOT/ITL/output columns when any level generates text,
        input tokens/s and inputs/s when any level is an embeddings/rerank/score one."""
        text = any(not is_no_text(v.run, lv) for v in self.views for lv in v.run.levels)
        no_text = any(is_no_text(v.run, lv) for v in self.views for lv in v.run.levels)
        rows = []
        for v in self.views:
            best_ids = {id(b[0]) for b in best_levels(v.run).values() if b[0] is not None}
            for lv in v.run.levels:
                req = lv.get("requests") or 0
                ok = lv.get("succeeded")
                fails = lv.get("failures") or {}
                rows.append({
                    "view": v, "lv": lv, "best": id(lv) in best_ids, "no_text": is_no_text(v.run, lv),
                    "rate": lv.get("rate") if lv.get("rate") is not None else lv.get("label"),
                    "success": None if not req or ok is None else ok / req,
                    "failures": "; ".join(f"{k}: {n}" for k, n in fails.items()) if isinstance(fails, dict) else str(fails)})
        return {"rows": rows, "text": text, "no_text": no_text}

    def best_boxes(self) -> list[dict[str, Any]]:
        out = []
        for v in self.views:
            best = best_levels(v.run)
            lines = []
            for label, key, unit in BEST_LINES:
                lv, val = best.get(key, (None, None))
                if lv is not None:
                    lines.append({"label": label, "level": level_name(lv), "value": val, "unit": unit})
            notes = [str(n) for n in (v.run.report.get("recommendations") or []) if n]
            out.append({"view": v, "lines": lines, "notes": notes})
        return out
