"""lmgauge perf against a real streaming server on 127.0.0.1 whose timings are known
(tests/perf_server.py, its own process)."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time

import pytest

from conftest import LMGAUGE, assert_one_line_error, child_pids, pid_alive, run_cli

ENV = {"LMGAUGE_PLUGINS": "openai,random,openqa,text_files"}


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
                                  "FAULT:cut", "FAULT:empty", "FAULT:nodone", "fine 2"]) + "\n")
    out = tmp_path / "run"
    proc = run_cli("perf", "--url", url, "--model", "perf-model", "--dataset", "line_by_line", "--dataset-path",
                   str(prompts), "--number", "9", "--concurrency", "9", "--read-timeout", "1", "--output", str(out),
                   env=ENV, timeout=60)
    assert proc.returncode == 4 and "only 2 of 9 requests succeeded" in proc.stderr, proc.stderr  # measured, but too little
    s = summary(out)
    r = s["runs"][0]
    assert (r["succeeded"], r["failed"]) == (2, 7)
    db = sqlite3.connect(out / "perf.sqlite")
    errors = sorted(e for (e,) in db.execute("select error from requests where success = 0"))
    joined = " | ".join(errors)
    for needle in ("HTTP 500", "connection error", "read timeout", "malformed SSE", "before a finish_reason", "no content",
                   "without data: [DONE]"):
        assert needle in joined, joined
    assert sum(r["failures"].values()) == 7
    assert r["failures"]["truncated stream"] == 1 and r["failures"]["no [DONE]"] == 1
    assert any("--no-require-done" in a for a in s["recommendations"])
    assert r["failures"]["HTTP 500"] == 1 and r["failures"]["read timeout"] == 1
    assert 1.0 <= r["duration_s"] < 5  # the stalled request ended at --read-timeout


def test_more_faults_and_json_answers(stream_server, tmp_path):
    url = stream_server("--tokens", "6")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("FAULT:errchunk\nFAULT:json\nplain\nFAULT:nodone\n")  # --no-require-done below
    out = tmp_path / "run"
    run_cli("perf", "--url", url, "--model", "perf-model", "--dataset", "line_by_line", "--dataset-path", str(prompts),
            "--number", "4", "--concurrency", "4", "--no-require-done", "--output", str(out), env=ENV, check=True)
    r = summary(out)["runs"][0]
    # a JSON body for a stream request still counts; with --no-require-done so does a stream
    # that ends after its finish_reason without [DONE] (transformers serve)
    assert (r["succeeded"], r["failed"]) == (3, 1)
    assert list(r["failures"]) == ["error event: out of memory"]
    assert r["output_tokens"]["min"] == r["output_tokens"]["max"] == 6


def test_workers_merge_every_record_exactly(stream_server, tmp_path):
    """--workers 2 sends the same requests on the same schedule as one process."""
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"question number {i}\n" for i in range(60)))
    schedules, sent = {}, {}
    for workers in (1, 2):
        log = tmp_path / f"server{workers}.jsonl"
        url = stream_server("--tokens", "4", "--itl", "0.001", "--log", str(log))
        out = tmp_path / f"run{workers}"
        run_cli("perf", "--url", url, "--model", "perf-model", "--dataset", "line_by_line", "--dataset-path", str(prompts),
                "--number", "60", "--rate", "150", "--concurrency", "8", "--workers", str(workers), "--output", str(out),
                env=ENV, check=True, timeout=120)
        r = summary(out)["runs"][0]
        assert (r["requests"], r["succeeded"], r["workers"]) == (60, 60, workers)
        db = sqlite3.connect(out / "perf.sqlite")
        rows = db.execute("select idx, scheduled_s, completion_tokens from requests order by idx").fetchall()
        assert [row[0] for row in rows] == list(range(60)) and {row[2] for row in rows} == {4}
        schedules[workers] = [row[1] for row in rows]
        sent[workers] = sorted(json.loads(line)["prompt"] for line in log.read_text().splitlines())
    assert sent[1] == sent[2] == sorted(json.dumps([{"role": "user", "content": f"question number {i}"}]) for i in range(60))
    assert schedules[1] == pytest.approx(schedules[2], abs=1e-6)


def token_counts(url: str, out, *extra: str) -> tuple[set, dict]:
    """(completion_tokens and usage_source of every request, the level's usage_source counts)
    of a perf run with a tokenizer against ``url``."""
    run_cli("perf", "--url", url, "--model", "perf-model", "--prompt", "count me", "--number", "12",
            "--concurrency", "4", "--tokenizer", "cl100k_base", *extra, "--output", str(out), env=ENV, check=True,
            timeout=180)
    rows = sqlite3.connect(out / "perf.sqlite").execute("select completion_tokens, usage_source from requests").fetchall()
    return set(rows), summary(out)["runs"][0]["usage_source"]


def test_shards_count_tokens_as_one_process_does(stream_server, tmp_path):
    """A server without usage that streams 4 tokens a chunk: the tokenizer counts 32 per request
    in one process and in every worker process alike (not 8, one per chunk)."""
    url = stream_server("--no-usage", "--tokens", "32", "--tokens-per-chunk", "4")
    one = token_counts(url, tmp_path / "one", "--workers", "1")
    two = token_counts(url, tmp_path / "two", "--workers", "2")
    assert one == two == ({(32, "tokenizer")}, {"tokenizer": 12})


def test_ctrl_c_writes_what_was_measured(stream_server, tmp_path):
    url = stream_server("--tokens", "20", "--itl", "0.02")
    for workers in ("1", "2"):
        out = tmp_path / f"run{workers}"
        proc = subprocess.Popen([*LMGAUGE, "perf", "--url", url, "--model", "perf-model", "--concurrency", "4", "8",
                                 "--number", "1000", "--workers", workers, "--output", str(out)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, **ENV})
        deadline = time.monotonic() + 60
        db = out / "perf.sqlite"
        while not (out / "config.yaml").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(2.5 if workers == "2" else 1.0)  # some requests finish (workers start in ~1.5 s)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 130, stderr
        assert "Traceback" not in stderr and "interrupted" in stderr
        s = summary(out)
        assert len(s["runs"]) == 1 and s["runs"][0]["interrupted"] is True
        r = s["runs"][0]
        assert 0 < r["succeeded"] == r["requests"] < 1000 and r["failed"] == 0
        assert r["abandoned_in_flight"] == 4
        assert sqlite3.connect(db).execute("select count(*) from requests").fetchone()[0] == r["requests"]


def test_workers_leave_when_the_run_is_killed(stream_server, tmp_path):
    url = stream_server("--tokens", "20", "--itl", "0.02")
    out = tmp_path / "run"
    proc = subprocess.Popen([*LMGAUGE, "perf", "--url", url, "--model", "perf-model", "--concurrency", "4",
                             "--duration", "120", "--workers", "2", "--output", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **ENV})
    deadline = time.monotonic() + 60
    while len(child_pids(proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(2.0)  # the workers are loading the server
    workers = child_pids(proc.pid)
    assert len(workers) >= 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(pid_alive(p) for p in workers):
        time.sleep(0.1)
    assert not [p for p in workers if pid_alive(p)], "perf workers outlived the killed run"


def test_open_loop_rate(stream_server, tmp_path):
    url = stream_server("--tokens", "2")
    out = tmp_path / "run"
    run_cli("perf", "--url", url, "--model", "perf-model", "--rate", "40", "--number", "60", "--slo", "ttft=500ms",
            "--output", str(out), env=ENV, check=True)
    r = summary(out)["runs"][0]
    assert r["rate"] == 40 and r["requests"] == 60
    assert 25 < r["achieved_rate"] < 60
    assert r["goodput"] > 0 and r["slo_attainment"] == 1.0


def test_request_body_headers_warmup_and_no_secrets(stream_server, tmp_path):
    log = tmp_path / "server.jsonl"
    url = stream_server("--log", str(log), "--tokens", "5").replace("/chat/completions", "/completions")
    out = tmp_path / "run"
    secret = "sk-verysecret0123456789"
    proc = run_cli("perf", "--url", url, "--model", "perf-model", "--api", "openai", "--api-key", secret,
                   "--concurrency", "2", "--number", "6", "--warmup", "3", "--min-tokens", "5", "--max-tokens", "5",
                   "--extra-args", '{"top_k": 7}', "--headers", "X-Auth-Token=hunter2", "--dataset", "random",
                   "--tokenizer", "cl100k_base", "--min-prompt-length", "40", "--max-prompt-length", "40",
                   "--name", "nightly", "--log-every-n-query", "2", "--output", str(out), env=ENV, check=True)
    reqs = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(reqs) == 9  # 3 warmup + 6 measured
    body = reqs[-1]["body"]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["min_tokens"] == 5 and body["ignore_eos"] is True and body["max_tokens"] == 5 and body["top_k"] == 7
    assert all(r["auth"] for r in reqs)
    assert "perf concurrency 2: 2/6 requests done" in proc.stderr
    s = summary(out)
    assert s["name"] == "nightly" and s["config"]["api"] == "completions"
    assert s["runs"][0]["input_tokens"]["min"] == 10  # the server's usage, not our count
    for f in out.iterdir():
        data = f.read_bytes()
        assert secret.encode() not in data and b"hunter2" not in data, f.name
    assert secret not in proc.stdout + proc.stderr


def test_split_events_crlf_and_no_stream(stream_server, tmp_path):
    url = stream_server("--tokens", "6", "--split", "--crlf", "--ttft", "0.02")
    out = tmp_path / "run"
    run_cli("perf", "--url", url, "--model", "perf-model", "--number", "4", "--output", str(out), env=ENV, check=True)
    r = summary(out)["runs"][0]
    assert r["succeeded"] == 4 and r["output_tokens"]["mean"] == 6
    assert 0.020 <= r["ttft_s"]["min"] and r["ttft_s"]["max"] < 0.040
    out2 = tmp_path / "run2"
    run_cli("perf", "--url", url, "--model", "perf-model", "--number", "3", "--no-stream", "--output", str(out2),
            env=ENV, check=True)
    r = summary(out2)["runs"][0]
    assert r["succeeded"] == 3 and r["ttft_s"]["mean"] == pytest.approx(r["latency_s"]["mean"])
    assert r["tpot_s"]["mean"] is None and r["output_tokens"]["mean"] == 6


def test_duration_bounds_a_closed_loop_level(stream_server, tmp_path):
    url = stream_server("--tokens", "5", "--itl", "0.01")
    out = tmp_path / "run"
    run_cli("perf", "--url", url, "--model", "perf-model", "--concurrency", "2", "--duration", "1",
            "--output", str(out), env=ENV, check=True)
    r = summary(out)["runs"][0]
    # 2 clients, ~40 ms per request, for 1 s: about 50 requests, none after the deadline
    assert 30 <= r["requests"] <= 52 and r["failed"] == 0
    assert 1.0 <= r["duration_s"] < 2.0  # stops at 1 s; what is in flight finishes (loose: a loaded machine)


def test_random_prompts_have_exact_lengths():
    from lmgauge.plugin import RequestSettings
    from lmgauge.tokenizers import load_tokenizer
    from lmgauge_datasets.random_prompts import RandomDataset

    tok = load_tokenizer("cl100k_base")
    ds = RandomDataset({"min_prompt_length": 20, "max_prompt_length": 90, "prefix_length": 16},
                       RequestSettings(max_tokens=8, min_tokens=8, seed=3), tok)
    reqs = list(ds.requests(30))
    lengths = [tok.count(r.prompt) for r in reqs]
    assert all(36 <= n <= 106 for n in lengths) and len(set(lengths)) > 5
    prefix = reqs[0].prompt[:40]
    assert all(r.prompt.startswith(prefix) for r in reqs)
    assert reqs[0].params.extra_body == {"min_tokens": 8, "ignore_eos": True}
    exact = RandomDataset({"min_prompt_length": 128, "max_prompt_length": 128}, RequestSettings(seed=1), tok)
    assert {tok.count(r.prompt) for r in exact.requests(10)} == {128}


def main_in_process(capsys, *args: str) -> subprocess.CompletedProcess:
    """``lmgauge ARGS`` through lmgauge.cli.main in this process (fast), as a CompletedProcess."""
    from lmgauge.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    cap = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), exit_info.value.code, cap.out, cap.err)


def test_bad_input_is_one_line(stream_server, tmp_path, capsys):
    url = stream_server()
    base = ["perf", "--url", url, "--model", "perf-model", "--output", str(tmp_path / "x")]

    def check(args, *needles):
        assert_one_line_error(main_in_process(capsys, *args), *needles)

    # through the installed command, as a user runs it
    assert_one_line_error(run_cli(*base, "--dataset", "random", "--min-prompt-length", "9", "--max-prompt-length", "3",
                                  env=ENV), "--min-prompt-length 9 is larger")
    assert_one_line_error(run_cli("perf", "--url", "http://127.0.0.1:9/v1/chat/completions", "--model", "m",
                                  "--output", str(tmp_path / "y"), env=ENV), "cannot reach the server")
    # the rest in-process
    check([*base, "--tokenizer", "no-such-tokenizer-xyz"], "unknown tokenizer")
    check([*base, "--concurrency", "1", "2", "--number", "1", "2", "3"], "--number has 3 values")
    check([*base, "--slo", "ttft=fast"], "--slo")
    check(["perf", "--model", "m"], "no server URL given", "--url")
    check([*base, "--dataset", "nope"], "unknown perf dataset 'nope'", "random")
    check([*base, "--min-tokens", "9", "--max-tokens", "3"], "--min-tokens 9 is larger")
    check([*base, "--extra-args", "{bad"], "--extra-args is not valid JSON")
    check([*base, "--headers", "novalue"], "KEY=VALUE")
    check([*base, "--workers", "0"], "--workers")
    check([*base, "--rate", "0"], "--rate")
    check([*base, "--api", "dashscope"], "--api")
    check([*base, "--dataset", "custom"], "--dataset custom needs --dataset-path")
    check([*base, "--dataset", "line_by_line", "--dataset-path", str(tmp_path / "missing.txt")], "no such file")
    check([*base, "--tokenizer", str(tmp_path / "model.gguf")], "does not exist")
    check([*base, "--concurrency", "x"], "--concurrency")
    check([*base, "--model", "other-model"], "not served")
    check(["perf", "--backend", "transformers", "--model", "smollm2", "--workers", "2"], "--workers 2 cannot be used")
    assert not (tmp_path / "x").exists()  # nothing is written for bad input


def test_a_running_level_shows_its_figures_so_far(stream_server, tmp_path):
    """summary.json's ``current``: the level running now, every 2 s (lmgauge serve shows it),
    gone once the level's own figures are written."""
    url = stream_server("--tokens", "10", "--itl", "0.05")  # 0.5 s a request: 24 requests ≈ 6 s at concurrency 2
    out = tmp_path / "run"
    proc = subprocess.Popen([*LMGAUGE, "perf", "--url", url, "--model", "perf-model", "--prompt", "hi", "--number", "24",
                             "--concurrency", "2", "--output", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **ENV})
    seen = []
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            current = json.loads((out / "summary.json").read_text()).get("current")
        except (OSError, ValueError):
            current = None
        if current:
            seen.append(current)
        time.sleep(0.2)
    proc.communicate()
    assert proc.returncode == 0
    assert seen, "no current level in summary.json while the level ran"
    last = seen[-1]
    assert last["label"] == "concurrency 2" and last["total"] == 24 and 0 < last["requests"] < 24
    assert last["failed"] == 0 and last["ttft_p50_s"] > 0 and last["latency_p50_s"] >= 0.4
    final = summary(out)
    assert "current" not in final and final["runs"][0]["succeeded"] == 24
