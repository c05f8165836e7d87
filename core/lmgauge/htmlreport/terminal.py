"""Terminal tables for one or several run folders: eval scores (side by side when several),
the reasoning-length lines (report.json lengths and budget curve, when the run has them),
truncation/error notes, the perf summary per level and the best configuration, and a sweep's
table, paired comparisons and verdict (DIR/sweep.json)."""
from __future__ import annotations

import math
from typing import Any

from ..texttable import clean_cell, grid_table as table
from ..perf.tables import best_levels, knee_of, level_name
from ..runfolder import RunFolder, run_labels
from ..texttable import fmt_val


def _f(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, (int, float)):
        return f"{v:.{digits}f}"
    return str(v)


def eval_tables(runs: list[RunFolder], labels: list[str]) -> str:
    out = []
    if len(runs) == 1:
        run = runs[0]
        rows = []
        for r in run.results:
            ci = "-" if r.ci_low is None else f"[{r.ci_low:.3f}, {r.ci_high:.3f}]"
            rows.append([run.model, r.benchmark, r.metric, r.subset, str(r.count), _f(r.score), ci])
        out.append(table(["Model", "Dataset", "Metric", "Subset", "Num", "Score", "95% CI"], rows, {4, 5}))
    else:
        keys: list[tuple[str, str, str]] = []
        cells: dict[tuple[str, str, str], dict[int, Any]] = {}
        for i, run in enumerate(runs):
            for r in run.results:
                k = (r.benchmark, r.metric, r.subset)
                if k not in cells:
                    keys.append(k)
                    cells[k] = {}
                cells[k][i] = r
        rows = []
        for k in keys:
            row = list(k)
            for i in range(len(runs)):
                c = cells[k].get(i)
                row.append("-" if c is None else f"{_f(c.score)} ±{_half(c)}")
            rows.append(row)
        out.append(table(["Dataset", "Metric", "Subset", *labels], rows, set(range(3, 3 + len(runs)))))
    from ..eval.report import length_lines

    lengths = [clean_cell(line) for label, run in zip(labels, runs)
               for line in length_lines(run.benchmarks, f"{label}: " if len(runs) > 1 else "")]
    if lengths:
        out.append("\n".join(lengths))
    notes = []
    for label, run in zip(labels, runs):
        for h in run.benchmarks:
            who = f"{label}: " if len(runs) > 1 else ""
            if h.truncated or h.errors or h.grader_errors:
                n_err = h.errors
                graders = f", {h.grader_errors} grader errors" if h.grader_errors else ""
                notes.append(f"note: {who}{h.benchmark}: {h.truncated} truncated, "
                             f"{n_err} error{'' if n_err == 1 else 's'}{graders} of {h.samples} samples")
            for w in h.warnings:
                notes.append(f"note: {who}{h.benchmark}: {w}")
            if h.error_examples:
                kind, n = next(iter(h.error_examples.items()))
                notes.append(f"note: {who}{h.benchmark}: most common error ({n}×): {kind}")
    if notes:
        out.append("\n".join(clean_cell(n) for n in dict.fromkeys(notes)))
    return "\n".join(out)


def _half(row: Any) -> str:
    if row.ci_low is None or row.ci_high is None:
        return "-"
    return f"{(row.ci_high - row.ci_low) / 2:.3f}"


def perf_tables(runs: list[RunFolder], labels: list[str]) -> str:
    """The sweep table of every run (lmgauge.perf.tables, as `lmgauge perf` prints it) and each
    run's best configuration."""
    from ..perf.registry import perf_metrics
    from ..perf.tables import sweep_table

    multi = len(runs) > 1
    out = [sweep_table([(label, run.summary) for label, run in zip(labels, runs)], perf_metrics())]
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
        for rec in run.summary.recommendations:
            lines.append(f"  • {rec}")
        out.append("\n".join(clean_cell(x) for x in lines))
    return "\n".join(out)


def sweep_tables(run: RunFolder) -> str:
    """A sweep folder: its table, each variant against the next and the verdict, as the sweep
    command printed them (from DIR/sweep.json), with a note on variants changed since."""
    from ..eval.sweep import stale_variants, sweep_text

    doc = run.sweep or {}
    if not doc.get("variants"):
        return f"sweep {run.path}: no sweep.json yet (the sweep has not finished a variant)"
    lines = [sweep_text(doc)]
    lines += [f"note: {clean_cell(w)}" for w in doc.get("warnings") or []]
    stale = stale_variants(run.path, doc)
    if stale:
        lines.append(f"note: {', '.join(clean_cell(s) for s in stale)} changed after sweep.json was written; run the "
                     "sweep's command again to update it")
    return "\n".join(lines)


def render_terminal(runs: list[RunFolder]) -> str:
    """All tables for these runs, eval first, then perf, then sweeps."""
    labels = run_labels(runs)
    evals = [(lab, r) for lab, r in zip(labels, runs) if r.kind == "eval"]
    perfs = [(lab, r) for lab, r in zip(labels, runs) if r.kind == "perf"]
    parts = []
    if evals:
        parts.append(eval_tables([r for _, r in evals], [lab for lab, _ in evals]))
    if perfs:
        parts.append(perf_tables([r for _, r in perfs], [lab for lab, _ in perfs]))
    parts += [sweep_tables(r) for r in runs if r.kind == "sweep"]
    return "\n\n".join(parts)


__all__ = ["render_terminal", "table"]
