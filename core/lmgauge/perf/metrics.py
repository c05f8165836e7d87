"""Per-request perf figures and their aggregation over a level, driven by the perf metric
declarations (lmgauge.perf.builtin_metrics and every plugin's: ``register_perf_metrics``).

- :func:`request_row`: a finished :class:`lmgauge.types.PerfRecord` → a
  :class:`lmgauge.runfolder.RequestRow` (the perf.sqlite row): its fixed fields, then the
  value of every per-request metric, in declaration order (a metric may read the values
  computed before it).
- :func:`aggregate`: a level's rows → a :class:`lmgauge.runfolder.PerfLevel`: a
  :class:`~lmgauge.runfolder.Distribution` of every per-request metric (over the successful
  requests, or all of them for ``over = "all"``), then every level metric (rates over the
  level's wall time: first scheduled request to last response end), counts and failures.
- Tokens per chunk: the server's usage total spread over chunks by the tokenizer's count of
  each chunk's text (1 per chunk when usage equals the number of chunks).
- Multi-turn: the same aggregate per turn index (``turns``) and per session (``sessions``).
- Over time (trace replay, ramps): per-second buckets of offered, achieved and finished
  requests with their TTFT and latency (``timeline``).
- Failures are counted by the group the backend named (``PerfRecord.failure_group``, typed
  kind in ``failure_kind``), with the first full error text of each group as its example.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from ..interfaces import PerfMetric
from ..redaction import redact_text
from ..runfolder import Distribution, PerfLevel, RequestRow
from ..types import PerfRecord

SLO_KEYS = {"ttft": "ttft_s", "tpot": "tpot_s", "itl": "itl_s", "latency": "latency_s", "e2el": "latency_s",
            "ttfc": "ttfc_s"}


def stats(values: Iterable[float | None]) -> dict[str, float | None]:
    """count, mean, std, min, max and percentiles 10…99 (linear interpolation, like numpy)."""
    return Distribution.of(values).to_dict()


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


def _legacy_group(err: str | None) -> str:
    """The group of a failure from a backend that names none (a third-party backend written
    before ``PerfRecord.fail``): its text up to the first colon."""
    return (err or "unknown").partition(":")[0].strip()[:80] or "unknown"


def request_row(rec: PerfRecord, metrics: Sequence[PerfMetric], count: Callable[[str], int] | None = None,
                origin: float = 0.0, run_id: int = 0) -> RequestRow:
    """The row of one finished request: fixed fields, then the value of each per-request metric
    of ``metrics``, in their order (lmgauge.perf.registry.computation_order: the core's own
    first, so a plugin metric may read them)."""
    error = redact_text(rec.error) if rec.error else rec.error  # a backend's careless error text stays out
    group = rec.failure_group or rec.failure_kind or (None if rec.success else _legacy_group(error))
    row = RequestRow(
        run_id=run_id, idx=rec.index, scheduled_s=rec.scheduled - origin if rec.scheduled else None,
        sent_s=rec.sent - origin if rec.sent else None, prompt_tokens=rec.prompt_tokens,
        completion_tokens=rec.completion_tokens, usage_source=rec.usage_source, success=rec.success, error=error,
        chunks=len(rec.chunk_times), session=rec.session, turn=rec.turn, cached_tokens=rec.cached_tokens,
        inputs=rec.inputs, embedding_dim=rec.embedding_dim, images=len(rec.images) if rec.images else None,
        image_sizes=" ".join(f"{w}x{h}" for w, h in rec.images) if rec.images else None, endpoint=rec.endpoint,
        failure_kind=None if rec.success else (rec.failure_kind or "unknown"), failure_group=group)
    if rec.success:
        row.chunk_tokens = chunk_tokens(rec, count)
    for m in metrics:
        if m.kind == "request":
            row.values[m.summary_key] = m.per_request(rec, row)
    return row


def failure_group(row: RequestRow) -> str:
    return row.failure_group or row.failure_kind or _legacy_group(row.error)


@dataclass
class LevelInput:
    """What a level metric's ``level()`` reads: the level's rows (``rows``, ``ok``: the
    successful ones), counts, token totals, the wall time, the ``--slo`` and the requests that
    met it (``good``), and the figures computed so far (``figures``)."""

    rows: list[RequestRow]
    ok: list[RequestRow]
    wall: float
    slo: dict[str, float]
    good: int
    input_tokens: int
    output_tokens: int
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return len(self.rows)

    @property
    def succeeded(self) -> int:
        return len(self.ok)


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


def meets_slo(row: RequestRow, slo: dict[str, float]) -> bool:
    if not row.success:
        return False
    for key, limit in slo.items():
        v = row.value(key)
        if key == "itl_s":
            if v and max(v) > limit:
                return False
            continue
        if v is None or v > limit:
            return False
    return True


def aggregate(records: Sequence[PerfRecord], rows: Sequence[RequestRow], metrics: Sequence[PerfMetric], *,
              wall_s: float, concurrency: int | None, rate: float | None, slo: dict[str, float],
              cpu_s: float | None = None) -> PerfLevel:
    """One level's figures (see the module doc)."""
    rows = list(rows)
    ok = [r for r in rows if r.success]
    n, n_ok = len(rows), len(ok)
    out_tokens = sum(r.completion_tokens or 0 for r in ok)
    in_tokens = sum(r.prompt_tokens or 0 for r in ok)
    wall = wall_s if wall_s > 0 else float("nan")
    sends = sorted(r.sent for r in records if r.sent)
    achieved = (len(sends) - 1) / (sends[-1] - sends[0]) if len(sends) > 1 and sends[-1] > sends[0] else None
    sched = sorted(r.scheduled for r in records if r.scheduled)
    scheduled_rate = ((len(sched) - 1) / (sched[-1] - sched[0]) if rate is not None and len(sched) > 1
                      and sched[-1] > sched[0] else None)
    groups = Counter(failure_group(r) for r in rows if not r.success)
    examples: dict[str, str] = {}
    for r in rows:
        if not r.success:
            g = failure_group(r)
            if g not in examples and (r.error or "") != g:
                examples[g] = (r.error or "")[:300]
    level = PerfLevel(
        concurrency=concurrency, rate=rate, requests=n, succeeded=n_ok, failed=n - n_ok, duration_s=wall_s,
        input_tokens_total=in_tokens, output_tokens_total=out_tokens,
        avg_input_tokens=in_tokens / n_ok if n_ok else None, avg_output_tokens=out_tokens / n_ok if n_ok else None,
        target_rate=rate, scheduled_rate=scheduled_rate, achieved_rate=achieved, failures=dict(groups),
        failure_examples=examples, usage_source=dict(Counter(r.usage_source for r in ok)),
        client_cpu_s=cpu_s, client_cpu_share=(cpu_s / wall_s) if cpu_s is not None and wall_s > 0 else None)
    for m in metrics:
        if m.kind != "request":
            continue
        pool = rows if m.over == "all" else ok
        values: list[Any] = []
        for r in pool:
            v = r.values.get(m.summary_key)
            if isinstance(v, list):
                values.extend(v)
            elif v is not None:
                values.append(v)
        if m.omit_empty and not values:
            continue
        level.figures[m.summary_key] = Distribution.of(values)
    inputs = [r.inputs for r in ok if r.inputs is not None]
    if inputs:
        level.inputs_total = sum(inputs)
    dims = sorted({r.embedding_dim for r in ok if r.embedding_dim is not None})
    if dims:
        level.embedding_dims = dims
    level.images = _image_figures(records)
    good = sum(1 for r in rows if meets_slo(r, slo)) if slo else 0
    if slo:
        level.slo = dict(slo)
        level.slo_attainment = good / n if n else 0.0
    ctx = LevelInput(rows, ok, wall, slo, good, in_tokens, out_tokens, level.figures)
    for m in metrics:
        if m.kind == "level":
            value = m.level(ctx)
            if value is not None:
                level.figures[m.summary_key] = value
    return level


def _image_figures(records: Sequence[PerfRecord]) -> dict[str, Any] | None:
    """Images per request and their widths and heights (vision-language requests)."""
    sizes = [r.images for r in records if r.success and r.images]
    if not sizes:
        return None
    return {"requests": len(sizes), "per_request": stats([len(s) for s in sizes]),
            "width": stats([w for s in sizes for w, _ in s]), "height": stats([h for s in sizes for _, h in s])}


def hit_rates(rows: Iterable[RequestRow]) -> list[float]:
    """Prefix-cache hit rate (cached / prompt tokens) of every request the server reported
    cached tokens for."""
    return [r.cached_tokens / r.prompt_tokens for r in rows if r.cached_tokens is not None and r.prompt_tokens]


def per_turn(records: list[PerfRecord], rows: list[RequestRow], metrics: Sequence[PerfMetric], *,
             slo: dict[str, float]) -> list[PerfLevel]:
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
        rs = [rows[j] for j in by_turn[turn]]
        sent = [r.sent for r in recs if r.sent]
        ends = [r.end for r in recs if r.end]
        span = max(ends) - min(sent) if sent and ends else 0.0
        agg = aggregate(recs, rs, metrics, wall_s=span, concurrency=None, rate=None, slo=slo)
        agg.turn = turn
        out.append(agg)
    return out


def per_endpoint(records: list[PerfRecord], rows: list[RequestRow], metrics: Sequence[PerfMetric], *, wall_s: float,
                 slo: dict[str, float]) -> list[PerfLevel]:
    """One aggregate per server of a level spread over several ``--url`` (``endpoint``: the
    URL), with the same fields as a level; throughputs divide by the level's wall time (every
    endpoint was loaded all along)."""
    by_endpoint: dict[str, list[int]] = {}
    for j, rec in enumerate(records):
        by_endpoint.setdefault(rec.endpoint or "?", []).append(j)
    out = []
    for url, idx in by_endpoint.items():
        agg = aggregate([records[j] for j in idx], [rows[j] for j in idx], metrics, wall_s=wall_s,
                        concurrency=None, rate=None, slo=slo)
        agg.endpoint = url
        out.append(agg)
    return out


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


def timeline(records: list[PerfRecord], rows: list[RequestRow], origin: float,
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
    buckets = [{"t": k * bucket_s, "offered": 0.0, "achieved": 0.0, "finished": 0.0, "failed": 0,
                "_ttft": [], "_lat": []} for k in range(last + 1)]
    for rec, row in zip(records, rows):
        if rec.scheduled:
            buckets[slot(rec.scheduled)]["offered"] += 1 / bucket_s
        if rec.sent:
            b = buckets[slot(rec.sent)]
            b["achieved"] += 1 / bucket_s
            if row.success:
                b["_ttft"].append(row.value("ttft_s"))
                b["_lat"].append(row.value("latency_s"))
        if rec.end:
            buckets[slot(rec.end)]["finished"] += 1 / bucket_s
            buckets[slot(rec.end)]["failed"] += 0 if row.success else 1
    for b in buckets:
        ttft, lat = b.pop("_ttft"), b.pop("_lat")
        ttft = [x for x in ttft if x is not None]
        lat = [x for x in lat if x is not None]
        b["ttft_mean_s"] = sum(ttft) / len(ttft) if ttft else None
        b["latency_mean_s"] = sum(lat) / len(lat) if lat else None
    return buckets
