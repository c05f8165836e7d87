"""Re-grading a finished eval run without calling the model (``lmgauge regrade DIR``).

Every graded sample of ``DIR/samples.jsonl`` is rebuilt from its journal record (benchmark,
sample id, prompt, gold, subsets, question: the dataset is never reloaded) and scored again by
the benchmark plugin installed now, in the grading worker processes; an optional judge
(eval/judge.py) then decides as in an eval, reusing every verdict cached in ``DIR/judge.jsonl``
and in earlier regrade folders. The result is a new run folder (default
``DIR/regrade-YYYYmmdd-HHMMSS/``): config.yaml (copied), samples.jsonl (new scores),
report.json (with a ``"regrade"`` section), report.html and changes.jsonl (one line per sample
whose score changed). DIR's own files are never modified. Samples whose request failed have no
response: they are copied as they are, counted as skipped.

Each sample's reasoning analytics (token counts, reflections, first-correct: lmgauge.eval.lengths)
are measured again in the same worker right after its new score, so a run made before them gets
them too. The counts use the run's ``--tokenizer``, else the model's own tokenizer when it loads
offline, else cl100k_base (approximate); a sample counted with better than approximate counts by
its run keeps them (the regrade has no served model to ask), with its first-correct position
carried over to them in proportion.
"""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ..config import EvalConfig
from ..errors import ConfigError, DataError, LmgaugeError
from ..files import atomic_write
from ..interfaces import Benchmark, Metric
from ..plugins import PluginManager
from ..runfolder import EvalReport, FolderLock, RegradeChange, SampleRecord, new_manifest, read_samples, write_samples
from ..texttable import grid_table
from .grading_pool import AnalyticsSettings, GradingPool, completion_of, sample_of
from .judge import JudgeSettings, JudgeSummary, apply_judge, judge_section, judged_record, settings_from_config
from .report import CollectionSpec, build_report


@dataclass
class RegradeResult:
    """A finished regrade: the new folder, its report.json, the changed samples and the
    per-benchmark summary (also report.json's ``"regrade"``)."""

    source: Path
    out: Path
    report: EvalReport
    changes: list[RegradeChange]
    summary: list[dict[str, Any]]
    judge: JudgeSummary | None = None
    warnings: list[str] = field(default_factory=list)


def default_output(src: Path) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = src / f"regrade-{stamp}"
    n = 2
    while out.exists():
        out = src / f"regrade-{stamp}-{n}"
        n += 1
    return out


def load_source(src: Path, pm: PluginManager) -> tuple[EvalConfig, list[SampleRecord]]:
    """The run's settings (as ``--resume`` would read them) and its journal records."""
    from .api import merge_settings

    if not src.is_dir():
        raise ConfigError(f"{src} is not a folder", "pass the folder of a finished `lmgauge eval` run")
    for name in ("config.yaml", "samples.jsonl"):
        if not (src / name).is_file():
            raise DataError(f"{src} has no {name}: it is not an eval run folder",
                            "pass the folder of an `lmgauge eval` run")
    config = merge_settings({"resume": str(src), "progress": False}, pm=pm)
    records = list(read_samples(src / "samples.jsonl"))
    if not records:
        raise DataError(f"{src}/samples.jsonl holds no samples", "nothing to re-grade: run or resume the eval first")
    return config, records


def judge_settings(config: EvalConfig, given: dict[str, Any], pm: PluginManager) -> JudgeSettings | None:
    """The regrade's judge: none without ``judge_model`` in ``given``; settings not given come
    from the run's config (its judge, else its backend and server). An unknown backend fails
    here, before anything is written."""
    if not given.get("judge_model"):
        return None
    settings = settings_from_config(dataclasses.replace(config, **{k: v for k, v in given.items() if v is not None}))
    if settings is not None:
        pm.get("backends", settings.backend)
    return settings


def run_benchmarks(config: EvalConfig, names: set[str], pm: PluginManager) -> dict[str, Benchmark]:
    """The benchmark objects by the names the journal uses: an alias ``NAME=BASE[:PATH]`` of the
    run is BASE's plugin named NAME; the current options of the run apply."""
    from .runner import make_benchmark, parse_benchmark

    bases = {n: n for n in names}
    for spec in config.benchmark:
        alias, base, _path = parse_benchmark(spec)
        bases[alias] = base
    return {n: make_benchmark(pm, bases[n], n, config.options) for n in sorted(names)}


def run_metrics(config: EvalConfig, pm: PluginManager) -> list[Metric]:
    """The run's metrics, as the eval planned them."""
    from .runner import plan_metrics

    return plan_metrics(config, pm)


_sample, _completion = sample_of, completion_of  # the names of earlier versions


def _with_analytics(rec: SampleRecord, found: Any, source: str | None) -> SampleRecord:
    """``rec`` with the analytics measured now. When they were counted approximately
    (``source``) and the record holds counts of the run's own tokenizer or the server's usage,
    those counts stay, and the first-correct position is carried over to them (the same share
    of the reasoning after it)."""
    if found is None:
        return rec
    from dataclasses import replace

    from .lengths import APPROXIMATE

    if source == APPROXIMATE and rec.token_source not in (None, APPROXIMATE) and rec.reasoning_tokens is not None:
        fc = found.first_correct
        if isinstance(fc, dict) and fc.get("share_after") is not None:
            fc = dict(fc, tokens=int(round(rec.reasoning_tokens * (1.0 - float(fc["share_after"])))))
        found = replace(found, completion_tokens=rec.completion_tokens, reasoning_tokens=rec.reasoning_tokens,
                        answer_tokens=rec.answer_tokens, token_source=rec.token_source, first_correct=fc)
    return found.apply(rec)


async def rescore(records: list[SampleRecord], benchmarks: dict[str, Benchmark],
                  workers: int | None = None, starts_thinking: bool = False,
                  analytics: AnalyticsSettings | None = None) -> list[SampleRecord]:
    """Every answered record scored again (judge verdicts dropped); failed requests unchanged.
    ``starts_thinking``: the run's ``--starts-thinking`` (grading_pool.as_graded);
    ``analytics``: measure each sample's reasoning analytics again too (see the module doc)."""
    pool = GradingPool(workers, starts_thinking, analytics)
    pool.start()
    try:
        todo = [(i, r) for i, r in enumerate(records) if r.answered]
        graded = await asyncio.gather(*(pool.assess(benchmarks[r.benchmark], sample_of(r), completion_of(r))
                                        for _, r in todo))
    finally:
        pool.close()
    out = list(records)
    source = analytics.source if analytics is not None else None
    for (i, rec), (score, found) in zip(todo, graded):
        out[i] = _with_analytics(rec.with_score(score), found, source)
    return out


def _kind(before: float, after: float) -> str:
    if before < 1.0 <= after:
        return "wrong→right"
    if after < 1.0 <= before:
        return "right→wrong"
    return "score"


def _changes(old: list[SampleRecord], new: list[SampleRecord]) -> list[RegradeChange]:
    out = []
    for a, b in zip(old, new):
        if not a.answered:
            continue
        before, after = float(a.score or 0.0), float(b.score or 0.0)
        if before == after:
            continue
        out.append(RegradeChange(a.benchmark, a.sample_id, a.repeat, _kind(before, after), before, after,
                                 a.extracted, b.extracted, a.grade_detail, b.grade_detail, b.judge_verdict))
    return out


def _old_report(src: Path) -> EvalReport | None:
    try:
        return EvalReport.from_dict(orjson.loads((src / "report.json").read_bytes()))
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def _planned(old: EvalReport | None, records: list[SampleRecord]) -> dict[str, int]:
    planned: dict[str, int] = {b.benchmark: int(b.questions) for b in old.benchmarks} if old is not None else {}
    for rec in records:
        planned.setdefault(rec.benchmark, 0)
    for b in planned:
        if not planned[b]:
            planned[b] = len({r.sample_id for r in records if r.benchmark == b})
    return planned


def _collection(src: Path) -> tuple[dict[str, Any] | None, CollectionSpec | None]:
    path = src / "collection.json"
    if not path.is_file():
        return None, None
    try:
        data = orjson.loads(path.read_bytes())
        return data, CollectionSpec(data["name"], {e["name"]: float(e["weight"]) for e in data["benchmarks"]})
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        raise DataError(f"cannot read {path}", "restore the run's collection.json") from None


def _prepare_out(src: Path, output: str | None) -> Path:
    out = Path(output) if output else default_output(src)
    if out.resolve() == src.resolve():
        raise ConfigError("--output is the run folder itself", "a regrade writes a new folder; pass another path")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--output {out} already exists and is not empty", "pass a new folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _earlier_caches(src: Path, out: Path) -> list[Path]:
    found = [src / "judge.jsonl", *sorted(src.glob("regrade-*/judge.jsonl"))]
    return [p for p in found if p.is_file() and p.parent.resolve() != out.resolve()]


async def regrade(src: str | Path, pm: PluginManager, output: str | None = None,
                  judge: dict[str, Any] | None = None, grading_workers: int | None = None,
                  options: dict[str, Any] | None = None) -> RegradeResult:
    """Re-grade the run in ``src`` into a new folder and return what changed. ``judge``: the
    ``judge_*`` settings given (with ``judge_model``, a judge runs; the others default to the
    run's judge, then the run's backend and server); ``options``: plugin option values that
    replace the run's (e.g. a benchmark's grading setting)."""
    started = time.time()
    src = Path(src)
    config, records = load_source(src, pm)
    config.options.update(options or {})
    settings = judge_settings(config, judge or {}, pm)
    benchmarks = run_benchmarks(config, {r.benchmark for r in records}, pm)
    metrics = run_metrics(config, pm)
    collection, spec = _collection(src)
    old_report = _old_report(src)
    planned = _planned(old_report, records)
    out = _prepare_out(src, output)
    with FolderLock(out, "regrade"):
        new_manifest("regrade", source=_relative(src, out)).write(out)
        return await _regrade_into(out, src, started, config, records, settings, benchmarks, metrics, collection, spec,
                                   old_report, planned, pm)


def _relative(src: Path, out: Path) -> str:
    try:
        return os.path.relpath(src.resolve(), out.resolve())
    except ValueError:
        return str(src.resolve())


async def _regrade_into(out: Path, src: Path, started: float, config: EvalConfig, records: list[SampleRecord],
                        settings: JudgeSettings | None, benchmarks: dict[str, Benchmark], metrics: list[Metric],
                        collection: dict[str, Any] | None, spec: CollectionSpec | None,
                        old_report: EvalReport | None, planned: dict[str, int], pm: PluginManager) -> RegradeResult:
    from .runner import RunTokenizer

    warnings: list[str] = []
    tokenizer = RunTokenizer()
    try:
        try:
            measure = tokenizer.settings(config)
        except ConfigError as exc:  # the run's --tokenizer is gone: counted as if none was given
            warnings.append(f"the run's tokenizer cannot be loaded ({exc.line()}); token counts fall back to the "
                            "model's own tokenizer or cl100k_base")
            tokenizer = RunTokenizer()
            measure = tokenizer.settings(dataclasses.replace(config, tokenizer=None))
        new = await rescore(records, benchmarks, config.grading_workers, config.starts_thinking, measure)
    finally:
        tokenizer.close()
    summary_judge = None
    if settings is not None:
        summary_judge = await apply_judge(out, new, benchmarks, settings, pm, extra_caches=_earlier_caches(src, out))
        new = [judged_record(r, summary_judge.verdicts.get(r.key), settings) for r in new]
        if summary_judge.warning:
            warnings.append(summary_judge.warning)

    before = build_report(records, config=config, metrics=metrics, planned=planned, spec=spec,
                          analytics=False).main_scores()
    report = build_report(
        new, config=config, metrics=metrics, planned=planned, spec=spec,
        elapsed_s=old_report.elapsed_s if old_report else None,
        request_phase_s=old_report.request_phase_s if old_report else None)
    if collection is not None:
        report.collection = collection
    if settings is not None:
        report.judge = judge_section(new, settings, summary_judge)
    after = report.main_scores()
    changes = _changes(records, new)
    per_bench = []
    for b in sorted(planned):
        mine = [r for r in records if r.benchmark == b]
        moved = [c for c in changes if c.benchmark == b]
        per_bench.append({"benchmark": b, "regraded": sum(r.answered for r in mine),
                          "skipped_errors": sum(not r.answered for r in mine),
                          "wrong_to_right": sum(c.change == "wrong→right" for c in moved),
                          "right_to_wrong": sum(c.change == "right→wrong" for c in moved),
                          "other_changes": sum(c.change == "score" for c in moved),
                          "score_before": before.get(b), "score_after": after.get(b)})
    report.regrade = {"source": str(src), "regraded": sum(p["regraded"] for p in per_bench),
                      "skipped_errors": sum(p["skipped_errors"] for p in per_bench), "changed": len(changes),
                      "elapsed_s": round(time.time() - started, 3), "benchmarks": per_bench}

    shutil.copyfile(src / "config.yaml", out / "config.yaml")
    if collection is not None:
        shutil.copyfile(src / "collection.json", out / "collection.json")
    write_samples(out / "samples.jsonl", new)
    atomic_write(out / "changes.jsonl", b"".join(orjson.dumps(c.to_dict()) + b"\n" for c in changes))
    atomic_write(out / "report.json", orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2))
    from ..htmlreport import write_html_report

    try:
        write_html_report([str(out)], str(out / "report.html"))
    except LmgaugeError as exc:
        warnings.append(f"HTML report not written: {exc.line()}")
    return RegradeResult(src, out, report, changes, per_bench, summary_judge, warnings)


def _fmt(score: float | None) -> str:
    return "-" if score is None else f"{score:.4f}"


def render_regrade(result: RegradeResult, show: int = 10) -> str:
    """The terminal summary: a table per benchmark and the first ``show`` changed samples."""
    rows = [[p["benchmark"], p["regraded"], p["skipped_errors"], p["wrong_to_right"], p["right_to_wrong"],
             p["other_changes"], _fmt(p["score_before"]), _fmt(p["score_after"])] for p in result.summary]
    header = ["Benchmark", "Re-graded", "Skipped (errors)", "Wrong→right", "Right→wrong", "Other changes",
              "Score before", "Score after"]
    lines = [grid_table(header, rows, right={1, 2, 3, 4, 5, 6, 7})]
    if result.changes:
        lines.append(f"changed samples ({min(show, len(result.changes))} of {len(result.changes)}; "
                     f"all in {result.out / 'changes.jsonl'}):")
        for c in result.changes[:show]:
            lines.append(f"  {c.benchmark} {c.sample_id} repeat {c.repeat}: {c.change} "
                         f"({c.score_before:g} → {c.score_after:g}), extracted "
                         f"{_short(c.extracted_before)} → {_short(c.extracted_after)}")
    else:
        lines.append("no sample changed its score")
    return "\n".join(lines)


def _short(value: Any, limit: int = 40) -> str:
    from ..texttable import clean_cell

    text = clean_cell(repr(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"
