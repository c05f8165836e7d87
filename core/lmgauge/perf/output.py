"""Perf outputs: DIR/perf.sqlite (a row per request and per run, written after each run),
DIR/summary.json, the terminal tables, the best configuration and recommendations.

The tables follow the endpoint kind of the run (``api`` of the summary and of each level):
endpoints that return vectors or scores (embeddings, rerank, score) have no TTFT or TPOT, so
their tables show latency, requests/s, input tokens/s and inputs/s instead."""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson

from ..texttable import grid_table
from ..types import PerfRecord
from .metrics import PERCENTILES

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY, concurrency INTEGER, rate REAL, requests INTEGER, succeeded INTEGER,
    failed INTEGER, duration_s REAL, request_throughput REAL, output_token_throughput REAL,
    total_token_throughput REAL, summary_json TEXT);
CREATE TABLE IF NOT EXISTS requests (
    run_id INTEGER, idx INTEGER, scheduled_s REAL, sent_s REAL, ttft_s REAL, ttfc_s REAL, latency_s REAL,
    prompt_tokens INTEGER, completion_tokens INTEGER, usage_source TEXT, itl_json TEXT, success INTEGER,
    error TEXT, queue_delay_s REAL, tpot_s REAL, chunks INTEGER, session INTEGER, turn INTEGER,
    cached_tokens INTEGER, inputs INTEGER, embedding_dim INTEGER, images INTEGER, image_sizes TEXT, endpoint TEXT);
"""
REQUEST_COLUMNS = ("run_id", "idx", "scheduled_s", "sent_s", "ttft_s", "ttfc_s", "latency_s", "prompt_tokens",
                   "completion_tokens", "usage_source", "itl_json", "success", "error", "queue_delay_s", "tpot_s",
                   "chunks", "session", "turn", "cached_tokens", "inputs", "embedding_dim", "images", "image_sizes",
                   "endpoint")
#: endpoint kinds whose responses are vectors or scores, not text
NO_TEXT_APIS = ("embeddings", "rerank", "score")


class PerfStore:
    def __init__(self, path: Path):
        self.path = path
        self.db = sqlite3.connect(path)
        self.db.executescript(SCHEMA)

    def add_run(self, run_id: int, run: dict[str, Any], records: list[PerfRecord], metrics: list[dict[str, Any]],
                origin: float) -> None:
        with self.db:
            self.db.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
            self.db.execute("DELETE FROM requests WHERE run_id = ?", (run_id,))
            self.db.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                            (run_id, run["concurrency"], run["rate"], run["requests"], run["succeeded"], run["failed"],
                             run["duration_s"], run["request_throughput"], run["output_token_throughput"],
                             run["total_token_throughput"], orjson.dumps(run).decode()))
            self.db.executemany(
                f"INSERT INTO requests ({', '.join(REQUEST_COLUMNS)}) VALUES ({', '.join('?' * len(REQUEST_COLUMNS))})",
                [(run_id, r.index, r.scheduled - origin if r.scheduled else None, r.sent - origin if r.sent else None,
                  m["ttft_s"], m["ttfc_s"], m["latency_s"], m["prompt_tokens"], m["completion_tokens"], m["usage_source"],
                  orjson.dumps(m["itl_s"]).decode(), 1 if m["success"] else 0, m["error"], m["queue_delay_s"],
                  m["tpot_s"], len(r.chunk_times), r.session, r.turn, r.cached_tokens, r.inputs, r.embedding_dim,
                  len(r.images) if r.images else None, _sizes(r.images), r.endpoint)
                 for r, m in zip(records, metrics)])

    def close(self) -> None:
        self.db.close()


def _sizes(images: list[tuple[int, int]] | None) -> str | None:
    """``"224x224 640x480"``: the sizes of a request's images."""
    return " ".join(f"{w}x{h}" for w, h in images) if images else None


def level_label(run: dict[str, Any]) -> str:
    """How a level is named in tables and advice: its own label (ramp, trace replay), else its
    request rate or concurrency."""
    if run.get("label"):
        return str(run["label"])
    return f"rate {run['rate']:g} req/s" if run["rate"] is not None else f"concurrency {run['concurrency']}"


def best_and_advice(runs: list[dict[str, Any]], in_process: bool = False) -> tuple[dict[str, Any], list[str]]:
    """Best configuration and advice. ``in_process``: the model runs in the client process, so
    client CPU is model compute and says nothing about the load generator."""
    ok = [r for r in runs if r["succeeded"]]
    best: dict[str, Any] = {}
    advice: list[str] = []
    for r in runs:  # every level's failures, with the backend's own words for each kind
        if r["failed"]:
            examples = r.get("failure_examples") or {}
            kinds = ", ".join(f"{k} ×{v}" for k, v in r["failures"].items())
            said = "; ".join(f"first {k}: {examples[k]}" for k in r["failures"] if examples.get(k))
            advice.append(f"{level_label(r)}: {r['failed']} of {r['requests']} requests failed ({kinds})"
                          + (f"; {said}" if said else "") + ".")
    if not ok:
        return best, advice + ["No request succeeded: check the failures above."]
    top = max(ok, key=lambda r: r["request_throughput"])
    fast = min(ok, key=lambda r: r["latency_s"]["mean"] or float("inf"))
    best["highest_rps"] = {"run": level_label(top), "value": top["request_throughput"]}
    best["lowest_latency"] = {"run": level_label(fast), "value": fast["latency_s"]["mean"]}
    if any("goodput" in r for r in ok):
        good = max(ok, key=lambda r: r.get("goodput", 0.0))
        best["best_goodput"] = {"run": level_label(good), "value": good.get("goodput")}
    knee_advice(ok, best, advice)
    for r in ok:
        lag = (r.get("queue_delay_s") or {}).get("p90")
        if r["rate"] is not None and not r["concurrency"] and lag is not None and lag > 0.010:
            advice.append(f"{level_label(r)}: requests left {1000 * lag:.0f} ms after their scheduled time (p90): the client "
                          f"fell behind the schedule (sent {r.get('achieved_rate') or 0:.2f} req/s); use --workers to drive more load.")
        elif r["rate"] is not None and r["concurrency"] and lag is not None and lag > 0.010:
            advice.append(f"{level_label(r)}: requests waited {1000 * lag:.0f} ms (p90) for one of the {r['concurrency']} slots "
                          "(--concurrency caps requests in flight): the server cannot keep up with this rate.")
        if not in_process and (r.get("client_cpu_share") or 0) > 0.8:
            advice.append(f"{level_label(r)}: the client used {r['client_cpu_share']:.0%} of a core and may be the bottleneck; "
                          "add --workers.")
        if r.get("api") in NO_TEXT_APIS:
            if r["usage_source"].get("tokenizer"):
                advice.append(f"{level_label(r)}: the server sent no token usage; input tokens were counted with the tokenizer.")
            elif r["usage_source"].get("none"):
                advice.append(f"{level_label(r)}: the server sent no token usage and no tokenizer was given: input tokens "
                              "are unknown; pass --tokenizer.")
        elif r["usage_source"].get("tokenizer") or r["usage_source"].get("chunks"):
            src = "the tokenizer" if r["usage_source"].get("tokenizer") else "one token per chunk (no tokenizer)"
            advice.append(f"{level_label(r)}: the server sent no token usage; output tokens were counted with {src}.")
    return best, list(dict.fromkeys(advice))


KNEE = 0.95  # the knee: the smallest level reaching this share of the sweep's peak throughput


def knee_advice(ok: list[dict[str, Any]], best: dict[str, Any], advice: list[str]) -> None:
    """Name the saturation point of a sweep over concurrency (or request rate): the smallest
    level that reaches ≥ 95 % of the peak throughput. Levels above it add latency, not
    throughput, so it is the one to recommend."""
    for key in ("concurrency", "rate"):
        sweep = sorted((r for r in ok if (r["rate"] is None) == (key == "concurrency") and r.get(key)
                        and not r.get("ramp") and not r.get("trace")), key=lambda r: r[key])
        if len(sweep) < 2:
            if len(sweep) == 1 and key == "concurrency":
                advice.append("Only one concurrency level: sweep several (e.g. --concurrency 1 8 32 64) to find the knee.")
            continue
        peak = max(r["request_throughput"] for r in sweep)
        knee = next(r for r in sweep if r["request_throughput"] >= KNEE * peak)
        last, prev = sweep[-1], sweep[-2]
        if knee is last:
            gain = last["request_throughput"] / prev["request_throughput"] if prev["request_throughput"] else 0
            if gain > 1.05:
                advice.append(f"Not saturated yet: throughput still grew {gain:.2f}x from {level_label(prev)} to {level_label(last)}; "
                              f"try higher {key}.")
            continue
        best["knee"] = {"run": level_label(knee), "value": knee["request_throughput"], "peak": peak}
        higher = sweep[-1]
        lat = (knee.get("latency_s") or {}).get("mean")
        lat_hi = (higher.get("latency_s") or {}).get("mean")
        more = f" and {lat_hi / lat:.1f}x its mean latency" if lat and lat_hi else ""
        advice.append(f"Saturated at {level_label(knee)}: it reaches {knee['request_throughput'] / peak:.0%} of the peak throughput "
                      f"({peak:.2f} req/s); {level_label(higher)} adds {higher['request_throughput'] / knee['request_throughput']:.2f}x "
                      f"the throughput{more}. Serve near {level_label(knee)}.")


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _table(header: list[str], rows: list[list[str]]) -> str:
    return grid_table(header, rows, right=range(len(header)))


def percentile_table(run: dict[str, Any]) -> str:
    if run.get("api") in NO_TEXT_APIS:
        return no_text_table(run)
    header = ["Percentile", "TTFT (s)", "ITL (s)", "TPOT (s)", "Latency (s)", "Input tokens", "Output tokens",
              "Output (tok/s)", "Total (tok/s)"]
    total = run.get("total_token_rate_per_request") or {}
    rows = []
    for p in PERCENTILES:
        k = f"p{p}"
        rows.append([f"{p}%", _fmt(run["ttft_s"][k], 4), _fmt(run["itl_s"][k], 4), _fmt(run["tpot_s"][k], 4),
                     _fmt(run["latency_s"][k], 4), _fmt(run["input_tokens"][k], 0), _fmt(run["output_tokens"][k], 0),
                     _fmt(run["output_token_rate_per_request"][k], 2), _fmt(total.get(k), 2)])
    rows.append(["mean", _fmt(run["ttft_s"]["mean"], 4), _fmt(run["itl_s"]["mean"], 4), _fmt(run["tpot_s"]["mean"], 4),
                 _fmt(run["latency_s"]["mean"], 4), _fmt(run["input_tokens"]["mean"], 1), _fmt(run["output_tokens"]["mean"], 1),
                 _fmt(run["output_token_rate_per_request"]["mean"], 2), _fmt(total.get("mean"), 2)])
    head = (f"{level_label(run)}: {run['succeeded']}/{run['requests']} ok in {run['duration_s']:.2f} s | "
            f"{run['request_throughput']:.2f} req/s | {run['output_token_throughput']:.1f} output tok/s")
    if run.get("goodput") is not None:
        head += f" | goodput {run['goodput']:.2f} req/s ({run['slo_attainment']:.0%} within SLO)"
    notes = []
    if run["failed"]:
        notes.append("failures: " + ", ".join(f"{k} ×{v}" for k, v in run["failures"].items()))
    src = run.get("usage_source") or {}
    if src.get("tokenizer"):
        notes.append(f"output tokens of {src['tokenizer']} requests counted with the tokenizer "
                     f"{run.get('tokenizer') or ''} (the server sent no usage)".replace("  ", " "))
    if src.get("chunks"):
        notes.append(f"output tokens of {src['chunks']} requests counted as one per chunk (no usage, no tokenizer)")
    if run["rate"] is not None:
        q = run["queue_delay_s"]
        notes.append(f"rate: target {run['rate']:g}, scheduled {_fmt(run.get('scheduled_rate'), 2)}, sent "
                     f"{_fmt(run.get('achieved_rate'), 2)} req/s; queue delay p50 {_fmt(q['p50'], 4)} s p99 {_fmt(q['p99'], 4)} s")
    if run.get("client_cpu_share") is not None:
        notes.append(f"client CPU: {run['client_cpu_share']:.0%} of one core")
    hit = run.get("prefix_cache_hit_rate") or {}
    if hit.get("count"):
        notes.append(f"prefix-cache hit rate (server's cached_tokens / prompt tokens): mean {hit['mean']:.1%}, "
                     f"p50 {hit['p50']:.1%}, p90 {hit['p90']:.1%} over {hit['count']} requests")
    sessions = run.get("sessions")
    if sessions:
        notes.append(f"sessions: {sessions['completed']}/{sessions['sessions']} completed every turn; session latency "
                     f"mean {_fmt(sessions['session_latency_s']['mean'], 3)} s, p99 {_fmt(sessions['session_latency_s']['p99'], 3)} s")
    for line in _workload_notes(run):
        notes.append(line)
    notes += _input_notes(run)
    if run.get("interrupted"):
        notes.append(f"interrupted: {run.get('abandoned_in_flight', 0)} requests in flight were abandoned (not counted)")
    tables = [_table(header, rows)]
    if run.get("turns"):
        tables.append(turn_table(run["turns"]))
    if run.get("endpoints"):
        tables.append(endpoint_table(run["endpoints"]))
    return "\n".join([head, *notes, *tables])


def no_text_table(run: dict[str, Any]) -> str:
    """A level of an embeddings / rerank / score run: latency and input figures only."""
    header = ["Percentile", "Latency (s)", "Input tokens", "Inputs", "Input (tok/s)"]
    rate = run.get("total_token_rate_per_request") or {}  # no output tokens: input tokens / latency
    inputs = run.get("inputs") or {}
    rows = [[f"{p}%", _fmt(run["latency_s"][f"p{p}"], 4), _fmt(run["input_tokens"][f"p{p}"], 0),
             _fmt(inputs.get(f"p{p}"), 0), _fmt(rate.get(f"p{p}"), 1)] for p in PERCENTILES]
    rows.append(["mean", _fmt(run["latency_s"]["mean"], 4), _fmt(run["input_tokens"]["mean"], 1),
                 _fmt(inputs.get("mean"), 1), _fmt(rate.get("mean"), 1)])
    head = (f"{run['api']} {level_label(run)}: {run['succeeded']}/{run['requests']} ok in {run['duration_s']:.2f} s | "
            f"{run['request_throughput']:.2f} req/s | {run.get('input_token_throughput') or 0:.1f} input tok/s")
    if run.get("input_throughput") is not None:
        what = "inputs" if run["api"] == "embeddings" else "documents"
        head += f" | {run['input_throughput']:.1f} {what}/s"
    notes = []
    if run["failed"]:
        notes.append("failures: " + ", ".join(f"{k} ×{v}" for k, v in run["failures"].items()))
    src = run.get("usage_source") or {}
    if src.get("tokenizer"):
        notes.append(f"input tokens of {src['tokenizer']} requests counted with the tokenizer (the server sent no usage)")
    if run["rate"] is not None:
        q = run["queue_delay_s"]
        notes.append(f"rate: target {run['rate']:g}, sent {_fmt(run.get('achieved_rate'), 2)} req/s; queue delay "
                     f"p50 {_fmt(q['p50'], 4)} s p99 {_fmt(q['p99'], 4)} s")
    if run.get("client_cpu_share") is not None:
        notes.append(f"client CPU: {run['client_cpu_share']:.0%} of one core")
    notes += _workload_notes(run) + _input_notes(run)
    if run.get("interrupted"):
        notes.append(f"interrupted: {run.get('abandoned_in_flight', 0)} requests in flight were abandoned (not counted)")
    return "\n".join([head, *notes, _table(header, rows)])


def _input_notes(run: dict[str, Any]) -> list[str]:
    """Vector lengths returned and images sent."""
    out = []
    if run.get("embedding_dims"):
        out.append(f"vectors of {', '.join(map(str, run['embedding_dims']))} numbers")
    images = run.get("images")
    if images:
        w, h, n = images["width"], images["height"], images["per_request"]
        size = (f"{w['min']:.0f}x{h['min']:.0f}" if w["min"] == w["max"] and h["min"] == h["max"] else
                f"{w['min']:.0f}–{w['max']:.0f} x {h['min']:.0f}–{h['max']:.0f}")
        count = f"{n['min']:.0f}" if n["min"] == n["max"] else f"{n['min']:.0f}–{n['max']:.0f} (mean {n['mean']:.1f})"
        out.append(f"images: {count} per request, {size} px")
    return out


def _workload_notes(run: dict[str, Any]) -> list[str]:
    """What paced a trace-replay or ramp level, and how closely the client kept to it."""
    out = []
    ramp, trace = run.get("ramp"), run.get("trace")
    if ramp:
        out.append(f"ramp ({ramp['kind']}): {ramp['start_rps']:g} → {ramp['end_rps']:g} req/s over {ramp['span_s']:.1f} s")
    if trace:
        out.append(f"trace replay: offered {_fmt(run.get('scheduled_rate'), 2)} req/s over the trace, sent "
                   f"{_fmt(run.get('achieved_rate'), 2)} req/s")
    if ramp or trace:
        q = run["queue_delay_s"]
        out.append(f"sent − scheduled: p50 {_fmt(q['p50'], 4)} s, p99 {_fmt(q['p99'], 4)} s")
    return out


def turn_table(turns: list[dict[str, Any]]) -> str:
    """Per-turn figures of a multi-turn level: TTFT by turn shows prefix-cache reuse."""
    header = ["Turn", "Requests", "OK", "Avg input tok", "Avg TTFT(s)", "P50 TTFT(s)", "P99 TTFT(s)", "Avg Lat.(s)",
              "Cache hit % mean/p50/p90"]
    rows = []
    for t in turns:
        hit = t.get("prefix_cache_hit_rate") or {}
        rows.append([str(t["turn"]), str(t["requests"]), str(t["succeeded"]), _fmt(t["avg_input_tokens"], 1),
                     _fmt(t["ttft_s"]["mean"], 4), _fmt(t["ttft_s"]["p50"], 4), _fmt(t["ttft_s"]["p99"], 4),
                     _fmt(t["latency_s"]["mean"], 4),
                     "/".join(f"{100 * hit[k]:.1f}" for k in ("mean", "p50", "p90")) if hit.get("count") else "-"])
    return _table(header, rows)


def endpoint_table(endpoints: list[dict[str, Any]]) -> str:
    """Per-server figures of a level spread over several ``--url``."""
    header = ["Endpoint", "Requests", "OK", "RPS", "Gen. tok/s", "Avg TTFT(s)", "P99 TTFT(s)", "Avg Lat.(s)", "P99 Lat.(s)"]
    rows = [[e["endpoint"], str(e["requests"]), str(e["succeeded"]), _fmt(e["request_throughput"], 2),
             _fmt(e["output_token_throughput"], 1), _fmt(e["ttft_s"]["mean"], 4), _fmt(e["ttft_s"]["p99"], 4),
             _fmt(e["latency_s"]["mean"], 4), _fmt(e["latency_s"]["p99"], 4)] for e in endpoints]
    return _table(header, rows)


def summary_table(summary: dict[str, Any]) -> str:
    runs = summary["runs"]
    open_loop = any(r["rate"] is not None for r in runs)
    if summary.get("api") in NO_TEXT_APIS:
        header = ["Rate" if open_loop else "Conc.", "RPS", "Avg Lat.(s)", "P50 Lat.(s)", "P99 Lat.(s)",
                  "Input toks/s", "Inputs/s", "Success"]
        rows = [[_fmt(r["rate"], 2) if open_loop else str(r["concurrency"]), _fmt(r["request_throughput"], 2),
                 _fmt(r["latency_s"]["mean"]), _fmt(r["latency_s"]["p50"]), _fmt(r["latency_s"]["p99"]),
                 _fmt(r.get("input_token_throughput"), 1), _fmt(r.get("input_throughput"), 1),
                 f"{100 * r['success_rate']:.1f}%"] for r in runs]
        return _summary_text(summary, header, rows)
    header = ["Rate" if open_loop else "Conc.", "RPS", "Avg Lat.(s)", "P99 Lat.(s)", "Gen. toks/s", "Avg TTFT(s)",
              "P99 TTFT(s)", "Avg TPOT(s)", "P99 TPOT(s)", "Success"]
    rows = []
    for r in runs:
        level = r.get("label") or (_fmt(r["rate"], 2) if open_loop else str(r["concurrency"]))
        rows.append([level, _fmt(r["request_throughput"], 2),
                     _fmt(r["latency_s"]["mean"]), _fmt(r["latency_s"]["p99"]), _fmt(r["output_token_throughput"], 2),
                     _fmt(r["ttft_s"]["mean"]), _fmt(r["ttft_s"]["p99"]), _fmt(r["tpot_s"]["mean"]),
                     _fmt(r["tpot_s"]["p99"]), f"{100 * r['success_rate']:.1f}%"])
    return _summary_text(summary, header, rows)


def _summary_text(summary: dict[str, Any], header: list[str], rows: list[list[str]]) -> str:
    lines = [f"Performance summary: {summary['model']} ({summary.get('url') or summary.get('backend')})",
             _table(header, rows)]
    lines += [line for r in summary["runs"][:1] for line in _input_notes(r)]  # vector lengths, images sent
    lines.append("Best configuration:")
    names = {"highest_rps": "Highest RPS", "lowest_latency": "Lowest latency", "best_goodput": "Best goodput",
             "knee": "Knee (≥95% peak)"}
    for key, b in summary.get("best", {}).items():
        unit = "req/s" if key != "lowest_latency" else "s mean latency"
        lines.append(f"  {names.get(key, key):<16} {b['run']} ({b['value']:.3f} {unit})")
    sla = summary.get("sla_search")
    if sla:
        best = sla.get("best")
        lines.append(f"  {'SLA frontier':<16} {sla['dimension']} {best if best is not None else '-'} "
                     f"({len(sla.get('probes') or [])} probes; {sla.get('stopped')})")
    if summary.get("recommendations"):
        lines.append("Recommendations:")
        lines += [f"  • {a}" for a in summary["recommendations"]]
    return "\n".join(lines)


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    tmp.replace(path)
