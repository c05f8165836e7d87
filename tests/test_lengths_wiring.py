"""The reasoning analytics wired into every path: the default tokenizer (approximate, said so),
the HTML report (lengths table, budget chart, escaped), the SQLite and tracker exports, a
resumed old run filled in with one atomic rewrite of its journal, `lmgauge regrade` of a
schema-1 run, the grading workers (a GGUF tokenizer saved once for them, sandboxed
benchmarks one per batch, a failing analysis never costing a verdict). The exact counts,
reflections, first-correct and budget curve through `lmgauge eval` are in test_lengths.py."""
from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from conftest import REPO, run_cli
from lmgauge.eval.grading_pool import AnalyticsSettings, GradingPool
from lmgauge.eval.lengths import (APPROXIMATE, TOKENIZER, USAGE, SampleAnalytics, TokenCounter, choose_tokenizer,
                                  count_reflections, count_tokens, reasoning_text, worker_spec)
from lmgauge.eval.regrade import _with_analytics
from lmgauge.runfolder import SampleRecord, load_run, read_samples
from lmgauge.types import Completion, Sample, Score
from lmgauge_benchmarks.math_500 import Math500, math_prompt

PLUGINS = {"LMGAUGE_PLUGINS": "custom_math,openai,json,sqlite,export_command"}
HOSTILE = "<img src=x onerror=alert(1)>"
ANALYTICS = ("completion_tokens", "reasoning_tokens", "answer_tokens", "token_source", "reflections", "first_correct")


def questions(tmp_path: Path) -> tuple[Path, dict[str, list[str]]]:
    """Four questions, two repeats; one subset named like markup (escaped everywhere)."""
    qs = {"q1": ("What is 1 + 1?", "2"), "q2": ("What is 2 + 2?", "4"), "q3": ("What is 3 + 3?", "6"),
          "q4": ("What is 4 + 4?", "8")}
    data = tmp_path / "qs.jsonl"
    data.write_text("".join(json.dumps({"id": k, "question": q, "answer": a, "subset": HOSTILE if k in ("q1", "q2") else "plain"})
                            + "\n" for k, (q, a) in qs.items()))
    answers = {
        math_prompt(qs["q1"][0]): ["<think>Wait, the answer is 2." + " ok" * 300 + "</think>\\boxed{2}",
                                   "<think>Hmm." + " ok" * 1200 + "</think>\\boxed{2}"],
        math_prompt(qs["q2"][0]): ["<think>" + " ok" * 50 + "</think>\\boxed{5}", "<think>Alternatively 4.</think>\\boxed{4}"],
        math_prompt(qs["q3"][0]): ["<think>" + " ok" * 2500, "<think>Let me verify: \\boxed{6}</think>\\boxed{6}"],
        math_prompt(qs["q4"][0]): ["<think>actually" + " ok" * 700 + "</think>\\boxed{8}", "\\boxed{8}"],
    }
    return data, answers


def eval_args(server, data: Path, out: Path, *extra: str) -> list[str]:
    return ["eval", "--base-url", server.base_url, "--model", "m", "--benchmark", "custom_math", "--dataset-path",
            f"custom_math={data}", "--repeats", "2", "--max-tokens", "2048", "--seed", "0", "--output", str(out),
            "--no-progress", *extra]


@pytest.fixture
def made_run(eval_server, tmp_path):
    data, answers = questions(tmp_path)
    server = eval_server({"model": "m", "answers": answers,
                          "finish_reason": {math_prompt("What is 3 + 3?"): "length"}})
    out = tmp_path / "run"
    proc = run_cli(*eval_args(server, data, out), env=PLUGINS, check=True)
    return server, data, out, proc


def test_without_a_tokenizer_counts_are_approximate_and_said_so(made_run, tmp_path):
    """The served model ("m") has no tokenizer to be had offline: cl100k_base counts, marked
    approximate in the journal, report.json and the terminal summary; the HTML page shows the
    lengths table and the budget chart with every run-folder text escaped; the SQLite export
    and the tracker metrics carry the same figures."""
    _, _, out, proc = made_run
    run = load_run(out)
    enc = choose_tokenizer("cl100k_base").tokenizer
    for r in run.samples():
        assert r.token_source == APPROXIMATE
        assert (r.completion_tokens, r.reasoning_tokens, r.answer_tokens) == count_tokens(r, enc)
    st = run.report.summary("custom_math").lengths
    assert st["token_source"] == APPROXIMATE and st["counted"] == 8
    assert any("custom_math tokens (approximate: cl100k_base tokens, not the model's; pass --tokenizer" in line
               for line in proc.stdout.splitlines())

    page = (out / "report.html").read_text()
    assert '<table class="lengths">' in page and 'data-chart="budget-custom_math"' in page
    assert HOSTILE not in page  # the subset name, escaped in the lengths table (and everywhere else)
    assert "&lt;img src=x onerror=alert(1)&gt;</td>" in page

    db = tmp_path / "x.sqlite"
    run_cli("export", str(out), "--to", "sqlite", "--export-path", str(db), env=PLUGINS, check=True)
    con = sqlite3.connect(db)
    rows = {r[0]: r for r in con.execute("SELECT subset, completion_tokens_mean, completion_tokens_max, truncation_rate, "
                                         "reflections_per_1k, first_correct_found, token_source, lengths_json "
                                         "FROM eval_lengths WHERE benchmark='custom_math'")}
    assert set(rows) == {"OVERALL", HOSTILE, "plain"}
    overall = rows["OVERALL"]
    assert overall[1:7] == (st["completion_tokens"]["mean"], st["completion_tokens"]["max"], st["truncation_rate"],
                            st["reflections_per_1k"], st["first_correct"]["found"], APPROXIMATE)
    assert json.loads(overall[7]) == st
    curve = con.execute("SELECT max_tokens, score, ci_low, ci_high FROM eval_budget_curve ORDER BY max_tokens").fetchall()
    assert curve == [(p["max_tokens"], p["score"], p["ci_low"], p["ci_high"])
                     for p in run.report.summary("custom_math").budget_curve]
    refl = dict(con.execute("SELECT sample_id || '/' || repeat, reflections FROM eval_samples"))
    assert refl == {f"{r.sample_id}/{r.repeat}": r.reflections for r in run.samples()}
    con.close()

    from lmgauge_exporters.tracking import eval_metrics

    metrics = eval_metrics(run)
    assert metrics["custom_math/lengths/completion_tokens_mean"] == st["completion_tokens"]["mean"]
    assert metrics["custom_math/lengths/truncation_rate"] == st["truncation_rate"]
    assert metrics["custom_math/budget/2048"] == run.report.score("custom_math")


def _strip(rec: SampleRecord) -> SampleRecord:
    """The record as an lmgauge before the analytics wrote it (n > 1: no usage either)."""
    old = rec.copy()
    for name in ANALYTICS:
        setattr(old, name, None)
    return old


def test_resume_fills_an_old_run_with_one_rewrite(made_run, tmp_path):
    """A journal without the analytics (an older lmgauge), with a superseded line and two
    samples not run yet: `--resume` runs the two, gives every older sample exactly the figures
    a fresh run gives, and rewrites the journal once, atomically (one line per sample, no second
    copy); a second resume rewrites nothing."""
    server, data, out, _ = made_run
    fresh = {r.key: r for r in read_samples(out / "samples.jsonl")}
    journal = out / "samples.jsonl"
    old = [_strip(r) for r in fresh.values() if r.sample_id != "q4"]
    failed = SampleRecord(**{**_strip(fresh[("custom_math", "q1", 0)]).__dict__, "response": None, "score": None,
                             "correct": None, "error": "HTTP 500"})
    journal.write_bytes(b"".join(r.to_json() + b"\n" for r in [failed, *old]))  # q1/0 failed first, then answered
    (out / "report.json").unlink()
    before_requests = len(server.log())
    inode = journal.stat().st_ino

    proc = run_cli("eval", "--resume", str(out), "--no-progress", env=PLUGINS, check=True)
    asked = server.log()[before_requests:]
    assert [e["user"] for e in asked if e["user"] != "Say hi."] == [math_prompt("What is 4 + 4?")[:80]]  # only q4
    lines = journal.read_bytes().splitlines()
    got = [SampleRecord.from_json(x) for x in lines]
    assert len(lines) == len(fresh) == 8 and len({r.key for r in got}) == 8  # one line each: rewritten, not appended
    assert journal.stat().st_ino != inode  # replaced whole (atomic rename)
    for r in got:
        want = fresh[r.key]
        assert {n: getattr(r, n) for n in ANALYTICS} == {n: getattr(want, n) for n in ANALYTICS}, r.key
        assert (r.response, r.score) == (want.response, want.score)
    assert load_run(out).report.summary("custom_math").lengths["counted"] == 8
    assert "custom_math tokens (approximate" in proc.stdout

    stamp = journal.stat()
    run_cli("eval", "--resume", str(out), "--no-progress", env=PLUGINS, check=True)
    assert journal.stat().st_ino == stamp.st_ino and journal.stat().st_size == stamp.st_size  # nothing to fill

    # a --tokenizer given on resume makes the approximate counts exact
    run_cli("eval", "--resume", str(out), "--no-progress", "--tokenizer", "cl100k_base", env=PLUGINS, check=True)
    assert {r.token_source for r in read_samples(journal)} == {TOKENIZER}


def test_regrade_measures_a_schema_1_run(tmp_path):
    """`lmgauge regrade` of a run made before the analytics: every answered sample gets its
    counts, reflections and first-correct; the report its lengths and budget curve."""
    src = tmp_path / "eval-a"
    shutil.copytree(REPO / "tests" / "data" / "runs_v1" / "eval-a", src)
    out = tmp_path / "rg"
    run_cli("regrade", str(src), "--output", str(out), env={"LMGAUGE_PLUGINS": "math_500,custom_math,openai"},
            check=True)
    enc = choose_tokenizer("cl100k_base").tokenizer
    answered = [r for r in read_samples(out / "samples.jsonl") if r.answered]
    assert answered
    assert all(r.completion_tokens is None for r in read_samples(src / "samples.jsonl"))  # no usage per sample
    for r in answered:
        assert r.token_source == APPROXIMATE and r.reflections == count_reflections(reasoning_text(r.response, r.reasoning))
        assert (r.completion_tokens, r.reasoning_tokens, r.answer_tokens) == count_tokens(r, enc)
    report = load_run(out).report
    assert report.benchmarks[0].lengths["counted"] == len(answered) and report.benchmarks[0].budget_curve


def test_regrade_keeps_better_counts_than_approximate():
    """A regrade that can only count approximately keeps a sample's counts of the run's own
    tokenizer, and carries the first-correct position over to them by its share."""
    rec = SampleRecord("b", "q", 0, response="x", completion_tokens=1000, reasoning_tokens=800, answer_tokens=200,
                       token_source=TOKENIZER)
    found = SampleAnalytics(900, 700, 200, APPROXIMATE, 4, {"chars": 10, "tokens": 350, "share_after": 0.5,
                                                             "candidates": 2})
    kept = _with_analytics(rec, found, APPROXIMATE)
    assert (kept.completion_tokens, kept.reasoning_tokens, kept.token_source) == (1000, 800, TOKENIZER)
    assert kept.reflections == 4 and kept.first_correct == {"chars": 10, "tokens": 400, "share_after": 0.5,
                                                            "candidates": 2}
    usage = SampleRecord("b", "q", 0, response="x", completion_tokens=30, reasoning_tokens=None, token_source=None)
    assert _with_analytics(usage, SampleAnalytics(30, 20, 10, USAGE, 0, None), APPROXIMATE).token_source == USAGE


# ---------------------------------------------------------------------------- the grading workers


def _assess_all(pool: GradingPool, items) -> list:
    async def go():
        pool.start()
        try:
            return await asyncio.gather(*(pool.assess(b, s, c) for b, s, c in items))
        finally:
            pool.close()

    return asyncio.run(go())


def test_a_gguf_tokenizer_is_saved_once_for_the_workers(tmp_path):
    """A .gguf tokenizer is converted once (10-15 s); the workers load the saved copy and count
    exactly what the GGUF-loaded tokenizer counts."""
    from lmgauge_backends.models import embedded_gguf

    counter = choose_tokenizer(model=str(embedded_gguf("smollm2")))
    spec = worker_spec(counter, tmp_path)
    assert spec == str(tmp_path / "tokenizer") and (tmp_path / "tokenizer" / "tokenizer.json").is_file()
    assert worker_spec(choose_tokenizer("cl100k_base"), tmp_path) == "cl100k_base"
    text = "<think>Wait, 7 × 6 = 42? Let me double-check: 6·7 = 42 ✓. 日本語 too.</think>The answer is \\boxed{42}."
    sample = Sample("1", "math_500", "p", "42")
    (score, found), = _assess_all(GradingPool(1, analytics=AnalyticsSettings(spec, counter.source)),
                                  [(Math500(), sample, Completion(text=text))])
    assert score.correct
    assert (found.completion_tokens, found.reasoning_tokens, found.answer_tokens) == count_tokens(
        SampleRecord("b", "q", 0, response=text), counter.tokenizer)
    assert found.reflections == 2 and found.token_source == TOKENIZER


class SlowSandboxed(Math500):
    """A benchmark that runs code in a sandbox: grading "slow" takes seconds."""

    name = "slow_sandboxed"
    needs_sandbox = True

    def score(self, sample, completion):
        if "slow" in completion.text:
            time.sleep(3.0)
        return Score(1.0, "x")


def test_sandboxed_benchmarks_are_graded_one_per_batch():
    """A slow execution does not hold back the others' journal lines: each sample of a
    sandboxed benchmark is its own batch (in one batch the fast ones would wait for it). They
    get reflections and counts, and no first-correct search (their answers are programs)."""
    done: list[str] = []

    async def go():
        pool = GradingPool(2, analytics=AnalyticsSettings("cl100k_base"))
        pool.start()

        async def one(word):
            got = await pool.assess(SlowSandboxed(), Sample("1", "slow_sandboxed", "p", "x"),
                                    Completion(text=f"<think>{word} wait \\boxed{{x}}</think>print(1)"))
            done.append(word)
            return got

        try:
            return await asyncio.gather(*(one(w) for w in ("slow", "fast1", "fast2")))
        finally:
            pool.close()

    results = asyncio.run(go())
    assert done[-1] == "slow", done  # the fast ones came back while the slow one was still running
    for score, found in results:
        assert score.value == 1.0 and found.reflections == 1 and found.first_correct is None
        assert found.completion_tokens is not None


def test_a_failing_analysis_never_costs_the_verdict():
    """Analytics that cannot run (here: a tokenizer no worker can load) give no figures; the
    verdict stays."""
    sample = Sample("1", "math_500", "p", "2")
    (score, found), = _assess_all(GradingPool(1, analytics=AnalyticsSettings("no-such-tokenizer-anywhere")),
                                  [(Math500(), sample, Completion(text="<think>wait</think>\\boxed{2}"))])
    assert score.correct and found is None
    (score, found), = _assess_all(GradingPool(1), [(Math500(), sample, Completion(text="\\boxed{3}"))])
    assert score.value == 0.0 and found is None  # no analytics asked for
    assert count_reflections("wait") == 1 and isinstance(TokenCounter(None, APPROXIMATE, None), TokenCounter)


def test_a_bad_tokenizer_is_one_line_before_the_run_folder(eval_server, tmp_path):
    data, answers = questions(tmp_path)
    server = eval_server({"model": "m", "answers": answers})
    out = tmp_path / "never"
    proc = run_cli(*eval_args(server, data, out, "--tokenizer", str(tmp_path / "missing.gguf")), env=PLUGINS)
    from conftest import assert_one_line_error

    assert_one_line_error(proc, "tokenizer file", "does not exist")
    assert not out.exists() and [e for e in server.log() if e["user"] != "Say hi."] == []
