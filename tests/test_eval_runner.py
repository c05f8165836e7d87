"""The eval slice end to end against a real local HTTP server that returns known right and
wrong answers: exact scores, resume after kill, faults, truncation, secrets, clear errors."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import LMGAUGE, assert_one_line_error, child_pids, pid_alive, run_cli

PLUGINS = {"LMGAUGE_PLUGINS": "math_500,openai"}


@pytest.fixture(scope="module")
def math_samples():
    from lmgauge.plugins import PluginManager

    pm = PluginManager(only=["math_500"])
    return pm.get("benchmarks", "math_500").load()[:20]


def styled_answers(samples):
    """Right answers in varied styles for even questions, wrong ones (with decoys) for odd."""
    answers, expected = {}, []
    styles = [
        "Let me think. The answer is $\\boxed{{{g}}}$.",
        "<think>maybe \\boxed{{-4242}}? no.</think>\nSo the final answer is \\boxed{{{g}}}",
        "We compute carefully...\n\nFinal answer: $\\boxed{{{g}}}$",
        "</think> therefore \\boxed{{{g}}}.",
    ]
    for i, s in enumerate(samples):
        if i % 2 == 0:
            answers[s.prompt] = [styles[(i // 2) % len(styles)].format(g=s.gold)]
            expected.append(1.0)
        else:
            answers[s.prompt] = [f"<think>It is \\boxed{{{s.gold}}}</think> The answer is \\boxed{{-987654}}."]
            expected.append(0.0)
    return answers, expected


def test_math500_slice_exact_scores(math_samples, eval_server, tmp_path):
    answers, expected = styled_answers(math_samples)
    server = eval_server({"model": "slice-model", "answers": answers})
    out = tmp_path / "run"
    proc = run_cli("eval", "--backend", "openai", "--base-url", server.base_url, "--model", "slice-model",
                   "--benchmark", "math_500", "--limit", "20", "--output", str(out), "--no-progress",
                   env=PLUGINS, check=True)
    report = json.loads((out / "report.json").read_text())
    assert report["model"] == "slice-model" and report["backend"] == "openai"
    assert report["created"].endswith("+00:00")
    overall = [r for r in report["results"] if r["subset"] == "OVERALL"]
    assert overall == [{"benchmark": "math_500", "subset": "OVERALL", "metric": "AveragePass@1",
                        "score": pytest.approx(sum(expected) / 20), "count": 20,
                        "ci_low": pytest.approx(overall[0]["ci_low"]), "ci_high": pytest.approx(overall[0]["ci_high"])}]
    assert overall[0]["ci_low"] < 0.5 < overall[0]["ci_high"]
    # per-subset rows add up: every level row counts its questions
    levels = [r for r in report["results"] if r["subset"].startswith("Level")]
    assert sum(r["count"] for r in levels) == 20
    lines = [json.loads(l) for l in (out / "samples.jsonl").read_text().splitlines()]
    assert len(lines) == 20
    by_id = {l["sample_id"]: l for l in lines}
    for s, exp in zip(math_samples, expected):
        rec = by_id[s.id]
        assert rec["score"] == exp, (s.gold, rec["response"], rec["extracted"])
        assert rec["gold"] == s.gold and rec["question"] == s.question
    assert by_id[math_samples[1].id]["extracted"] == "-987654"
    assert "| slice-model | math_500 | AveragePass@1 | OVERALL" in proc.stdout
    assert (out / "config.yaml").exists()


def test_kill_and_resume_gives_the_same_report(math_samples, eval_server, tmp_path):
    answers, _ = styled_answers(math_samples)
    server = eval_server({"model": "m", "answers": answers, "delay": 0.15})
    args = ["eval", "--base-url", server.base_url, "--model", "m", "--benchmark", "math_500", "--limit", "20",
            "--repeats", "2", "--seed", "0", "--concurrency", "2", "--no-progress"]
    full = tmp_path / "full"
    run_cli(*args, "--output", str(full), env=PLUGINS, check=True)

    part = tmp_path / "part"
    env = dict(os.environ, **PLUGINS)
    proc = subprocess.Popen([*LMGAUGE, *args, "--output", str(part)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = part / "samples.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline:
        if journal.exists() and len(journal.read_text().splitlines()) >= 8:
            break
        time.sleep(0.05)
    graders = child_pids(proc.pid)
    assert graders  # the grading worker processes
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10  # orphaned graders notice and leave
    while time.time() < deadline and any(pid_alive(pid) for pid in graders):
        time.sleep(0.1)
    assert not [pid for pid in graders if pid_alive(pid)], "grading workers outlived the killed run"
    done_before = len(journal.read_text().splitlines())
    assert 8 <= done_before < 40
    assert not (part / "report.json").exists()

    res = run_cli("eval", "--resume", str(part), "--no-progress", env=PLUGINS, check=True)
    assert "AveragePass@1" in res.stdout
    lines = journal.read_text().splitlines()
    assert len(lines) == 40  # only the missing samples were run
    a = json.loads((full / "report.json").read_text())
    b = json.loads((part / "report.json").read_text())
    assert a["results"] == b["results"]
    assert [dict(x, warnings=None) for x in a["benchmarks"]] == [dict(x, warnings=None) for x in b["benchmarks"]]
    # resuming a finished run sends nothing
    before = len(server.log())
    run_cli("eval", "--resume", str(part), "--no-progress", env=PLUGINS, check=True)
    assert len(server.log()) == before


def test_faults_are_retried_and_failures_recorded_not_wrong(math_samples, eval_server, tmp_path):
    answers, expected = styled_answers(math_samples[:6])
    faults = {math_samples[0].prompt: ["500", "reset", "malformed", "429"],
              math_samples[1].prompt: ["hang"],
              math_samples[2].prompt: ["500"] * 6}  # fails all 6 attempts of the first run only
    server = eval_server({"model": "m", "answers": answers, "faults": faults})
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("retry_backoff: 0.01\nretries: 5\ntimeout: 1.5\n")
    out = tmp_path / "run"
    run_cli("eval", "--config", str(cfg), "--base-url", server.base_url, "--model", "m", "--benchmark", "math_500",
            "--limit", "6", "--output", str(out), "--no-progress", env=PLUGINS, check=True, timeout=120)
    recs = {json.loads(l)["sample_id"]: json.loads(l) for l in (out / "samples.jsonl").read_text().splitlines()}
    assert recs[math_samples[0].id]["attempts"] == 5 and recs[math_samples[0].id]["score"] == 1.0
    assert recs[math_samples[1].id]["attempts"] == 2 and recs[math_samples[1].id]["error"] is None
    bad = recs[math_samples[2].id]
    assert bad["error"] and "HTTP 500" in bad["error"] and bad["score"] is None
    report = json.loads((out / "report.json").read_text())
    summary = report["benchmarks"][0]
    assert summary["errors"] == 1 and summary["graded"] == 5
    overall = [r for r in report["results"] if r["subset"] == "OVERALL"][0]
    ok = [e for i, e in enumerate(expected) if i != 2]
    assert overall["count"] == 5 and overall["score"] == pytest.approx(sum(ok) / 5)
    # the failed sample is re-run by --resume once the server behaves
    res = run_cli("eval", "--resume", str(out), "--no-progress", env=PLUGINS, check=True)
    final = json.loads((out / "report.json").read_text())
    assert final["benchmarks"][0]["errors"] == 0 and final["benchmarks"][0]["graded"] == 6, res.stdout


def test_repeats_without_server_n_and_truncation_warning(math_samples, eval_server, tmp_path):
    s = math_samples[:4]
    answers = {x.prompt: [f"\\boxed{{{x.gold}}}", "\\boxed{-1}", f"\\boxed{{{x.gold}}}"] for x in s}
    server = eval_server({"model": "m", "answers": answers, "supports_n": False,
                          "finish_reason": {s[3].prompt: "length"}})
    out = tmp_path / "run"
    proc = run_cli("eval", "--base-url", server.base_url, "--model", "m", "--benchmark", "math_500", "--limit", "4",
                   "--repeats", "3", "--seed", "0", "--output", str(out), "--no-progress", env=PLUGINS, check=True)
    report = json.loads((out / "report.json").read_text())
    rows = {(r["subset"], r["metric"]): r["score"] for r in report["results"]}
    assert rows[("OVERALL", "AveragePass@1")] == pytest.approx(2 / 3)
    assert rows[("OVERALL", "pass@3")] == pytest.approx(1.0)
    assert rows[("OVERALL", "maj@3")] == pytest.approx(1.0)
    assert all(e["n"] == 1 for e in server.log() if e["max_tokens"] is None and e["seed"] is not None)
    summary = report["benchmarks"][0]
    assert summary["truncated"] == 3 and summary["warnings"] and "max_tokens" in summary["warnings"][0]
    assert "truncated" in proc.stdout


def test_extra_headers_reach_the_server_and_secret_ones_are_not_written(math_samples, eval_server, tmp_path):
    answers, _ = styled_answers(math_samples[:2])
    server = eval_server({"model": "m", "answers": answers})
    out = tmp_path / "run"
    proc = run_cli("eval", "--base-url", server.base_url, "--model", "m", "--benchmark", "math_500", "--limit", "2",
                   "--header", "X-Team=eval", "--header", "X-Api-Key=sk-HEADERSECRET-42", "--output", str(out),
                   env=PLUGINS, check=True)
    log = server.log()
    assert log and all(e["x_team"] == "eval" and e["x_api_key"] for e in log)
    assert "HEADERSECRET" not in proc.stdout + proc.stderr
    for f in out.rglob("*"):
        if f.is_file():
            assert b"HEADERSECRET" not in f.read_bytes(), f
    assert "X-Team=eval" in (out / "config.yaml").read_text()  # not a secret: kept
    bad = run_cli("eval", "--base-url", server.base_url, "--model", "m", "--benchmark", "math_500", "--limit", "1",
                  "--header", "no-equals-sign", "--output", str(tmp_path / "bad"), env=PLUGINS)
    assert_one_line_error(bad, "--header expects KEY=VALUE")


def test_api_key_never_written(math_samples, eval_server, tmp_path):
    answers, _ = styled_answers(math_samples[:2])
    server = eval_server({"model": "m", "answers": answers})
    out = tmp_path / "run"
    proc = run_cli("eval", "--base-url", server.base_url, "--model", "m", "--benchmark", "math_500", "--limit", "2",
                   "--api-key", "sk-TOPSECRET-123", "--output", str(out), env=PLUGINS, check=True)
    assert all(e["auth"] for e in server.log())
    assert "TOPSECRET" not in proc.stdout + proc.stderr
    for f in out.rglob("*"):
        if f.is_file():
            assert b"TOPSECRET" not in f.read_bytes(), f
    # from the environment too
    out2 = tmp_path / "run2"
    run_cli("eval", "--base-url", server.base_url, "--model", "m", "--benchmark", "math_500", "--limit", "1",
            "--output", str(out2), "--no-progress", env={**PLUGINS, "LMGAUGE_API_KEY": "sk-ENVSECRET"}, check=True)
    assert all(b"ENVSECRET" not in f.read_bytes() for f in out2.rglob("*") if f.is_file())


def test_clear_errors(eval_server, tmp_path):
    proc = run_cli("eval", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--benchmark", "math_500",
                   "--output", str(tmp_path / "a"), env=PLUGINS)
    assert_one_line_error(proc, "cannot reach the server", "--base-url")
    server = eval_server({"model": "served-model"})
    proc = run_cli("eval", "--base-url", server.base_url, "--model", "other", "--benchmark", "math_500",
                   "--output", str(tmp_path / "b"), env=PLUGINS)
    assert_one_line_error(proc, "'other' is not served", "served-model")
    proc = run_cli("eval", "--base-url", server.base_url, "--model", "m", "--benchmark", "math_500",
                   "--repeats", "zero", env=PLUGINS)
    assert_one_line_error(proc, "--repeats")
    proc = run_cli("eval", "--base-url", server.base_url, "--model", "m", "--benchmark", "math_500",
                   "--extra-body", "{not json", env=PLUGINS)
    assert_one_line_error(proc, "--extra-body")
    proc = run_cli("eval", "--base-url", "ftp://x", "--model", "m", "--benchmark", "math_500",
                   "--output", str(tmp_path / "c"), env=PLUGINS)
    assert_one_line_error(proc, "invalid server URL")
    proc = run_cli("eval", "--resume", str(tmp_path / "nothing-here"), env=PLUGINS)
    assert_one_line_error(proc, "no config.yaml")
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("model: m\nbenchmark: [math_500]\nconcurency: 3\n")
    proc = run_cli("eval", "--config", str(cfg), env=PLUGINS)
    assert_one_line_error(proc, "unknown setting", "concurency")


def test_python_api(math_samples, eval_server, tmp_path):
    import lmgauge
    from lmgauge.plugins import PluginManager

    answers, expected = styled_answers(math_samples[:4])
    server = eval_server({"model": "m", "answers": answers})
    report = lmgauge.evaluate(pm=PluginManager(only=["math_500", "openai"]), base_url=server.base_url, model="m",
                              benchmark="math_500", limit=4, output=str(tmp_path / "api"))
    assert report.score("math_500") == pytest.approx(sum(expected) / 4)


def test_starts_thinking_ignores_boxes_in_unfinished_thinking(math_samples, eval_server, tmp_path):
    """R1 distills served without a reasoning parser: the chat template opened <think>, so a
    response cut off by max_tokens is unfinished thinking, whatever box it holds."""
    a, b, c = math_samples[:3]
    cut = f"Okay, let me work through this. So the answer would be \\boxed{{{a.gold}}}. Wait, let me redo"
    server = eval_server({"model": "m",
                          "answers": {a.prompt: [cut], b.prompt: [f"thinking...</think>The answer is \\boxed{{{b.gold}}}."],
                                      c.prompt: [f"No tags at all: \\boxed{{{c.gold}}}"]},
                          "finish_reason": {a.prompt: "length"}})

    def run(*extra):
        out = tmp_path / f"run{len(extra)}"
        run_cli("eval", "--base-url", server.base_url, "--model", "m", "--benchmark", "math_500", "--limit", "3",
                "--output", str(out), "--no-progress", *extra, env=PLUGINS, check=True)
        return {r["sample_id"]: r for r in map(json.loads, (out / "samples.jsonl").read_text().splitlines())}

    plain, opened = run(), run("--starts-thinking")
    assert plain[a.id]["correct"] is True           # the box inside cut-off thinking is taken: too generous
    assert opened[a.id]["correct"] is False and opened[a.id]["extracted"] is None
    assert opened[b.id]["correct"] is True          # thinking closed: the answer part counts
    assert opened[c.id]["correct"] is False         # never left its thinking: no answer
    assert opened[a.id]["response"] == cut          # the journal keeps the response as it came
