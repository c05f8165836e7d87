"""Production-like perf workloads against a real streaming server on 127.0.0.1 whose behaviour is
known (tests/perf_server.py): multi-turn sessions (the history really sent, with the server's own
answers), trace replay (offsets kept, prefix blocks really shared), rate ramps, ShareGPT data,
per-request prefix-cache hits. Timing bounds are loose (a loaded 2-core machine); the precise
figures are measured by bench/perf_workloads.py."""
from __future__ import annotations

import csv
import itertools
import json
import sqlite3
from collections import Counter

import pytest

from conftest import assert_one_line_error, run_cli
from lmgauge.interfaces import RequestSettings
from lmgauge.options import values_for
from lmgauge.perf.loadgen import Ramp, ramp_arrivals
from lmgauge.tokenizers import load_tokenizer
from lmgauge_datasets.base import bundled
from lmgauge_datasets.multi_turn import MultiTurn
from lmgauge_datasets.sharegpt import ShareGPT, exchanges, read_conversations
from lmgauge_datasets.trace import PromptBuilder, Trace, TraceRow

ENV = {"LMGAUGE_PLUGINS": "openai,random,sharegpt,multi_turn,trace"}
TOK = load_tokenizer("cl100k_base")


@pytest.fixture
def server(stream_server):
    return stream_server


def perf(url: str, out, *args: str, check: bool = True):
    return run_cli("perf", "--url", url, "--model", "perf-model", "--output", str(out), *args, env=ENV, check=check,
                   timeout=120)


def summary(out) -> dict:
    return json.loads((out / "summary.json").read_text())


def rows(out, sql: str) -> list[tuple]:
    with sqlite3.connect(out / "perf.sqlite") as db:
        return db.execute(sql).fetchall()


def dataset(cls, options: dict, **settings):
    """A dataset as lmgauge perf builds it: the user's option values over the declared defaults."""
    return cls(values_for(cls, options), RequestSettings(**settings), TOK)


def log_lines(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


# -- multi-turn sessions -------------------------------------------------------------------
def test_each_turn_sends_the_history_with_the_servers_own_answers(server, tmp_path):
    log = tmp_path / "server.jsonl"
    url = server("--unique-answers", "--log-messages", "--prefix-cache", "--log", str(log))
    out = tmp_path / "run"
    perf(url, out, "--dataset", "multi_turn", "--turns", "3", "--min-prompt-length", "20", "--max-prompt-length", "20",
         "--max-tokens", "5", "--number", "4", "--concurrency", "2")
    sent = log_lines(log)
    assert len(sent) == 12
    answers = {json.dumps(r["messages"]): r["answer"] for r in sent}
    by_depth = Counter(len(r["messages"]) for r in sent)
    assert by_depth == {1: 4, 3: 4, 5: 4}  # turn k: k user messages and the k-1 answers between them
    for r in sent:
        msgs = r["messages"]
        assert [m["role"] for m in msgs] == ["user", "assistant"] * (len(msgs) // 2) + ["user"]
        for j in range(1, len(msgs), 2):
            # the assistant message is exactly what the server answered to the request that
            # was this conversation up to there
            assert msgs[j]["content"] == answers[json.dumps(msgs[:j])]
    # the prompt tokens of turn k are the server's count of what was really sent
    words = {json.dumps(r["messages"]): sum(len(m["content"].split()) for m in r["messages"]) for r in sent}
    got = rows(out, "select session, turn, prompt_tokens, cached_tokens from requests order by idx")
    assert [(s, t) for s, t, _, _ in got] == [(s, t) for s in range(4) for t in (1, 2, 3)]
    assert sorted(p for _, _, p, _ in got) == sorted(words.values())
    assert {p for _, t, p, _ in got if t == 1} == {20} and {p for _, t, p, _ in got if t == 3} == {20 * 3 + 5 * 2}
    run = summary(out)["runs"][0]
    assert run["sessions"]["sessions"] == run["sessions"]["completed"] == 4
    assert run["sessions"]["turns_completed"]["mean"] == 3
    turns = run["turns"]
    assert [t["turn"] for t in turns] == [1, 2, 3] and [t["requests"] for t in turns] == [4, 4, 4]
    for key in ("ttft_s", "latency_s", "tpot_s", "itl_s", "input_tokens", "request_throughput", "prefix_cache_hit_rate"):
        assert key in turns[0] and key in run
    assert [t["avg_input_tokens"] for t in turns] == [20, 45, 70]
    # prefix-cache hits: nothing on a first turn, the earlier turns' blocks after that
    # (the server caches 16-word blocks of each prompt and its answer: after turn 1, 25 words =
    # 1 block; after turn 2, 50 words = 3 blocks)
    assert [{c for _, t, _, c in got if t == k} for k in (1, 2, 3)] == [{0}, {16}, {48}]
    hit = [t["prefix_cache_hit_rate"] for t in turns]
    assert [h["mean"] for h in hit] == pytest.approx([0, 16 / 45, 48 / 70])
    assert [h["p90"] for h in hit] == pytest.approx([0, 16 / 45, 48 / 70])
    assert run["prefix_cache_hit_rate"]["count"] == 12


def test_prompt_tokens_of_a_turn_are_counted_from_the_history_sent(server, tmp_path):
    """A server without usage: the tokenizer counts the turn's whole history as sent."""
    log = tmp_path / "server.jsonl"
    url = server("--no-usage", "--log-messages", "--log", str(log))
    out = tmp_path / "run"
    perf(url, out, "--dataset", "multi_turn", "--turns", "2", "--min-prompt-length", "15", "--max-prompt-length", "15",
         "--max-tokens", "4", "--number", "2", "--tokenizer", "cl100k_base")
    sent = sorted(log_lines(log), key=lambda r: len(r["messages"]))
    counted = sorted(p for (p,) in rows(out, "select prompt_tokens from requests"))
    assert counted == [TOK.count("\n".join(m["content"] for m in r["messages"])) for r in sent]
    assert counted[-1] > counted[0]


def test_sessions_are_sharded_exactly_over_workers(server, tmp_path):
    sent, layout = {}, {}
    for workers in (1, 2):
        log = tmp_path / f"server{workers}.jsonl"
        url = server("--log-messages", "--log", str(log))
        out = tmp_path / f"run{workers}"
        perf(url, out, "--dataset", "multi_turn", "--min-turns", "1", "--max-turns", "3", "--min-prompt-length", "5",
             "--max-prompt-length", "9", "--max-tokens", "3", "--number", "7", "--concurrency", "4",
             "--workers", str(workers))
        sent[workers] = sorted(json.dumps(r["messages"]) for r in log_lines(log))
        layout[workers] = rows(out, "select idx, session, turn from requests order by idx")
        assert summary(out)["runs"][0]["sessions"]["completed"] == 7
    assert sent[1] == sent[2]
    assert layout[1] == layout[2]
    assert [i for i, _, _ in layout[1]] == list(range(len(layout[1])))
    assert len({t for _, _, t in layout[1]}) > 1  # sessions of different lengths


def test_multi_turn_sessions_from_a_sharegpt_file():
    path = bundled("sharegpt_sample.json")
    ds = dataset(MultiTurn, {"min_turns": 3, "think_time": 0.5}, dataset_path=path)
    sessions = list(ds.requests(4))
    convs = read_conversations(path)
    long_ones = {json.dumps([u for u, _ in exchanges(c)[1]]): exchanges(c)[1] for c in convs
                 if sum(1 for _, r in exchanges(c)[1] if r is not None) >= 3}
    assert len(sessions) == 4
    for s in sessions:
        users = [t.messages[-1]["content"] for t in s.turns]
        pairs = long_ones[json.dumps(users)]
        assert s.think_time == 0.5
        assert [t.params.max_tokens for t in s.turns] == [TOK.count(r) for _, r in pairs]  # own reply lengths


# -- ShareGPT ------------------------------------------------------------------------------
def test_sharegpt_own_output_length_and_filters(tmp_path):
    path = tmp_path / "conv.jsonl"
    convs = [
        {"conversations": [{"from": "human", "value": "one two three four five"}, {"from": "gpt", "value": " ok" * 30}]},
        {"conversations": [{"from": "human", "value": "short"}, {"from": "gpt", "value": " ok" * 3}]},  # reply < 4
        {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "word " * 50},
                      {"role": "assistant", "content": " fine" * 12}]},
    ]
    path.write_text("".join(json.dumps(c) + "\n" for c in convs))
    reqs = list(dataset(ShareGPT, {}, dataset_path=str(path)).requests(4))
    assert sorted(r.params.max_tokens for r in reqs) == [12, 12, 30, 30]  # the short reply is filtered out
    system = next(r for r in reqs if r.params.max_tokens == 12)
    assert system.messages[0] == {"role": "system", "content": "be brief"}
    only_short = dataset(ShareGPT, {"max_prompt_length": 10}, dataset_path=str(path))
    assert {r.params.max_tokens for r in only_short.requests(3)} == {30}
    fixed = dataset(ShareGPT, {"sharegpt_output_len": "7"}, dataset_path=str(path))
    assert {r.params.max_tokens for r in fixed.requests(2)} == {7}
    by_flag = dataset(ShareGPT, {}, dataset_path=str(path), max_tokens=9, min_tokens=20)
    assert {(r.params.max_tokens, r.params.extra_body["min_tokens"]) for r in by_flag.requests(2)} == {(9, 9)}


def test_sharegpt_bundled_sample_against_the_server(server, tmp_path):
    log = tmp_path / "server.jsonl"
    url = server("--log-messages", "--log", str(log))
    out = tmp_path / "run"
    perf(url, out, "--dataset", "sharegpt", "--number", "6", "--concurrency", "3")
    replies = {exchanges(c)[1][0][0]: TOK.count(exchanges(c)[1][0][1]) for c in read_conversations(bundled("sharegpt_sample.json"))}
    sent = log_lines(log)
    assert len(sent) == 6 and len({r["messages"][-1]["content"] for r in sent}) == 6
    for r in sent:  # each conversation's first user message, with its own reply's length as max_tokens
        assert r["body"]["max_tokens"] == replies[r["messages"][-1]["content"]]
    assert summary(out)["runs"][0]["succeeded"] == 6


# -- trace replay --------------------------------------------------------------------------
def write_trace(path, entries):
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))


def test_trace_hash_ids_share_prefix_blocks_and_the_server_sees_the_hits(server, tmp_path):
    trace = tmp_path / "trace.jsonl"
    write_trace(trace, [
        {"timestamp": 0, "input_length": 80, "output_length": 3, "hash_ids": [0, 1, 7]},
        {"timestamp": 400, "input_length": 90, "output_length": 3, "hash_ids": [0, 1, 8]},
        {"timestamp": 800, "input_length": 40, "output_length": 3, "hash_ids": [0, 9]},
        {"timestamp": 1200, "input_length": 50, "output_length": 3},
    ])
    log = tmp_path / "server.jsonl"
    url = server("--prefix-cache", "--log-messages", "--log", str(log))
    out = tmp_path / "run"
    perf(url, out, "--dataset", "trace", "--dataset-path", str(trace), "--trace-block-size", "32", "--trace-speedup", "2")
    sent = [r["messages"][0]["content"] for r in sorted(log_lines(log), key=lambda r: r["start"])]
    ids = [TOK.encode(t) for t in sent]
    assert [len(x) for x in ids] == [80, 90, 40, 50]  # exactly the recorded input lengths
    assert ids[0][:64] == ids[1][:64] and ids[0][64] != ids[1][64]  # hash ids 0, 1: two shared blocks
    assert ids[2][:32] == ids[0][:32] and ids[2][32] != ids[0][32]  # hash id 0 only
    assert ids[3][:8] != ids[0][:8]  # no hash ids: nothing shared
    cached = [c for (c,) in rows(out, "select cached_tokens from requests order by idx")]
    assert cached == [0, 64, 32, 0]  # the server's cache (16-word blocks) saw exactly the shared blocks
    run = summary(out)["runs"][0]
    assert run["label"] == "trace replay" and run["requests"] == 4
    assert run["prefix_cache_hit_rate"]["count"] == 4


def test_prompt_builder_same_hash_same_tokens():
    b = PromptBuilder(TOK, 16, seed=3)
    a = TOK.encode(b.text(TraceRow(0, 40, 1, [5, 6, 7]), 0))
    c = TOK.encode(b.text(TraceRow(0, 37, 1, [5, 6, 9]), 1))
    assert len(a) == 40 and len(c) == 37 and a[:32] == c[:32] and a[32:37] != c[32:37]
    other_seed = TOK.encode(PromptBuilder(TOK, 16, seed=4).text(TraceRow(0, 40, 1, [5, 6, 7]), 0))
    assert other_seed[:16] != a[:16]


def test_trace_offsets_are_kept(server, tmp_path):
    trace = tmp_path / "trace.jsonl"
    offsets_ms = [0, 0, 30, 75, 75, 140, 200, 260, 330, 400, 480, 500, 610, 700, 720, 800, 905, 1000, 1100, 1190]
    write_trace(trace, [{"timestamp": t, "input_length": 12, "output_length": 2} for t in reversed(offsets_ms)])
    url = server("--itl", "0.002")
    out = tmp_path / "run"
    perf(url, out, "--dataset", "trace", "--dataset-path", str(trace), "--trace-speedup", "2")
    got = rows(out, "select scheduled_s, sent_s from requests order by idx")
    assert [s for s, _ in got] == pytest.approx([t / 1000 / 2 for t in offsets_ms], abs=1e-9)  # sorted by time
    lag = sorted(sent - sched for sched, sent in got)
    assert lag[0] >= 0 and lag[len(lag) // 2] < 0.05 and lag[-1] < 0.5  # loose: the bench measures it
    run = summary(out)["runs"][0]
    assert run["scheduled_rate"] == pytest.approx(19 / 0.595, rel=1e-6)
    assert sum(b["offered"] for b in run["timeline"]) == 20 and sum(b["achieved"] for b in run["timeline"]) == 20


def test_trace_over_two_workers_keeps_every_offset(server, tmp_path):
    trace = tmp_path / "trace.jsonl"
    offsets_ms = [0, 10, 10, 60, 90, 150, 155, 230, 300, 301, 420, 480]
    write_trace(trace, [{"timestamp": t, "input_length": 8 + i, "output_length": 2} for i, t in enumerate(offsets_ms)])
    log = tmp_path / "server.jsonl"
    url = server("--log-messages", "--log", str(log))
    out = tmp_path / "run"
    perf(url, out, "--dataset", "trace", "--dataset-path", str(trace), "--workers", "2")
    got = rows(out, "select idx, scheduled_s from requests order by idx")
    assert [i for i, _ in got] == list(range(12))
    assert [s for _, s in got] == pytest.approx([t / 1000 for t in offsets_ms], abs=1e-9)
    lengths = sorted(TOK.count(r["messages"][0]["content"]) for r in log_lines(log))
    assert lengths == [8 + i for i in range(12)]  # each recorded request sent once, by one of the workers


def test_burstgpt_csv_rows_by_model():
    path = bundled("burstgpt_sample.csv")
    with open(path, newline="") as f:
        want = [r for r in csv.DictReader(f) if r["Model"] == "GPT-4" and int(r["Response tokens"]) > 0]
    ds = dataset(Trace, {"trace_model": "GPT-4", "trace_speedup": 4.0}, dataset_path=path)
    reqs = list(ds.requests(1000))
    t0 = float(want[0]["Timestamp"])
    assert [r.params.max_tokens for r in reqs] == [int(r["Response tokens"]) for r in want]
    assert [r.at for r in reqs] == pytest.approx([(float(r["Timestamp"]) - t0) / 4 for r in want])
    assert [TOK.count(r.prompt) for r in reqs] == [int(r["Request tokens"]) for r in want]


# -- ramps ---------------------------------------------------------------------------------
def test_ramp_inverse_and_span():
    for kind in ("linear", "exponential"):
        for a, b in ((2.0, 30.0), (30.0, 2.0)):
            r = Ramp.for_count(kind, a, b, 120)
            assert r.expected(r.span) == pytest.approx(120)
            for u in (1.0, 10.0, 60.0, 119.0, 150.0):
                assert r.expected(r.time_of(u)) == pytest.approx(u)
            assert r.rate_at(0) == a and r.rate_at(r.span) == b


@pytest.mark.parametrize("kind", ["linear", "exponential"])
def test_ramp_rates_as_asked(server, tmp_path, kind):
    url = server()
    out = tmp_path / "run"
    perf(url, out, "--dataset", "random", "--min-prompt-length", "4", "--max-prompt-length", "4", "--max-tokens", "2",
         "--ramp-up", kind, "--ramp-up-start-rps", "4", "--ramp-up-end-rps", "36", "--duration", "3", "--burstiness", "200")
    run = summary(out)["runs"][0]
    ramp = Ramp(kind, 4.0, 36.0, 3.0)
    assert run["ramp"] == {"kind": kind, "start_rps": 4.0, "end_rps": 36.0, "span_s": 3.0}
    buckets = {int(b["t"]): b for b in run["timeline"]}
    for sec in range(3):
        want = ramp.expected(sec + 1) - ramp.expected(sec)
        # scheduled: the ramp itself (near-regular arrivals); sent: what a loaded client managed
        assert buckets[sec]["offered"] == pytest.approx(want, abs=2), (sec, buckets[sec])
        assert buckets[sec]["achieved"] == pytest.approx(want, rel=0.3, abs=3), (sec, buckets[sec])
    assert buckets[2]["offered"] > 2 * buckets[0]["offered"]
    assert run["succeeded"] == run["requests"] == pytest.approx(ramp.expected(3), abs=2)


def test_ramp_arrivals_follow_the_ramp_on_average():
    r = Ramp("linear", 10.0, 50.0, 10.0)
    ts = list(itertools.takewhile(lambda t: t < 10.0, ramp_arrivals(r, 1.0, seed=1)))
    first, last = sum(1 for t in ts if t < 1), sum(1 for t in ts if 9 <= t < 10)
    assert first == pytest.approx(12, abs=12) and last == pytest.approx(48, abs=20)
    assert len(ts) == pytest.approx(r.expected(10), rel=0.15)


# -- bad input: one line -------------------------------------------------------------------
def test_bad_workload_input_is_one_line(server, tmp_path):
    url = server()
    broken = tmp_path / "broken.json"
    broken.write_text('[{"conversations": [{"from": "human", "value": "hi"}')
    assert_one_line_error(perf(url, tmp_path / "a", "--dataset", "sharegpt", "--dataset-path", str(broken), check=False),
                          "broken.json", "not valid JSON")
    trace = tmp_path / "t.jsonl"
    trace.write_text('{"timestamp": 0, "input_length": 10}\n')
    assert_one_line_error(perf(url, tmp_path / "b", "--dataset", "trace", "--dataset-path", str(trace), check=False),
                          "line 1", "output_length")
    assert_one_line_error(perf(url, tmp_path / "c", "--dataset", "multi_turn", check=False), "--turns")
    assert_one_line_error(perf(url, tmp_path / "d", "--dataset", "random", "--ramp-up", "linear", "--ramp-up-start-rps", "2",
                               check=False),
                          "--ramp-up-end-rps")
    assert_one_line_error(perf(url, tmp_path / "e", "--dataset", "trace", "--rate", "3", check=False), "--rate", "trace")
