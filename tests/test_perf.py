"""lmgauge perf against a real streaming server on 127.0.0.1 whose timings are known."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest

from conftest import REPO, assert_one_line_error, run_cli

ENV = {"LMGAUGE_PLUGINS": "openai,random,openqa,text_files"}


@pytest.fixture
def stream_server():
    procs = []

    def start(*args: str) -> str:
        p = subprocess.Popen([sys.executable, str(REPO / "tests" / "perf_server.py"), *args],
                             stdout=subprocess.PIPE, text=True)
        procs.append(p)
        port = int(p.stdout.readline().split()[1])
        return f"http://127.0.0.1:{port}/v1/chat/completions"

    yield start
    for p in procs:
        p.kill()
        p.wait()
        p.stdout.close()


def summary(out):
    return json.loads((out / "summary.json").read_text())


def test_timings_match_the_server(stream_server, tmp_path):
    log = tmp_path / "server.jsonl"
    url = stream_server("--ttft", "0.05", "--itl", "0.01", "--tokens", "8", "--log", str(log))
    out = tmp_path / "run"
    proc = run_cli("perf", "--url", url, "--model", "perf-model", "--concurrency", "1", "4", "--number", "8", "20",
                   "--output", str(out), env=ENV, check=True)
    s = summary(out)
    assert [r["concurrency"] for r in s["runs"]] == [1, 4]
    for r in s["runs"]:
        assert r["succeeded"] == r["requests"] and r["failed"] == 0
        assert 0.050 <= r["ttft_s"]["mean"] < 0.065, r["ttft_s"]
        assert 0.050 <= r["ttft_s"]["p99"] < 0.075
        assert r["tpot_s"]["mean"] == pytest.approx(0.010, abs=0.002)
        assert r["itl_s"]["p50"] == pytest.approx(0.010, abs=0.002)
        assert r["latency_s"]["mean"] == pytest.approx(0.05 + 7 * 0.01, abs=0.015)
        assert r["output_tokens"]["min"] == r["output_tokens"]["max"] == 8
        assert r["usage_source"] == {"server": r["succeeded"]}
        for key in ("p10", "p25", "p50", "p66", "p75", "p80", "p90", "p95", "p98", "p99", "mean", "std"):
            assert key in r["latency_s"]
    assert len(log.read_text().splitlines()) == 28
    assert "Conc." in proc.stdout and "Best configuration" in proc.stdout and "Highest RPS" in proc.stdout
    db = sqlite3.connect(out / "perf.sqlite")
    assert db.execute("select count(*) from runs").fetchone()[0] == 2
    assert db.execute("select count(*), sum(success) from requests where run_id = 2").fetchone() == (20, 20)
    ttfts = [r[0] for r in db.execute("select ttft_s from requests where run_id = 2")]
    assert sum(ttfts) / 20 == pytest.approx(s["runs"][1]["ttft_s"]["mean"])


def test_no_usage_counts_with_tokenizer_and_multi_token_chunks(stream_server, tmp_path):
    url = stream_server("--itl", "0.02", "--tokens", "12", "--tokens-per-chunk", "4", "--no-usage")
    out = tmp_path / "run"
    run_cli("perf", "--url", url, "--model", "perf-model", "--number", "4", "--tokenizer", "cl100k_base",
            "--output", str(out), env=ENV, check=True)
    r = summary(out)["runs"][0]
    assert r["usage_source"] == {"tokenizer": 4}
    assert r["output_tokens"]["mean"] == 12  # " tok" x 12 is 12 cl100k tokens
    assert r["itl_s"]["p50"] == pytest.approx(0.02 / 4, abs=0.002)  # per token, not per chunk
    assert r["tpot_s"]["mean"] == pytest.approx(2 * 0.02 / 11, abs=0.002)
    assert any("no token usage" in a for a in summary(out)["recommendations"])


def test_reasoning_then_content(stream_server, tmp_path):
    url = stream_server("--itl", "0.02", "--tokens", "6", "--reasoning", "3")
    out = tmp_path / "run"
    run_cli("perf", "--url", url, "--model", "perf-model", "--number", "3", "--output", str(out), env=ENV, check=True)
    r = summary(out)["runs"][0]
    assert r["ttfc_s"]["mean"] - r["ttft_s"]["mean"] == pytest.approx(0.06, abs=0.01)


def test_faults_are_counted_and_the_run_finishes(stream_server, tmp_path):
    url = stream_server("--tokens", "6", "--itl", "0.005")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(["fine 1", "FAULT:500", "FAULT:reset", "FAULT:stall", "FAULT:malformed",
                                  "FAULT:nodone", "FAULT:empty", "fine 2"]) + "\n")
    out = tmp_path / "run"
    run_cli("perf", "--url", url, "--model", "perf-model", "--dataset", "line_by_line", "--dataset-path", str(prompts),
            "--number", "8", "--concurrency", "8", "--read-timeout", "1", "--output", str(out), env=ENV, check=True,
            timeout=60)
    r = summary(out)["runs"][0]
    assert (r["succeeded"], r["failed"]) == (2, 6)
    db = sqlite3.connect(out / "perf.sqlite")
    errors = sorted(e for (e,) in db.execute("select error from requests where success = 0"))
    joined = " | ".join(errors)
    for needle in ("HTTP 500", "connection error", "read timeout", "malformed SSE", "without [DONE]", "no content"):
        assert needle in joined, joined
    assert sum(r["failures"].values()) == 6


def test_workers_merge_every_record(stream_server, tmp_path):
    url = stream_server("--tokens", "4")
    out = tmp_path / "run"
    run_cli("perf", "--url", url, "--model", "perf-model", "--number", "60", "--concurrency", "6", "--workers", "2",
            "--output", str(out), env=ENV, check=True, timeout=120)
    r = summary(out)["runs"][0]
    assert (r["requests"], r["succeeded"]) == (60, 60)
    db = sqlite3.connect(out / "perf.sqlite")
    assert db.execute("select count(distinct idx) from requests").fetchone()[0] == 60


def test_open_loop_rate(stream_server, tmp_path):
    url = stream_server("--tokens", "2")
    out = tmp_path / "run"
    run_cli("perf", "--url", url, "--model", "perf-model", "--rate", "40", "--number", "60", "--slo", "ttft=500ms",
            "--output", str(out), env=ENV, check=True)
    r = summary(out)["runs"][0]
    assert r["rate"] == 40 and r["requests"] == 60
    assert 25 < r["achieved_rate"] < 60
    assert r["goodput"] > 0 and r["slo_attainment"] == 1.0


def test_random_prompts_have_exact_lengths():
    from lmgauge.tokenizers import load_tokenizer
    from lmgauge_datasets.random_prompts import RandomDataset

    tok = load_tokenizer("cl100k_base")
    ds = RandomDataset({"tokenizer": tok, "min_prompt_length": 20, "max_prompt_length": 90, "prefix_length": 16,
                        "max_tokens": 8, "min_tokens": 8, "seed": 3})
    reqs = list(ds.requests(30))
    lengths = [tok.count(r.prompt) for r in reqs]
    assert all(36 <= n <= 106 for n in lengths) and len(set(lengths)) > 5
    prefix = reqs[0].prompt[:40]
    assert all(r.prompt.startswith(prefix) for r in reqs)
    assert reqs[0].params.extra_body == {"min_tokens": 8, "ignore_eos": True}
    exact = RandomDataset({"tokenizer": tok, "min_prompt_length": 128, "max_prompt_length": 128, "seed": 1})
    assert {tok.count(r.prompt) for r in exact.requests(10)} == {128}


def test_bad_input_is_one_line(stream_server, tmp_path):
    url = stream_server()
    base = ["perf", "--url", url, "--model", "perf-model", "--output", str(tmp_path / "x")]
    assert_one_line_error(run_cli(*base, "--dataset", "random", "--min-prompt-length", "9", "--max-prompt-length", "3",
                                  env=ENV), "--min-prompt-length 9 is larger")
    assert_one_line_error(run_cli(*base, "--tokenizer", "no-such-tokenizer-xyz", env=ENV), "unknown tokenizer")
    assert_one_line_error(run_cli(*base, "--concurrency", "1", "2", "--number", "1", "2", "3", env=ENV), "--number has 3 values")
    assert_one_line_error(run_cli(*base, "--slo", "ttft=fast", env=ENV), "--slo")
    assert_one_line_error(run_cli("perf", "--url", "http://127.0.0.1:9/v1/chat/completions", "--model", "m",
                                  "--output", str(tmp_path / "y"), env=ENV), "cannot reach the server")
    assert_one_line_error(run_cli("perf", "--model", "m", env=ENV), "no --url")
    assert_one_line_error(run_cli(*base, "--dataset", "nope", env=ENV), "unknown perf dataset 'nope'", "random")
