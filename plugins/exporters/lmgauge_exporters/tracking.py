"""What the experiment-tracker exporters (swanlab, wandb, mlflow) log, computed once from a
run folder: eval score metrics (with the reasoning-length figures, ``BENCH/lengths/NAME``,
and the token-budget curve, ``BENCH/budget/B``), perf steps (one per level: the level figures of every perf
metric declared through ``register_perf_metrics``, and ``NAME/STAT`` of the per-request ones),
the per-sample table, the run's config (redacted) and its default name."""
from __future__ import annotations

import math
from typing import Any

import orjson

from lmgauge.plugin import RunFolder, perf_metrics, redact

#: statistics of per-request metrics logged per level
PCTS = ("mean", "p50", "p90", "p99")


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return None if isinstance(v, float) and math.isnan(v) else float(v)


def eval_metrics(run: RunFolder) -> dict[str, float]:
    out: dict[str, float] = {}
    for r in run.results:
        score = _num(r.score)
        if score is None:
            continue
        base = f"{r.benchmark}/{r.metric}" if r.subset == "OVERALL" else f"{r.benchmark}/{r.subset}/{r.metric}"
        out[base] = score
        for k, v in (("ci_low", r.ci_low), ("ci_high", r.ci_high)):
            if _num(v) is not None:
                out[f"{base}/{k}"] = float(v)
    for b in run.benchmarks:
        for k, v in (("truncated_rate", b.truncated_rate), ("errors", b.errors), ("truncated", b.truncated),
                     ("graded", b.graded)):
            if _num(v) is not None:
                out[f"{b.benchmark}/health/{k}"] = float(v)
        for k, v in length_metrics(b.lengths).items():
            out[f"{b.benchmark}/lengths/{k}"] = v
        for point in b.budget_curve or []:
            if isinstance(point, dict) and _num(point.get("score")) is not None and _num(point.get("max_tokens")):
                out[f"{b.benchmark}/budget/{int(point['max_tokens'])}"] = float(point["score"])
    return out


#: the numbers of a report.json lengths entry a tracker logs, by name (``completion_tokens_mean``, …)
LENGTH_METRICS = (*((f"{part}_tokens_{stat}", (f"{part}_tokens", stat)) for part in ("completion", "reasoning", "answer")
                    for stat in ("mean", "p50", "p90", "max")),
                  ("mean_tokens_correct", ("mean_tokens_correct",)), ("mean_tokens_wrong", ("mean_tokens_wrong",)),
                  ("truncation_rate", ("truncation_rate",)), ("score_finished", ("score_finished",)),
                  ("score_truncated", ("score_truncated",)), ("tokens_per_correct", ("tokens_per_correct",)),
                  ("reflections_per_1k", ("reflections_per_1k",)),
                  ("first_correct_found_rate", ("first_correct", "found_rate")),
                  ("first_correct_mean_tokens", ("first_correct", "mean_tokens")),
                  ("first_correct_mean_share_after", ("first_correct", "mean_share_after")))


def length_metrics(lengths: Any) -> dict[str, float]:
    """The loggable numbers of one lengths entry (none for runs without the analytics)."""
    out: dict[str, float] = {}
    if not isinstance(lengths, dict):
        return out
    for name, path in LENGTH_METRICS:
        v: Any = lengths
        for key in path:
            v = v.get(key) if isinstance(v, dict) else None
        if _num(v) is not None:
            out[name] = float(v)
    return out


def perf_steps(run: RunFolder) -> list[dict[str, float]]:
    """One step per level: its load, counts, every level metric (by its export name) and the
    statistics of every per-request metric the level has (plugin metrics included)."""
    metrics = perf_metrics()
    steps = []
    for lv in run.levels:
        m: dict[str, float] = {}
        for name, v in (("concurrency", lv.concurrency), ("rate", lv.rate), ("requests", lv.requests),
                        ("failed", lv.failed)):
            if _num(v) is not None:
                m[name] = float(v)
        for metric in metrics:
            if metric.kind == "level":
                v = _num(lv.stat(metric.summary_key))
                if v is not None:
                    m[metric.export_name or metric.name] = v
            else:
                dist = lv.dist(metric.summary_key)
                for p in PCTS:
                    v = _num(dist.get(p))
                    if v is not None:
                        m[f"{metric.export_name or metric.name}/{p}"] = v
        if "success_rate" not in m and lv.requests:
            m["success_rate"] = lv.success_rate
        steps.append(m)
    return steps


SAMPLE_COLUMNS = ("benchmark", "sample_id", "repeat", "subsets", "status", "gold", "extracted", "score",
                  "correct", "truncated", "finish_reason", "error", "prompt_tokens", "completion_tokens",
                  "latency_s", "question", "response", "reasoning_tokens", "answer_tokens", "token_source",
                  "reflections")


def _text(v: Any) -> str | None:
    """Strings as they are, anything else as JSON text (gold answers may be lists or numbers)."""
    if v is None or isinstance(v, str):
        return v
    return orjson.dumps(v, option=orjson.OPT_SERIALIZE_NUMPY).decode("utf-8")


def sample_rows(run: RunFolder) -> list[list[Any]]:
    """The rows of the per-sample table of an eval run (latest journal line per key), in
    :data:`SAMPLE_COLUMNS` order; error texts are redacted."""
    rows = []
    for s in run.samples():
        rows.append([
            s.benchmark, s.sample_id, s.repeat, ", ".join(s.subsets), s.status, _text(s.gold), _text(s.extracted),
            s.score, s.correct, bool(s.truncated), s.finish_reason, redact(s.error) if s.error else None,
            s.prompt_tokens, s.completion_tokens, s.latency_s, _text(s.question), _text(s.response),
            s.reasoning_tokens, s.answer_tokens, s.token_source, s.reflections])
    return rows


def run_config(run: RunFolder) -> dict[str, Any]:
    """What a tracker shows as the run's config: the redacted run config plus ``lmgauge``."""
    return redact({"lmgauge": {"kind": run.kind, "model": run.model, "backend": run.backend, "url": run.url,
                               "created": run.created, "run_folder": run.name}, **run.config})


def default_run_name(run: RunFolder) -> str:
    return f"{run.model.rsplit('/', 1)[-1]}-{run.name}"
