"""Per-request perf metrics and their aggregation over a run.

Definitions (all from ``time.perf_counter()`` stamps taken as bytes arrive):

- TTFT: first chunk carrying content or reasoning text − send time. TTFC (time to first
  content): first chunk of visible content − send time (differs from TTFT for reasoning models).
- Latency: end of stream − send time. Queue delay: send time − scheduled time.
- ITL: gaps between successive content chunks; a chunk carrying k tokens contributes k gaps of
  (gap / k), so ITL is per token. TPOT: (latency − TTFT) / (output tokens − 1).
- Tokens per chunk: the server's usage total spread over chunks by the tokenizer's count of
  each chunk's text (1 per chunk when usage equals the number of chunks).
- Throughputs divide by the run's wall time (first scheduled request to last response end).
- Goodput: requests per second that succeeded and met every ``--slo``.
- Prefix-cache hit rate of a request: the server's ``cached_tokens`` / its prompt tokens
  (requests whose server reports cached tokens only).
- Multi-turn: the same figures per turn index (``turns``), and per session (``sessions``):
  session latency (first turn sent → last turn ended, think time included), turns completed.
- Over time (trace replay, ramps): per-second buckets of the level of requests scheduled
  (offered rate), sent (achieved rate) and finished, with their TTFT and latency.
- Endpoints without text output (embeddings, rerank, score): no TTFT/ITL/TPOT; latency, req/s,
  input tokens/s and inputs/s (texts embedded, documents scored), the vector lengths returned.
- Images (vision-language requests): images per request and their widths and heights.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Any, Callable, Iterable, Sequence

from ..types import PerfRecord

PERCENTILES = (10, 25, 50, 66, 75, 80, 90, 95, 98, 99)
SLO_KEYS = {"ttft": "ttft_s", "tpot": "tpot_s", "itl": "itl_s", "latency": "latency_s", "e2el": "latency_s",
            "ttfc": "ttfc_s"}


def stats(values: Sequence[float]) -> dict[str, float | None]:
    """mean, std, min, max and percentiles 10…99 (linear interpolation, like numpy)."""
    vals = sorted(v for v in values if v is not None and not math.isnan(v))
    n = len(vals)
    out: dict[str, float | None] = {"count": n}
    if n == 0:
        out.update({"mean": None, "std": None, "min": None, "max": None})
        out.update({f"p{p}": None for p in PERCENTILES})
        return out
    mean = sum(vals) / n
    out["mean"] = mean
    out["std"] = math.sqrt(sum((v - mean) ** 2 for v in vals) / n)
    out["min"], out["max"] = vals[0], vals[-1]
    for p in PERCENTILES:
        rank = p / 100 * (n - 1)
        lo = int(math.floor(rank))
        hi = min(lo + 1, n - 1)
        out[f"p{p}"] = vals[lo] + (vals[hi] - vals[lo]) * (rank - lo)
    return out


def chunk_tokens(rec: PerfRecord, count: Callable[[str], int] | None) -> list[int]:
    """Tokens carried by each content chunk (see module doc)."""
    c = len(rec.chunk_times)
    if rec.chunk_tokens and len(rec.chunk_tokens) == c:
        return list(rec.chunk_tokens)
    total = rec.completion_tokens or c
    if total == c:
        return [1] * c
    if count is not None and rec.chunk_texts and len(rec.chunk_texts) == c:
        counts = [max(0, count(t)) for t in rec.chunk_texts]
        s = sum(counts)
        if s == total:
            return counts
        if s > 0:  # scale to the server's total, keeping integers that add up
            scaled = [x * total / s for x in counts]
            ints = [int(x) for x in scaled]
            for i in sorted(range(c), key=lambda i: -(scaled[i] - ints[i]))[: total - sum(ints)]:
                ints[i] += 1
            return ints
    base, extra = divmod(total, c) if c else (0, 0)
    return [base + (1 if i < extra else 0) for i in range(c)]


def request_metrics(rec: PerfRecord, count: Callable[[str], int] | None = None) -> dict[str, Any]:
    m: dict[str, Any] = {"success": rec.success, "error": rec.error,
                         "queue_delay_s": max(0.0, rec.sent - rec.scheduled) if rec.scheduled else 0.0,
                         "latency_s": rec.end - rec.sent if rec.end else None,
                         "ttft_s": rec.first_token - rec.sent if rec.first_token is not None else None,
                         "ttfc_s": rec.first_content - rec.sent if rec.first_content is not None else None,
                         "prompt_tokens": rec.prompt_tokens, "completion_tokens": rec.completion_tokens,
                         "usage_source": rec.usage_source, "itl_s": [], "tpot_s": None,
                         "cached_tokens": rec.cached_tokens, "session": rec.session, "turn": rec.turn,
                         "inputs": rec.inputs, "embedding_dim": rec.embedding_dim, "images": rec.images}
    if not rec.success:
        return m
    toks = chunk_tokens(rec, count)
    itl = []
    for i in range(1, len(rec.chunk_times)):
        gap = rec.chunk_times[i] - rec.chunk_times[i - 1]
        k = toks[i] if i < len(toks) else 1
        if k <= 0:
            continue
        itl.extend([gap / k] * k)
    m["itl_s"] = itl
    out = rec.completion_tokens or 0
    # one chunk carrying everything (--no-stream, or a server that does not stream) says
    # nothing about the pace of generation: no TPOT then
    if out > 1 and m["ttft_s"] is not None and len(rec.chunk_times) > 1:
        m["tpot_s"] = (m["latency_s"] - m["ttft_s"]) / (out - 1)
    return m


def failure_reason(err: str | None) -> str:
    """The group a failure is counted under: ``HTTP 500``, ``connection error
    (ServerDisconnectedError)``, ``read timeout``, ``truncated stream``, ``no [DONE]``, ``error event: ...``."""
    err = err or "unknown"
    kind, _, detail = err.partition(":")
    detail = detail.strip()
    if kind.startswith("HTTP"):
        return kind.strip()
    if kind == "connection error":
        first = detail.split(" ", 1)[0]
        if first and first[0].isupper() and first.isidentifier():
            return f"{kind} ({first})"
        if detail.startswith("response cut off"):
            return f"{kind} (response cut off)"
        return kind
    if kind in ("error event", "client error", "bad request"):
        return err[:80]
    return kind[:80]


def failure_examples(metrics: list[dict[str, Any]]) -> dict[str, str]:
    """The first full error text of each failure group, when it says more than the group's
    name: backends put their advice there (e.g. the flag that accepts a server's habit)."""
    out: dict[str, str] = {}
    for m in metrics:
        if not m["success"]:
            reason = failure_reason(m["error"])
            if reason not in out and (m["error"] or "") != reason:
                out[reason] = (m["error"] or "")[:300]
    return out


def parse_slo(text: str | None) -> dict[str, float]:
    """``ttft=500ms,tpot=50ms,latency=2s`` → seconds per metric key."""
    from ..errors import ConfigError

    out: dict[str, float] = {}
    if not text:
        return out
    for part in text.split(","):
        key, sep, value = part.strip().partition("=")
        key = key.strip().lower()
        if not sep or key not in SLO_KEYS:
            raise ConfigError(f"--slo: cannot read {part.strip()!r}",
                              f"use KEY=VALUE with KEY in {', '.join(sorted(SLO_KEYS))}, e.g. ttft=500ms,tpot=50ms")
        v = value.strip().lower()
        try:
            if v.endswith("ms"):
                seconds = float(v[:-2]) / 1000
            elif v.endswith("s"):
                seconds = float(v[:-1])
            else:
                seconds = float(v) / 1000  # bare numbers are milliseconds, like vLLM's --goodput
        except ValueError:
            raise ConfigError(f"--slo: {value.strip()!r} is not a duration", "e.g. 500ms or 0.5s") from None
        if seconds <= 0:
            raise ConfigError(f"--slo: {key} must be positive")
        out[SLO_KEYS[key]] = seconds
    return out


def meets_slo(m: dict[str, Any], slo: dict[str, float]) -> bool:
    if not m["success"]:
        return False
    for key, limit in slo.items():
        if key == "itl_s":
            vals = m["itl_s"]
            if vals and max(vals) > limit:
                return False
            continue
        v = m.get(key)
        if v is None or v > limit:
            return False
    return True


def aggregate(records: Iterable[PerfRecord], metrics: list[dict[str, Any]], *, wall_s: float,
              concurrency: int | None, rate: float | None, slo: dict[str, float],
              cpu_s: float | None = None) -> dict[str, Any]:
    records = list(records)
    ok = [m for m in metrics if m["success"]]
    n, n_ok = len(metrics), len(ok)
    out_tokens = sum(m["completion_tokens"] or 0 for m in ok)
    in_tokens = sum(m["prompt_tokens"] or 0 for m in ok)
    wall = wall_s if wall_s > 0 else float("nan")
    sends = sorted(r.sent for r in records if r.sent)
    achieved = (len(sends) - 1) / (sends[-1] - sends[0]) if len(sends) > 1 and sends[-1] > sends[0] else None
    sched = sorted(r.scheduled for r in records if r.scheduled)
    scheduled_rate = ((len(sched) - 1) / (sched[-1] - sched[0]) if rate is not None and len(sched) > 1
                      and sched[-1] > sched[0] else None)
    sources = Counter(m["usage_source"] for m in ok)
    run = {
        "concurrency": concurrency, "rate": rate, "requests": n, "succeeded": n_ok, "failed": n - n_ok,
        "success_rate": n_ok / n if n else 0.0, "duration_s": wall_s,
        "request_throughput": n_ok / wall, "output_token_throughput": out_tokens / wall,
        "total_token_throughput": (in_tokens + out_tokens) / wall,
        "input_tokens_total": in_tokens, "output_tokens_total": out_tokens,
        "avg_input_tokens": in_tokens / n_ok if n_ok else None,
        "avg_output_tokens": out_tokens / n_ok if n_ok else None,
        "target_rate": rate, "scheduled_rate": scheduled_rate, "achieved_rate": achieved,
        "ttft_s": stats([m["ttft_s"] for m in ok]), "ttfc_s": stats([m["ttfc_s"] for m in ok]),
        "itl_s": stats([x for m in ok for x in m["itl_s"]]), "tpot_s": stats([m["tpot_s"] for m in ok]),
        "latency_s": stats([m["latency_s"] for m in ok]),
        "queue_delay_s": stats([m["queue_delay_s"] for m in metrics]),
        "input_tokens": stats([m["prompt_tokens"] for m in ok if m["prompt_tokens"] is not None]),
        "output_tokens": stats([m["completion_tokens"] for m in ok]),
        "output_token_rate_per_request": stats([(m["completion_tokens"] or 0) / m["latency_s"] for m in ok if m["latency_s"]]),
        "total_token_rate_per_request": stats([((m["prompt_tokens"] or 0) + (m["completion_tokens"] or 0)) / m["latency_s"]
                                               for m in ok if m["latency_s"]]),
        "cached_tokens": stats([m["cached_tokens"] for m in ok if m["cached_tokens"] is not None]),
        "prefix_cache_hit_rate": stats(hit_rates(ok)),
        "failures": dict(Counter(failure_reason(m["error"]) for m in metrics if not m["success"])),
        "failure_examples": failure_examples(metrics),
        "usage_source": dict(sources),
        "client_cpu_s": cpu_s, "client_cpu_share": (cpu_s / wall_s) if cpu_s is not None and wall_s > 0 else None,
    }
    run["input_token_throughput"] = in_tokens / wall
    run.update(input_figures(ok, wall))
    if slo:
        good = sum(1 for m in metrics if meets_slo(m, slo))
        run["slo"] = {k: v for k, v in slo.items()}
        run["goodput"] = good / wall
        run["slo_attainment"] = good / n if n else 0.0
    return run


def input_figures(ok: list[dict[str, Any]], wall: float) -> dict[str, Any]:
    """Figures of the successful requests that sent several inputs (embeddings: texts;
    rerank/score: documents) or images; empty for plain text requests."""
    out: dict[str, Any] = {}
    inputs = [m["inputs"] for m in ok if m.get("inputs") is not None]
    if inputs:
        out.update(inputs_total=sum(inputs), input_throughput=sum(inputs) / wall, inputs=stats(inputs))
    dims = sorted({m["embedding_dim"] for m in ok if m.get("embedding_dim") is not None})
    if dims:
        out["embedding_dims"] = dims
    sizes = [m["images"] for m in ok if m.get("images")]
    if sizes:
        out["images"] = {"requests": len(sizes), "per_request": stats([len(s) for s in sizes]),
                         "width": stats([w for s in sizes for w, _ in s]),
                         "height": stats([h for s in sizes for _, h in s])}
    return out


def hit_rates(metrics: Iterable[dict[str, Any]]) -> list[float]:
    """Prefix-cache hit rate (cached / prompt tokens) of every request the server reported
    cached tokens for."""
    return [m["cached_tokens"] / m["prompt_tokens"] for m in metrics
            if m["cached_tokens"] is not None and m["prompt_tokens"]]


def per_turn(records: list[PerfRecord], metrics: list[dict[str, Any]], *, slo: dict[str, float]) -> list[dict[str, Any]]:
    """One aggregate per turn (``turn`` = 1, 2, ...) of a multi-turn level, with the same
    fields as a level; throughputs divide by the span of that turn's requests (first sent →
    last ended)."""
    by_turn: dict[int, list[int]] = {}
    for j, rec in enumerate(records):
        if rec.turn is not None:
            by_turn.setdefault(rec.turn, []).append(j)
    out = []
    for turn in sorted(by_turn):
        recs = [records[j] for j in by_turn[turn]]
        ms = [metrics[j] for j in by_turn[turn]]
        sent = [r.sent for r in recs if r.sent]
        ends = [r.end for r in recs if r.end]
        span = max(ends) - min(sent) if sent and ends else 0.0
        agg = aggregate(recs, ms, wall_s=span, concurrency=None, rate=None, slo=slo)
        out.append({"turn": turn, **agg})
    return out


def per_endpoint(records: list[PerfRecord], metrics: list[dict[str, Any]], *, wall_s: float,
                 slo: dict[str, float]) -> list[dict[str, Any]]:
    """One aggregate per server of a level spread over several ``--url`` (``endpoint``: the
    URL), with the same fields as a level; throughputs divide by the level's wall time (every
    endpoint was loaded all along)."""
    by_endpoint: dict[str, list[int]] = {}
    for j, rec in enumerate(records):
        by_endpoint.setdefault(rec.endpoint or "?", []).append(j)
    return [{"endpoint": url, **aggregate([records[j] for j in idx], [metrics[j] for j in idx], wall_s=wall_s,
                                          concurrency=None, rate=None, slo=slo)}
            for url, idx in by_endpoint.items()]


def per_session(records: list[PerfRecord]) -> dict[str, Any] | None:
    """Per-session figures of a multi-turn level (None when it has no sessions): sessions,
    completed (every turn succeeded), turns completed per session, session latency of the
    completed ones (first turn sent → last turn ended, think time included)."""
    sessions: dict[int, list[PerfRecord]] = {}
    for rec in records:
        if rec.session is not None:
            sessions.setdefault(rec.session, []).append(rec)
    if not sessions:
        return None
    done_turns, latency, complete = [], [], 0
    for recs in sessions.values():
        ok = sum(1 for r in recs if r.success)
        done_turns.append(ok)
        planned = recs[0].turns or len(recs)
        if ok == planned:
            complete += 1
            latency.append(max(r.end for r in recs) - min(r.sent for r in recs))
    return {"sessions": len(sessions), "completed": complete, "completion_rate": complete / len(sessions),
            "turns_planned": stats([float(recs[0].turns or len(recs)) for recs in sessions.values()]),
            "turns_completed": stats([float(x) for x in done_turns]), "session_latency_s": stats(latency)}


def timeline(records: list[PerfRecord], metrics: list[dict[str, Any]], origin: float,
             bucket_s: float = 1.0) -> list[dict[str, Any]]:
    """Per-``bucket_s`` buckets from the level's start (``origin``, a perf_counter value):
    ``t`` (bucket start, s), ``offered`` and ``achieved`` (requests scheduled and sent in the
    bucket, per second), ``finished`` (per second), ``failed`` (count) and the mean TTFT and
    latency of the requests sent in the bucket."""
    if not records:
        return []
    def slot(t: float) -> int:
        return max(0, int((t - origin) // bucket_s))
    last = max(slot(max(r.scheduled, r.sent, r.end)) for r in records)
    rows = [{"t": k * bucket_s, "offered": 0.0, "achieved": 0.0, "finished": 0.0, "failed": 0,
             "_ttft": [], "_lat": []} for k in range(last + 1)]
    for rec, m in zip(records, metrics):
        if rec.scheduled:
            rows[slot(rec.scheduled)]["offered"] += 1 / bucket_s
        if rec.sent:
            row = rows[slot(rec.sent)]
            row["achieved"] += 1 / bucket_s
            if m["success"]:
                row["_ttft"].append(m["ttft_s"])
                row["_lat"].append(m["latency_s"])
        if rec.end:
            rows[slot(rec.end)]["finished"] += 1 / bucket_s
            rows[slot(rec.end)]["failed"] += 0 if m["success"] else 1
    for row in rows:
        ttft, lat = row.pop("_ttft"), row.pop("_lat")
        ttft = [x for x in ttft if x is not None]
        row["ttft_mean_s"] = sum(ttft) / len(ttft) if ttft else None
        row["latency_mean_s"] = sum(lat) / len(lat) if lat else None
    return rows
