"""What the experiment-tracker exporters (swanlab, wandb, mlflow) log, computed once from a
run folder: eval score metrics, perf steps (one per level), the per-sample table, the run's
config (redacted) and its default name."""
from __future__ import annotations

import math

import orjson
from typing import Any

from lmgauge.htmlreport.rundata import sample_status
from lmgauge.plugin import RunFolder, redact

PCTS = ("mean", "p50", "p90", "p99")


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return None if isinstance(v, float) and math.isnan(v) else float(v)


def eval_metrics(run) -> dict[str, float]:
    out: dict[str, float] = {}
    for r in run.results:
        score = _num(r.get("score"))
        if score is None:
            continue
        base = f"{r.get('benchmark')}/{r.get('metric')}" if r.get("subset") == "OVERALL" else \
            f"{r.get('benchmark')}/{r.get('subset')}/{r.get('metric')}"
        out[base] = score
        for k in ("ci_low", "ci_high"):
            if _num(r.get(k)) is not None:
                out[f"{base}/{k}"] = float(r[k])
    for b in run.benchmarks:
        for k in ("truncated_rate", "errors", "truncated", "graded"):
            if _num(b.get(k)) is not None:
                out[f"{b.get('benchmark')}/health/{k}"] = float(b[k])
    return out


def perf_steps(run) -> list[dict[str, float]]:
    steps = []
    for lv in run.levels:
        m: dict[str, float] = {}
        for src, dst in (("concurrency", "concurrency"), ("rate", "rate"), ("request_throughput", "rps"),
                         ("output_token_throughput", "output_tok_s"), ("total_token_throughput", "total_tok_s"),
                         ("requests", "requests"), ("failed", "failed")):
            if _num(lv.get(src)) is not None:
                m[dst] = float(lv[src])
        if _num(lv.get("requests")) and _num(lv.get("succeeded")) is not None:
            m["success_rate"] = float(lv["succeeded"]) / float(lv["requests"])
        for metric in ("ttft", "tpot", "itl", "latency"):
            stats = lv.get(f"{metric}_s") if isinstance(lv.get(f"{metric}_s"), dict) else {}
            for p in PCTS:
                if _num(stats.get(p)) is not None:
                    m[f"{metric}/{p}"] = float(stats[p])
        steps.append(m)
    return steps


SAMPLE_COLUMNS = ("benchmark", "sample_id", "repeat", "subsets", "status", "gold", "extracted", "score",
                  "correct", "truncated", "finish_reason", "error", "prompt_tokens", "completion_tokens",
                  "latency_s", "question", "response")


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
        subsets = s.get("subsets") or []
        rows.append([
            s.get("benchmark"), str(s.get("sample_id")), s.get("repeat"),
            ", ".join(map(str, subsets)) if isinstance(subsets, list) else str(subsets), sample_status(s),
            _text(s.get("gold")), _text(s.get("extracted")), s.get("score"), s.get("correct"),
            bool(s.get("truncated")), s.get("finish_reason"),
            redact(s["error"]) if isinstance(s.get("error"), str) else None,
            s.get("prompt_tokens"), s.get("completion_tokens"), s.get("latency_s"),
            _text(s.get("question")), _text(s.get("response"))])
    return rows


def run_config(run: RunFolder) -> dict[str, Any]:
    """What a tracker shows as the run's config: the redacted run config plus ``lmgauge``."""
    return redact({"lmgauge": {"kind": run.kind, "model": run.model, "backend": run.backend, "url": run.url,
                               "created": run.created, "run_folder": run.name}, **run.config})


def default_run_name(run: RunFolder) -> str:
    return f"{run.model.rsplit('/', 1)[-1]}-{run.name}"
