"""Terminal tables for one or several run folders: eval scores (side by side when several),
truncation/error notes, the perf summary per level and the best configuration."""
from __future__ import annotations

import math
from typing import Any

from ..texttable import clean_cell, grid_table as table
from .perfviews import best_levels, knee_of, level_name
from .rundata import RunFolder, run_labels
from .svg import fmt_num, fmt_val


def _f(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, (int, float)):
        return f"{v:.{digits}f}"
    return str(v)


def _g(d: Any, *keys: str) -> Any:
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None
    return d


def eval_tables(runs: list[RunFolder], labels: list[str]) -> str:
    out = []
    if len(runs) == 1:
        run = runs[0]
        rows = []
        for r in run.results:
            ci = "-" if r.get("ci_low") is None else f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
            rows.append([run.model, str(r.get("benchmark")), str(r.get("metric")), str(r.get("subset")),
                         str(r.get("count", "")), _f(r.get("score")), ci])
        out.append(table(["Model", "Dataset", "Metric", "Subset", "Num", "Score", "95% CI"], rows, {4, 5}))
    else:
        keys: list[tuple[str, str, str]] = []
        cells: dict[tuple[str, str, str], dict[int, dict[str, Any]]] = {}
        for i, run in enumerate(runs):
            for r in run.results:
                k = (str(r.get("benchmark")), str(r.get("metric")), str(r.get("subset")))
                if k not in cells:
                    keys.append(k)
                    cells[k] = {}
                cells[k][i] = r
        rows = []
        for k in keys:
            row = list(k)
            for i in range(len(runs)):
                c = cells[k].get(i)
                row.append("-" if c is None else f"{_f(c.get('score'))} ±{_half(c)}")
            rows.append(row)
        out.append(table(["Dataset", "Metric", "Subset", *labels], rows, set(range(3, 3 + len(runs)))))
    notes = []
    for label, run in zip(labels, runs):
        for h in run.benchmarks:
            who = f"{label}: " if len(runs) > 1 else ""
            if h.get("truncated") or h.get("errors"):
                n_err = h.get("errors", 0)
                notes.append(f"note: {who}{h.get('benchmark')}: {h.get('truncated', 0)} truncated, "
                             f"{n_err} error{'' if n_err == 1 else 's'} of {h.get('samples', '?')} samples")
            for w in h.get("warnings") or []:
                notes.append(f"note: {who}{h.get('benchmark')}: {w}")
    if notes:
        out.append("\n".join(clean_cell(n) for n in dict.fromkeys(notes)))
    return "\n".join(out)


def _half(row: dict[str, Any]) -> str:
    if row.get("ci_low") is None or row.get("ci_high") is None:
        return "-"
    return f"{(row['ci_high'] - row['ci_low']) / 2:.3f}"


def perf_tables(runs: list[RunFolder], labels: list[str]) -> str:
    multi = len(runs) > 1
    header = (["Run"] if multi else []) + ["Conc.", "Rate", "RPS", "Avg Lat.(s)", "P99 Lat.(s)", "Gen. toks/s",
                                            "Avg TTFT(s)", "P99 TTFT(s)", "Avg TPOT(s)", "P99 TPOT(s)", "Success"]
    rows = []
    for label, run in zip(labels, runs):
        for lv in run.levels:
            req, ok = lv.get("requests") or 0, lv.get("succeeded")
            rows.append(([label] if multi else []) + [
                "-" if lv.get("concurrency") is None else str(lv.get("concurrency")),
                str(lv.get("label") or "-") if lv.get("rate") is None else fmt_num(float(lv["rate"])),
                _f(lv.get("request_throughput"), 2), _f(_g(lv, "latency_s", "mean"), 3), _f(_g(lv, "latency_s", "p99"), 3),
                _f(lv.get("output_token_throughput"), 2), _f(_g(lv, "ttft_s", "mean"), 3), _f(_g(lv, "ttft_s", "p99"), 3),
                _f(_g(lv, "tpot_s", "mean"), 4), _f(_g(lv, "tpot_s", "p99"), 4),
                "-" if not req or ok is None else f"{100 * ok / req:.1f}%"])
    off = 1 if multi else 0
    out = [table(header, rows, set(range(off, len(header))))]
    for label, run in zip(labels, runs):
        best = best_levels(run)
        lines = [f"Best configuration{' of ' + label if multi else ''}:"]
        for name, key, unit in (("Highest RPS", "rps", "req/s"), ("Highest output", "tok", "tokens/s"),
                                ("Highest input", "in_tok", "tokens/s"), ("Lowest latency", "lat", "s")):
            lv, val = best.get(key, (None, None))
            if lv is not None:
                lines.append(f"  {name:<16} {level_name(lv)} ({fmt_val(val)} {unit})")
        knee = knee_of(run)
        if knee:
            lines.append(f"  {'Knee (≥95% peak)':<16} {knee['run']} ({fmt_val(knee['value'])} req/s)")
        for rec in run.report.get("recommendations") or []:
            lines.append(f"  • {rec}")
        out.append("\n".join(clean_cell(x) for x in lines))
    return "\n".join(out)


def render_terminal(runs: list[RunFolder]) -> str:
    """All tables for these runs, eval first, then perf."""
    labels = run_labels(runs)
    evals = [(lab, r) for lab, r in zip(labels, runs) if r.kind == "eval"]
    perfs = [(lab, r) for lab, r in zip(labels, runs) if r.kind == "perf"]
    parts = []
    if evals:
        parts.append(eval_tables([r for _, r in evals], [lab for lab, _ in evals]))
    if perfs:
        parts.append(perf_tables([r for _, r in perfs], [lab for lab, _ in perfs]))
    return "\n\n".join(parts)


__all__ = ["render_terminal", "table"]
