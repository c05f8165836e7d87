"""Paired comparison of two eval run folders (``lmgauge compare A B``, and the section of
``lmgauge report A B``).

Each question's AveragePass@1 (the mean ``score`` of its graded repeats) in run A is paired
with the same question's in run B, per benchmark, per subset and for the benchmark as a whole
(``OVERALL``); with two or more benchmarks paired, ``ALL`` pools every paired question. The
tests are in :mod:`lmgauge.eval.paired`. Samples whose request failed are left out (a question
with no graded sample in either run is dropped from the pairing), with a note. Runs holding
different questions for a benchmark are refused: a difference over different questions is not
a paired difference.
"""
from __future__ import annotations

import os
import re
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import DataError, LmgaugeError
from ..runfolder import RunFolder, load_run
from ..texttable import grid_table
from .paired import DEFAULT_RESAMPLES, PairedResult, format_p, format_points, paired_test

OVERALL = "OVERALL"
ALL = "ALL"
SHOW_IDS = 3


def _natural(s: str) -> list[Any]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]


@dataclass
class RunQuestions:
    """One run's graded questions of one benchmark."""

    seen: set[str] = field(default_factory=set)            # every question in the journal
    scores: dict[str, float] = field(default_factory=dict)  # mean score of graded repeats
    subsets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    repeats: dict[str, int] = field(default_factory=dict)   # graded repeats per question
    errors: int = 0                                        # samples left out: request failed


def read_questions(run: RunFolder) -> dict[str, RunQuestions]:
    """Per benchmark: per-question AveragePass@1 over graded (non-error) samples."""
    sums: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    out: dict[str, RunQuestions] = {}
    for rec in run.samples():
        bench, sid = rec.benchmark, rec.sample_id
        q = out.setdefault(bench, RunQuestions())
        q.seen.add(sid)
        q.subsets.setdefault(sid, tuple(rec.subsets))
        if not rec.graded:
            q.errors += 1
            continue
        sums[bench][sid].append(float(rec.score))
    for bench, per_q in sums.items():
        q = out[bench]
        for sid, vals in per_q.items():
            q.scores[sid] = sum(vals) / len(vals)
            q.repeats[sid] = len(vals)
    return out


# --------------------------------------------------------------------------------------
@dataclass
class CompareRow:
    benchmark: str
    subset: str
    result: PairedResult
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        return {"benchmark": self.benchmark, "subset": self.subset, **self.result.to_dict(), "verdict": self.verdict}


@dataclass
class RunInfo:
    path: str
    model: str

    @classmethod
    def of(cls, run: RunFolder) -> "RunInfo":
        return cls(path=str(run.path), model=run.model)


@dataclass
class CompareResult:
    """Every paired row, the benchmarks skipped, and notes on what was left out."""

    a: RunInfo
    b: RunInfo
    alpha: float
    seed: int
    resamples: int
    rows: list[CompareRow]
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def main_rows(self) -> list[CompareRow]:
        """The OVERALL row of each benchmark (and ALL)."""
        return [r for r in self.rows if r.subset == OVERALL]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "compare", "a": vars(self.a), "b": vars(self.b), "metric": "AveragePass@1",
                "alpha": self.alpha, "seed": self.seed, "resamples": self.resamples,
                "rows": [r.to_dict() for r in self.rows], "skipped": list(self.skipped), "notes": list(self.notes)}


def _question_mismatch(bench: str, qa: RunQuestions, qb: RunQuestions) -> LmgaugeError:
    only_a = sorted(qa.seen - qb.seen, key=_natural)
    only_b = sorted(qb.seen - qa.seen, key=_natural)

    def side(ids: list[str], name: str) -> str:
        if not ids:
            return f"0 only in {name}"
        more = ", ..." if len(ids) > SHOW_IDS else ""
        return f"{len(ids)} only in {name}: {', '.join(ids[:SHOW_IDS])}{more}"

    return DataError(f"cannot pair {bench}: the runs hold different questions ({len(qa.seen)} in A, {len(qb.seen)} in B; "
                     f"{side(only_a, 'A')}; {side(only_b, 'B')})",
                     "compare two runs of the same questions (same --limit, dataset and collection); "
                     "finish an interrupted run first with lmgauge eval --resume DIR")


def _row_seed(seed: int, bench: str, subset: str) -> list[int]:
    """A seed per row, independent of row order: the same row gets the same numbers."""
    return [seed, zlib.crc32(f"{bench}\0{subset}".encode())]


def _as_run(run: RunFolder | str | os.PathLike) -> RunFolder:
    folder = run if isinstance(run, RunFolder) else load_run(run)
    if folder.kind != "eval":
        raise DataError(f"{folder.path} is a {folder.kind} run; lmgauge compare needs two eval run folders")
    return folder


def compare_runs(run_a: RunFolder | str | os.PathLike, run_b: RunFolder | str | os.PathLike, *,
                 alpha: float = 0.05, seed: int = 0, resamples: int = DEFAULT_RESAMPLES) -> CompareResult:
    """Pair two eval runs question by question and test every benchmark/subset difference."""
    if not 0 < alpha < 1:
        raise DataError(f"alpha must be between 0 and 1, got {alpha}", "e.g. --alpha 0.05")
    if resamples < 100:
        raise DataError(f"resamples must be at least 100, got {resamples}", "e.g. --resamples 10000")
    ra, rb = _as_run(run_a), _as_run(run_b)
    qa_all, qb_all = read_questions(ra), read_questions(rb)
    names_a, names_b = list(qa_all), list(qb_all)
    shared = [b for b in names_a if b in qb_all]
    skipped = [f"{b} (only in A)" for b in names_a if b not in qb_all] + \
              [f"{b} (only in B)" for b in names_b if b not in qa_all]
    if not shared:
        raise DataError(f"nothing to compare: no benchmark is in both runs "
                        f"(A: {', '.join(names_a) or 'none'}; B: {', '.join(names_b) or 'none'})",
                        "pass two eval runs of the same benchmarks")
    for bench in shared:
        if qa_all[bench].seen != qb_all[bench].seen:
            raise _question_mismatch(bench, qa_all[bench], qb_all[bench])

    notes: list[str] = []
    incomplete = {name: [s for s in run.benchmarks if s.missing] for name, run in (("A", ra), ("B", rb))}
    for name, summaries in incomplete.items():
        for s in summaries:
            if s.benchmark in shared:
                notes.append(f"{s.benchmark}: {s.missing} samples of {name} not run yet (incomplete run); "
                             "compared on the samples there are")
    rows: list[CompareRow] = []
    pooled_a: list[float] = []
    pooled_b: list[float] = []
    for bench in shared:
        qa, qb = qa_all[bench], qb_all[bench]
        for name, q in (("A", qa), ("B", qb)):
            if q.errors:
                notes.append(f"{bench}: {q.errors} failed samples of {name} left out")
        ids = sorted(qa.seen, key=_natural)
        paired = [sid for sid in ids if sid in qa.scores and sid in qb.scores]
        dropped = len(ids) - len(paired)
        if dropped:
            notes.append(f"{bench}: {dropped} question{'' if dropped == 1 else 's'} without a graded sample "
                         "in one of the runs left out of the pairing")
        reps_a = sorted({qa.repeats[s] for s in paired})
        reps_b = sorted({qb.repeats[s] for s in paired})
        if reps_a != reps_b:
            notes.append(f"{bench}: repeats per question differ (A: {_span(reps_a)}, B: {_span(reps_b)}); "
                         "compared on per-question means")
        if not paired:
            skipped.append(f"{bench} (no question graded in both runs)")
            continue
        va = np.array([qa.scores[s] for s in paired])
        vb = np.array([qb.scores[s] for s in paired])
        pooled_a.extend(va)
        pooled_b.extend(vb)
        subsets = sorted({s for sid in paired for s in qa.subsets.get(sid, ())}, key=_natural)
        groups = [(OVERALL, np.ones(len(paired), dtype=bool))]
        groups += [(s, np.array([s in qa.subsets.get(sid, ()) for sid in paired])) for s in subsets if s != OVERALL]
        for subset, mask in groups:
            res = paired_test(va[mask], vb[mask], alpha, _row_seed(seed, bench, subset), resamples)
            rows.append(CompareRow(bench, subset, res, res.verdict()))
    if len({r.benchmark for r in rows}) > 1:
        res = paired_test(np.array(pooled_a), np.array(pooled_b), alpha, _row_seed(seed, ALL, OVERALL), resamples)
        rows.append(CompareRow(ALL, OVERALL, res, res.verdict()))
    if any(r.subset != OVERALL for r in rows):
        notes.append("subset rows are exploratory: with many subsets, some differ 'significantly' by chance; "
                     "judge the OVERALL rows")
    return CompareResult(a=RunInfo.of(ra), b=RunInfo.of(rb), alpha=alpha, seed=seed, resamples=resamples,
                         rows=rows, skipped=skipped, notes=notes)


def _span(values: list[int]) -> str:
    if not values:
        return "-"
    return str(values[0]) if len(values) == 1 else f"{values[0]}-{values[-1]}"


# --------------------------------------------------------------------------------------
# rendering
HEADER = ["Benchmark", "Subset", "N", "A %", "B %", "Δ (B−A)", "95% CI", "p", "Test", "Verdict"]
NUMERIC = {2, 3, 4, 5, 7}


def _short_verdict(r: PairedResult) -> str:
    if r.significant:
        return "B higher" if r.diff > 0 else "A higher"
    return "not significant"


def _cells(row: CompareRow) -> list[str]:
    r = row.result
    return [row.benchmark, row.subset, str(r.n), format_points(r.mean_a, sign=False), format_points(r.mean_b, sign=False),
            format_points(r.diff), f"[{format_points(r.ci_low)}, {format_points(r.ci_high)}]", format_p(r.p_value),
            r.test, _short_verdict(r)]


def _header_level(result: CompareResult) -> list[str]:
    head = list(HEADER)
    head[6] = f"{100 * (1 - result.alpha):g}% CI"
    return head


def compare_table(result: CompareResult) -> str:
    """The grid table: one row per benchmark/subset; scores and differences in points."""
    return grid_table(_header_level(result), [_cells(r) for r in result.rows], right=NUMERIC)


def compare_text(result: CompareResult) -> str:
    """Terminal output: which run is A and B, the table, one verdict line per benchmark, notes."""
    lines = [f"A: {result.a.path} ({result.a.model})", f"B: {result.b.path} ({result.b.model})",
             "AveragePass@1 per question, paired; A % and B % are scores, Δ and its CI are in points",
             compare_table(result)]
    lines += [f"{r.benchmark}: {r.verdict}" for r in result.main_rows()]
    lines += [f"skipped: {s}" for s in result.skipped]
    lines += [f"note: {n}" for n in result.notes]
    return "\n".join(lines)


def compare_section_html(result: CompareResult) -> str:
    """The report page's section: table and verdicts (template ``compare.html.j2``, every
    value escaped)."""
    from ..htmlreport.templating import render

    head = [(text, i in NUMERIC) for i, text in enumerate(_header_level(result))]
    rows = [{"cells": [(text, i in NUMERIC) for i, text in enumerate(_cells(row))], "overall": row.subset == OVERALL,
             "significant": row.result.significant} for row in result.rows]
    return render("compare.html.j2", result=result, head=head, rows=rows, error=None)


def compare_section_for_runs(run_a: RunFolder, run_b: RunFolder, **kwargs: Any) -> str:
    """The section for two eval runs on the report page; runs that cannot be paired give a
    short explanation instead (the page is still written)."""
    try:
        result = compare_runs(run_a, run_b, **kwargs)
    except LmgaugeError as exc:
        from ..htmlreport.templating import render

        return render("compare.html.j2", error=exc.line())
    return compare_section_html(result)
