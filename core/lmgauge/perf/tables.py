"""The perf terminal tables, built from the perf metric declarations (lmgauge.perf.registry):
each metric's ``columns`` place it in a level's percentile table and its ``summary`` in the
sweep table, per profile: ``text`` (endpoints that generate text) or ``no_text`` (embeddings,
rerank, score …). ``lmgauge perf`` and ``lmgauge report`` print the same tables."""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from ..interfaces import PerfMetric
from ..runfolder import PERCENTILES, PerfLevel, PerfSummary, RunFolder
from ..texttable import fmt_num, grid_table


def profile(level: PerfLevel) -> str:
    return "text" if level.text else "no_text"


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _table(header: list[str], rows: list[list[str]], left: int = 0) -> str:
    return grid_table(header, rows, right=range(left, len(header)))


# -- one level -----------------------------------------------------------------------------
def percentile_table(run: PerfLevel, metrics: Sequence[PerfMetric]) -> str:
    """A level's head line, notes and percentile table (mean row last)."""
    prof = profile(run)
    cols = sorted((m for m in metrics if prof in m.columns and m.applies(run.text)), key=lambda m: m.order)
    header = ["Percentile", *(m.columns[prof][0] for m in cols)]
    rows = []
    for p in PERCENTILES:
        rows.append([f"{p}%", *(_fmt(run.dist(m.summary_key).get(f"p{p}"), m.columns[prof][1]) for m in cols)])
    rows.append(["mean", *(_fmt(run.dist(m.summary_key).mean, m.columns[prof][2]) for m in cols)])
    rps = run.stat("request_throughput") or 0.0
    if prof == "text":
        head = (f"{run.name}: {run.succeeded}/{run.requests} ok in {run.duration_s:.2f} s | "
                f"{rps:.2f} req/s | {run.stat('output_token_throughput') or 0:.1f} output tok/s")
        goodput = run.stat("goodput")
        if goodput is not None:
            head += f" | goodput {goodput:.2f} req/s ({run.slo_attainment or 0:.0%} within SLO)"
    else:
        head = (f"{run.api} {run.name}: {run.succeeded}/{run.requests} ok in {run.duration_s:.2f} s | "
                f"{rps:.2f} req/s | {run.stat('input_token_throughput') or 0:.1f} input tok/s")
        per_s = run.stat("input_throughput")
        if per_s is not None:
            head += f" | {per_s:.1f} {run.input_unit or 'inputs'}/s"
    tables = [_table(header, rows)]
    if run.turns:
        tables.append(turn_table(run.turns))
    if run.endpoints:
        tables.append(endpoint_table(run.endpoints))
    return "\n".join([head, *level_notes(run), *tables])


def level_notes(run: PerfLevel) -> list[str]:
    notes = list(run.notes or [])
    if run.failed:
        notes.append("failures: " + ", ".join(f"{k} ×{v}" for k, v in run.failures.items()))
    src = run.usage_source
    if run.text:
        if src.get("tokenizer"):
            notes.append(f"output tokens of {src['tokenizer']} requests counted with the tokenizer "
                         f"{run.tokenizer or ''} (the server sent no usage)".replace("  ", " "))
        if src.get("chunks"):
            notes.append(f"output tokens of {src['chunks']} requests counted as one per chunk (no usage, no tokenizer)")
    elif src.get("tokenizer"):
        notes.append(f"input tokens of {src['tokenizer']} requests counted with the tokenizer (the server sent no usage)")
    q = run.dist("queue_delay_s")
    if run.rate is not None:
        sched = f"scheduled {_fmt(run.scheduled_rate, 2)}, " if run.text else ""
        notes.append(f"rate: target {run.rate:g}, {sched}sent {_fmt(run.achieved_rate, 2)} req/s; queue delay "
                     f"p50 {_fmt(q.get('p50'), 4)} s p99 {_fmt(q.get('p99'), 4)} s")
    if run.client_cpu_share is not None:
        notes.append(f"client CPU: {run.client_cpu_share:.0%} of one core")
    hit = run.dist("prefix_cache_hit_rate")
    if hit.count:
        notes.append(f"prefix-cache hit rate (server's cached_tokens / prompt tokens): mean {hit.mean:.1%}, "
                     f"p50 {hit.get('p50'):.1%}, p90 {hit.get('p90'):.1%} over {hit.count} requests")
    sessions = run.sessions
    if sessions:
        lat = sessions.get("session_latency_s") or {}
        notes.append(f"sessions: {sessions['completed']}/{sessions['sessions']} completed every turn; session latency "
                     f"mean {_fmt(lat.get('mean'), 3)} s, p99 {_fmt(lat.get('p99'), 3)} s")
    notes += workload_notes(run) + input_notes(run)
    if run.interrupted:
        notes.append(f"interrupted: {run.abandoned_in_flight or 0} requests in flight were abandoned (not counted)")
    if run.stopped:
        notes.append(f"stopped early: {run.stopped.get('reason')}")
    reset = run.reset_cache
    if reset and reset.get("resets"):
        where = ", ".join(f"{s} {r}" for s, r in zip(reset.get("servers") or [], reset.get("routes") or []))
        notes.append(f"prefix cache reset before {reset['resets']} of {reset.get('trials', 1)} trial(s) ({where})")
    if run.ci:
        from .registry import perf_metrics
        from .trials import ci_text

        line = ci_text(run, perf_metrics())
        if line:
            notes.append(line)
    return notes


def input_notes(run: PerfLevel) -> list[str]:
    """Vector lengths returned and images sent."""
    out = []
    if run.embedding_dims:
        out.append(f"vectors of {', '.join(map(str, run.embedding_dims))} numbers")
    images = run.images
    if images:
        w, h, n = images["width"], images["height"], images["per_request"]
        size = (f"{w['min']:.0f}x{h['min']:.0f}" if w["min"] == w["max"] and h["min"] == h["max"] else
                f"{w['min']:.0f}–{w['max']:.0f} x {h['min']:.0f}–{h['max']:.0f}")
        count = f"{n['min']:.0f}" if n["min"] == n["max"] else f"{n['min']:.0f}–{n['max']:.0f} (mean {n['mean']:.1f})"
        out.append(f"images: {count} per request, {size} px")
    return out


def workload_notes(run: PerfLevel) -> list[str]:
    """What paced a trace-replay or ramp level, and how closely the client kept to it."""
    out = []
    ramp, trace = run.ramp, run.trace
    if ramp:
        out.append(f"ramp ({ramp['kind']}): {ramp['start_rps']:g} → {ramp['end_rps']:g} req/s over {ramp['span_s']:.1f} s")
    if trace:
        out.append(f"trace replay: offered {_fmt(run.scheduled_rate, 2)} req/s over the trace, sent "
                   f"{_fmt(run.achieved_rate, 2)} req/s")
    if ramp or trace:
        q = run.dist("queue_delay_s")
        out.append(f"sent − scheduled: p50 {_fmt(q.get('p50'), 4)} s, p99 {_fmt(q.get('p99'), 4)} s")
    return out


def turn_table(turns: list[PerfLevel]) -> str:
    """Per-turn figures of a multi-turn level: TTFT by turn shows prefix-cache reuse."""
    header = ["Turn", "Requests", "OK", "Avg input tok", "Avg TTFT(s)", "P50 TTFT(s)", "P99 TTFT(s)", "Avg Lat.(s)",
              "Cache hit % mean/p50/p90"]
    rows = []
    for t in turns:
        hit = t.dist("prefix_cache_hit_rate")
        ttft = t.dist("ttft_s")
        rows.append([str(t.turn), str(t.requests), str(t.succeeded), _fmt(t.avg_input_tokens, 1),
                     _fmt(ttft.mean, 4), _fmt(ttft.get("p50"), 4), _fmt(ttft.get("p99"), 4),
                     _fmt(t.dist("latency_s").mean, 4),
                     "/".join(f"{100 * hit.get(k):.1f}" for k in ("mean", "p50", "p90")) if hit.count else "-"])
    return _table(header, rows)


def endpoint_table(endpoints: list[PerfLevel]) -> str:
    """Per-server figures of a level spread over several ``--url``."""
    header = ["Endpoint", "Requests", "OK", "RPS", "Gen. tok/s", "Avg TTFT(s)", "P99 TTFT(s)", "Avg Lat.(s)", "P99 Lat.(s)"]
    rows = [[e.endpoint or "?", str(e.requests), str(e.succeeded), _fmt(e.stat("request_throughput"), 2),
             _fmt(e.stat("output_token_throughput"), 1), _fmt(e.dist("ttft_s").mean, 4),
             _fmt(e.dist("ttft_s").get("p99"), 4), _fmt(e.dist("latency_s").mean, 4),
             _fmt(e.dist("latency_s").get("p99"), 4)] for e in endpoints]
    return _table(header, rows)


# -- a sweep -------------------------------------------------------------------------------
def summary_columns(levels: Sequence[PerfLevel], metrics: Sequence[PerfMetric]) -> list[tuple[PerfMetric, str | None, str, int]]:
    """The sweep table's metric columns: (metric, stat or None, header, digits), for the text
    profile when any level generates text, else the no-text one."""
    prof = "text" if not levels or any(lv.text for lv in levels) else "no_text"
    cols = sorted((m for m in metrics if prof in m.summary), key=lambda m: m.summary_order)
    return [(m, stat, header, digits) for m in cols for stat, header, digits in m.summary[prof]]


def level_cells(lv: PerfLevel, columns: list[tuple[PerfMetric, str | None, str, int]]) -> list[str]:
    """A level's sweep-table cells. A level with confidence intervals (``--trials``) shows
    value ± half the 95 % CI: with two or more trials the value is the mean over the trials
    (the interval's centre), with one the level's own figure."""
    out = []
    ci = lv.ci or {}
    for m, stat, _header, digits in columns:
        if not m.applies(lv.text):
            out.append("-")
            continue
        value = lv.stat(m.summary_key, stat) if stat else lv.stat(m.summary_key)
        if m.summary_key == "success_rate" and value is None and lv.requests:
            value = lv.success_rate
        bounds = ci.get(m.name if stat is None else f"{m.name}_{stat}")
        if bounds and bounds[0] is not None and bounds[1] is not None and value is not None:
            lo, hi = float(bounds[0]), float(bounds[1])
            centre = (lo + hi) / 2 if (lv.trials or 0) >= 2 else value
            out.append(f"{m.format(centre, digits)} ± {m.format((hi - lo) / 2, digits)}")
            continue
        out.append(m.format(value, digits))
    return out


def sweep_table(runs: Sequence[tuple[str, PerfSummary]], metrics: Sequence[PerfMetric]) -> str:
    """One row per level of every run (a ``Run`` column when several): concurrency, rate (or
    the level's own label) and the declared summary columns."""
    multi = len(runs) > 1
    columns = summary_columns([lv for _, s in runs for lv in s.runs], metrics)
    header = (["Run"] if multi else []) + ["Conc.", "Rate", *(c[2] for c in columns)]
    rows = []
    for label, summary in runs:
        for lv in summary.runs:
            rows.append(([label] if multi else []) + [
                "-" if lv.concurrency is None else str(lv.concurrency),
                str(lv.label or "-") if lv.rate is None else fmt_num(float(lv.rate)),
                *level_cells(lv, columns)])
    return _table(header, rows, 1 if multi else 0)


def level_name(lv: PerfLevel) -> str:
    """A level as the best-configuration lines name it: its label, else its rate or concurrency."""
    if lv.label:
        return str(lv.label)
    if lv.rate is not None:
        return f"rate {fmt_num(float(lv.rate))} req/s"
    return f"concurrency {lv.concurrency}"


def best_levels(run: RunFolder) -> dict[str, tuple[PerfLevel, float]]:
    """The best levels of a sweep: highest RPS, output throughput (text endpoints), input
    throughput (embeddings, rerank, score) and goodput, lowest mean latency and p99 TTFT (text
    endpoints); levels where every request failed are ignored, a figure no level has is left
    out. The terminal's best configuration, and the report's and the app's."""
    ok = [lv for lv in run.levels if lv.succeeded > 0]
    out: dict[str, tuple[PerfLevel, float]] = {}

    def pick(key: str, getter: Callable[[PerfLevel], Any], highest: bool) -> None:
        cands = [(lv, getter(lv)) for lv in ok]
        cands = [(lv, float(v)) for lv, v in cands
                 if isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)]
        if cands:
            out[key] = (max if highest else min)(cands, key=lambda t: t[1])

    pick("rps", lambda lv: lv.stat("request_throughput"), True)
    pick("tok", lambda lv: lv.stat("output_token_throughput") if lv.text else None, True)
    pick("in_tok", lambda lv: None if lv.text else lv.stat("input_token_throughput"), True)
    pick("lat", lambda lv: lv.dist("latency_s").mean, False)
    pick("ttft", lambda lv: lv.dist("ttft_s").get("p99") if lv.text else None, False)
    pick("goodput", lambda lv: lv.stat("goodput"), True)
    return out


def knee_of(run: RunFolder) -> dict[str, Any] | None:
    """summary.json ``best.knee``: the smallest level of a sweep reaching 95% of its peak
    throughput (run, value, peak), or None."""
    summary = run.summary
    knee = summary.best.get("knee") if summary is not None and isinstance(summary.best, dict) else None
    if not isinstance(knee, dict) or not isinstance(knee.get("value"), (int, float)):
        return None
    peak = knee.get("peak")
    return {"run": str(knee.get("run") or "?"), "value": float(knee["value"]),
            "peak": float(peak) if isinstance(peak, (int, float)) else None}


BEST_NAMES = {"highest_rps": "Highest RPS", "lowest_latency": "Lowest latency", "best_goodput": "Best goodput",
              "knee": "Knee (≥95% peak)"}


def summary_text(summary: PerfSummary, metrics: Sequence[PerfMetric]) -> str:
    """What ``lmgauge perf`` prints at the end: the sweep table, the best configuration, the SLA
    frontier and the recommendations."""
    lines = [f"Performance summary: {summary.model} ({summary.url or summary.backend})",
             sweep_table([("", summary)], metrics)]
    lines += [line for r in summary.runs[:1] for line in input_notes(r)]  # vector lengths, images sent
    lines.append("Best configuration:")
    for key, b in summary.best.items():
        unit = "req/s" if key != "lowest_latency" else "s mean latency"
        lines.append(f"  {BEST_NAMES.get(key, key):<16} {b['run']} ({b['value']:.3f} {unit})")
    sla = summary.sla_search
    if sla:
        best = sla.get("best")
        lines.append(f"  {'SLA frontier':<16} {sla['dimension']} {best if best is not None else '-'} "
                     f"({len(sla.get('probes') or [])} probes; {sla.get('stopped')})")
    sat = summary.saturation
    if sat:
        lines.append(f"  {'Saturation':<16} {sat.get('reason')}"
                     + (f" (not run: {', '.join(sat['skipped'])})" if sat.get("skipped") else ""))
    if summary.recommendations:
        lines.append("Recommendations:")
        lines += [f"  • {a}" for a in summary.recommendations]
    return "\n".join(lines)
