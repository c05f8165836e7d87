"""Unit tests of the perf pieces: SSE parsing, metric definitions, statistics, arrivals,
flag parsing. The end-to-end tests against a real server are in test_perf.py."""
from __future__ import annotations

import random
import statistics

import orjson
import pytest

from lmgauge.errors import ConfigError
from lmgauge.perf.cli import ListFlagsCommand, perf
from lmgauge.perf.levels import plan_levels
from lmgauge.perf.config import PerfConfig
from lmgauge.perf.loadgen import Load, arrival_times, schedule
from lmgauge.perf.metrics import aggregate, chunk_tokens, meets_slo, parse_slo, request_row, stats
from lmgauge.perf.registry import computation_order, perf_metrics
from lmgauge.plugins import PluginManager
from lmgauge.runfolder import PERCENTILES

METRICS = perf_metrics(PluginManager(only=["openai"]))


def request_metrics(rec):
    """A request's row as lmgauge perf computes it, with the values by metric key."""
    row = request_row(rec, computation_order(METRICS))
    return {**row.values, "row": row}
from lmgauge.types import GenerationRequest, PerfRecord
from lmgauge_backends.openai_stream import _Parser, _StreamError


# -- SSE parsing ---------------------------------------------------------------------------
def sse_body(n: int, crlf: bool = False, reasoning: int = 0) -> bytes:
    sep = b"\r\n\r\n" if crlf else b"\n\n"
    out = [b": keep-alive comment" + sep, b"event: message" + (b"\r\n" if crlf else b"\n")]
    for i in range(n):
        key = "reasoning_content" if i < reasoning else "content"
        out.append(b"data: " + orjson.dumps({"choices": [{"index": 0, "delta": {key: f" t{i}"}}]}) + sep)
    out.append(b"data: " + orjson.dumps({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": n}}) + sep)
    out.append(b"data: [DONE]" + sep)
    return b"".join(out)


def feed_in_pieces(body: bytes, cuts: list[int]) -> tuple[PerfRecord, _Parser]:
    rec = PerfRecord()
    parser = _Parser(rec, chat=True)
    buf = b""
    last = 0
    for k, cut in enumerate(sorted(set(cuts)) + [len(body)]):
        piece = body[last:cut]
        last = cut
        if not piece:
            continue
        buf = buf + piece if buf else piece
        used = parser.feed(buf, float(k))
        buf = buf[used:]
    parser.finish(99.0)
    return rec, parser


@pytest.mark.parametrize("crlf", [False, True])
def test_parser_gives_the_same_events_however_the_bytes_are_cut(crlf):
    body = sse_body(20, crlf=crlf, reasoning=3)
    whole, p = feed_in_pieces(body, [])
    assert whole.chunk_texts == [f" t{i}" for i in range(20)]
    assert p.done and p.usage == {"prompt_tokens": 3, "completion_tokens": 20}
    rng = random.Random(5)
    for _ in range(200):
        cuts = rng.sample(range(1, len(body)), rng.randint(1, 40))
        rec, p2 = feed_in_pieces(body, cuts)
        assert rec.chunk_texts == whole.chunk_texts and p2.done and p2.usage == p.usage
        # a chunk is stamped with the read that completed it, so stamps never go backwards
        assert rec.chunk_times == sorted(rec.chunk_times)
    byte_by_byte, _ = feed_in_pieces(body, list(range(1, len(body))))
    assert byte_by_byte.chunk_texts == whole.chunk_texts


def test_parser_first_token_and_first_content():
    body = sse_body(5, reasoning=2)
    cuts = [body.index(b"t%d" % i) + 3 for i in range(5)]  # each event completes in its own read
    rec, _ = feed_in_pieces(body, cuts)
    # read k completes event k-1 (the comment/event lines come first)
    assert rec.first_token is not None and rec.first_content is not None
    assert rec.chunk_times.index(rec.first_content) == 2
    assert rec.first_token < rec.first_content


def test_parser_multiline_data_and_errors():
    rec = PerfRecord()
    p = _Parser(rec, chat=False)
    p.feed(b'data: {"choices": [{"text":\ndata:  "hi"}]}\n\ndata: [DONE]\n\n', 1.0)
    assert rec.chunk_texts == ["hi"] and p.done
    with pytest.raises(_StreamError, match="out of memory"):
        _Parser(PerfRecord(), chat=True).feed(b'data: {"error": {"message": "out of memory"}}\n\n', 1.0)
    with pytest.raises(orjson.JSONDecodeError):
        _Parser(PerfRecord(), chat=True).feed(b'data: {"choices": [\n\n', 1.0)
    with pytest.raises(_StreamError):
        _Parser(PerfRecord(), chat=True).feed(b'data: [1, 2]\n\n', 1.0)


# -- metrics -------------------------------------------------------------------------------
def test_stats_match_numpy_linear_percentiles():
    np = pytest.importorskip("numpy")
    rng = random.Random(1)
    vals = [rng.expovariate(3) for _ in range(501)]
    s = stats(vals)
    for p in PERCENTILES:
        assert s[f"p{p}"] == pytest.approx(float(np.percentile(vals, p)), rel=1e-12)
    assert s["mean"] == pytest.approx(statistics.fmean(vals))
    assert s["std"] == pytest.approx(statistics.pstdev(vals))
    assert stats([])["p50"] is None and stats([2.0])["p99"] == 2.0


def record(times, tokens=None, texts=None, sent=10.0, first_content=None, completion=None, success=True):
    rec = PerfRecord(index=0, scheduled=sent - 0.5, sent=sent, first_token=times[0], end=times[-1] + 0.001,
                     chunk_times=list(times), chunk_texts=texts or ["x"] * len(times), success=success)
    rec.first_content = first_content if first_content is not None else times[0]
    rec.completion_tokens = completion if completion is not None else len(times)
    if tokens is not None:
        rec.chunk_tokens = tokens
    return rec


def test_request_metrics_definitions():
    rec = record([10.2, 10.3, 10.4, 10.6], first_content=10.3)
    m = request_metrics(rec)
    assert m["ttft_s"] == pytest.approx(0.2) and m["ttfc_s"] == pytest.approx(0.3)
    assert m["latency_s"] == pytest.approx(0.601) and m["queue_delay_s"] == pytest.approx(0.5)
    assert m["itl_s"] == pytest.approx([0.1, 0.1, 0.2])
    assert m["tpot_s"] == pytest.approx((0.601 - 0.2) / 3)


def test_itl_is_per_token_when_a_chunk_carries_several():
    rec = record([1.0, 1.4, 1.6], tokens=[1, 4, 2], completion=7, sent=0.5)
    m = request_metrics(rec)
    assert m["itl_s"] == pytest.approx([0.1] * 4 + [0.1] * 2)
    assert m["tpot_s"] == pytest.approx((1.601 - 0.5 - 0.5) / 6)


def test_chunk_tokens_from_usage_total_and_tokenizer():
    rec = record([1, 2, 3], texts=["a", "bb bb", "c"], completion=6)
    assert chunk_tokens(rec, None) == [2, 2, 2]                       # spread evenly
    assert chunk_tokens(record([1, 2, 3], texts=["a", "bb bb", "c"], completion=4), lambda t: len(t.split())) == [1, 2, 1]
    counts = chunk_tokens(rec, lambda t: len(t))                      # 1, 5, 1 scaled to 6
    assert sum(counts) == 6 and counts[1] == max(counts)
    assert chunk_tokens(record([1, 2], completion=2), None) == [1, 1]


def test_single_chunk_response_has_no_tpot():
    rec = record([2.0], completion=50, sent=1.0)
    m = request_metrics(rec)
    assert m["ttft_s"] == pytest.approx(1.0) and m["tpot_s"] is None and m["itl_s"] == []


def test_slo_parsing_and_goodput():
    assert parse_slo("ttft=500ms, tpot=50ms,latency=2s,itl=20") == {
        "ttft_s": 0.5, "tpot_s": 0.05, "latency_s": 2.0, "itl_s": 0.02}
    for bad in ("ttft", "speed=1s", "ttft=fast", "ttft=-1ms"):
        with pytest.raises(ConfigError):
            parse_slo(bad)
    recs = [record([10.1, 10.11, 10.12]), record([10.9, 10.91, 10.92]), record([10.1], success=False)]
    good, slow, failed = (request_metrics(r)["row"] for r in recs)
    slo = parse_slo("ttft=500ms")
    assert meets_slo(good, slo) and not meets_slo(slow, slo)
    run = aggregate(recs, [good, slow, failed], METRICS, wall_s=2.0, concurrency=1, rate=None, slo=slo)
    assert run.stat("goodput") == 0.5 and run.slo_attainment == pytest.approx(1 / 3)
    assert run.requests == 3 and run.succeeded == 2 and run.failed == 1
    assert run.stat("request_throughput") == 1.0
    assert run.to_dict()["goodput"] == 0.5 and run.to_dict()["ttft_s"]["count"] == 2


# -- load generation -----------------------------------------------------------------------
def test_arrivals_are_poisson_or_gamma():
    times = arrival_times(20000, rate=50, burstiness=1.0, seed=1)
    gaps = [b - a for a, b in zip([0.0] + times, times)]
    assert statistics.fmean(gaps) == pytest.approx(1 / 50, rel=0.03)
    assert statistics.pstdev(gaps) / statistics.fmean(gaps) == pytest.approx(1.0, rel=0.05)  # exponential
    bursty = arrival_times(20000, rate=50, burstiness=0.25, seed=1)
    bgaps = [b - a for a, b in zip([0.0] + bursty, bursty)]
    assert statistics.fmean(bgaps) == pytest.approx(1 / 50, rel=0.06)
    assert statistics.pstdev(bgaps) / statistics.fmean(bgaps) == pytest.approx(2.0, rel=0.1)  # CV = 1/sqrt(shape)
    assert arrival_times(5, 10, seed=3) == arrival_times(5, 10, seed=3)


def test_worker_shards_partition_the_schedule_exactly():
    reqs = [GenerationRequest(prompt=str(i)) for i in range(50)]
    whole = list(schedule(Load(count=50, rate=20, seed=7), iter(reqs)))
    shards = [list(schedule(Load(count=50, rate=20, seed=7, shard=k, shards=3), iter(reqs))) for k in range(3)]
    merged = sorted((x for s in shards for x in s), key=lambda x: x[0])
    assert [(i, r.prompt, t) for i, r, t in merged] == [(i, r.prompt, t) for i, r, t in whole]


# -- flags ---------------------------------------------------------------------------------
def parsed(*args: str) -> dict:
    ctx = perf.make_context("perf", list(args))
    return ctx.params


def test_list_flags_take_several_values():
    p = parsed("--concurrency", "1", "10", "50", "--number", "5", "20", "100", "--model", "m")
    assert p["concurrency"] == (1, 10, 50) and p["number"] == (5, 20, 100) and p["model"] == "m"
    p = parsed("--parallel", "2", "4", "-n", "8", "--rate", "1.5", "3", "--stream")
    assert p["concurrency"] == (2, 4) and p["number"] == (8,) and p["rate"] == (1.5, 3.0)
    p = parsed("--concurrency", "3", "--tokenizer-path", "cl100k_base", "--outputs-dir", "x", "--api", "openai")
    assert p["tokenizer"] == "cl100k_base" and p["output"] == "x" and p["api"] == "openai"
    assert isinstance(perf, ListFlagsCommand)


def test_levels_pair_concurrency_with_number():
    levels = plan_levels(PerfConfig(model="m", concurrency=[1, 10], number=[10, 100]))
    assert [(lv.concurrency, lv.rate, lv.count) for lv in levels] == [(1, None, 10), (10, None, 100)]
    levels = plan_levels(PerfConfig(model="m", rate=[2.0, 4.0], number=[50], concurrency=[8]))
    assert [(lv.concurrency, lv.rate, lv.count) for lv in levels] == [(8, 2.0, 50), (8, 4.0, 50)]
    with pytest.raises(ConfigError, match="--number has 3 values"):
        plan_levels(PerfConfig(model="m", concurrency=[1, 2], number=[1, 2, 3]))
    with pytest.raises(ConfigError, match="at most one --concurrency"):
        plan_levels(PerfConfig(model="m", rate=[1.0], concurrency=[1, 2]))
