"""`lmgauge regrade` and the LLM judge, end to end with real servers and a real pip-installed
third-party benchmark.

- regrade: a run graded by a deliberately weak grader (first number instead of the last),
  re-graded with the strong one: exactly the expected samples change, the old files stay
  byte for byte, the new report holds the hand-computed scores; an aliased benchmark too.
- judge: tests/judge_server.py answers verdicts on a schedule keyed by markers in the
  responses and logs every request; fallback mode asks exactly the undecided samples, always
  mode every sample with an answer; a resume and a regrade ask nothing again; verdicts, raw
  texts and agreement numbers are stored; a judge that is down is one warning line.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import REPO, EvalServer, assert_one_line_error, run_cli
from test_core_plugins import make_dist, pip_install
from lmgauge.runfolder import SampleRecord

WEAK_MODULE = '''
import os
import re

from lmgauge import hookimpl
from lmgauge.interfaces import Benchmark
from lmgauge.types import Sample, Score


class WeakArith(Benchmark):
    """Doubling questions; with WEAK_ARITH_FIRST_NUMBER=1 the grader takes the FIRST number of
    the response instead of the last (the deliberately weak grader)."""

    name = "weak_arith"
    description = "doubling questions with a switchable weak grader (test plugin)"
    judge_kind = "math"

    def load(self, path=None):
        return [Sample(id=f"q{i}", benchmark=self.name, prompt=f"What is {i} + {i}?", gold=str(2 * i),
                       subsets=("even" if i % 2 == 0 else "odd",), question=f"{i} + {i}")
                for i in range(1, 9)]

    def score(self, sample, completion):
        nums = re.findall(r"-?\\d+", completion.text)
        if not nums:
            return Score(0.0, None, "no answer found")
        got = nums[0] if os.environ.get("WEAK_ARITH_FIRST_NUMBER") == "1" else nums[-1]
        return Score(1.0 if got == sample.gold else 0.0, got)


@hookimpl
def register_benchmarks(register):
    register(WeakArith())
'''

# (repeat 0, repeat 1) per question; q5 fails with HTTP 400 (an error, skipped by regrade)
ARITH_ANSWERS = {
    1: ["2", "2"],
    2: ["2 + 2 = 4", "4"],          # weak r0: 2 (wrong); strong: 4
    3: ["6, no: 5", "6"],           # weak r0: 6 (right); strong: 5 (wrong)
    4: ["no idea", "no idea"],
    6: ["12", "6 + 6 = 12"],        # weak r1: 6 (wrong); strong: 12
    7: ["7 + 7 = 14", "7 + 7 = 14"],
    8: ["16", "15"],
}
EXPECTED_CHANGES = {("q2", 0, "wrong→right"), ("q3", 0, "right→wrong"), ("q6", 1, "wrong→right"),
                    ("q7", 0, "wrong→right"), ("q7", 1, "wrong→right")}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def records(path: Path) -> dict[tuple[str, int], dict]:
    """Latest journal line per (sample_id, repeat)."""
    out = {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        out[(rec["sample_id"], rec["repeat"])] = rec
    return out


def overall(report: dict, bench: str, metric: str = "AveragePass@1") -> float:
    return next(r["score"] for r in report["results"]
                if (r["benchmark"], r["subset"], r["metric"]) == (bench, "OVERALL", metric))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("dists")
    target = tmp_path_factory.mktemp("site")
    pip_install(target, make_dist(root, "lmgauge-weak-arith", "lmgauge_weak_arith", WEAK_MODULE))
    return target


@pytest.fixture(scope="module")
def weak_run(site, tmp_path_factory):
    """A finished run graded by the weak grader (read-only for the tests that use it)."""
    tmp = tmp_path_factory.mktemp("weak")
    answers = {f"What is {i} + {i}?": a for i, a in ARITH_ANSWERS.items()}
    server = EvalServer({"model": "m", "answers": answers, "faults": {"What is 5 + 5?": ["400"]}}, tmp)
    out = tmp / "weak"
    env = {"PYTHONPATH": str(site), "LMGAUGE_PLUGINS": "lmgauge_weak_arith,openai", "WEAK_ARITH_FIRST_NUMBER": "1"}
    try:
        run_cli("eval", "--base-url", server.base_url, "--model", "m", "--benchmark", "weak_arith", "--repeats", "2",
                "--seed", "0", "--output", str(out), "--no-progress", "--grading-workers", "1", env=env, check=True)
    finally:
        server.stop()
    env["WEAK_ARITH_FIRST_NUMBER"] = "0"
    return out, env


def test_regrade_with_the_strong_grader_changes_exactly_the_expected_samples(weak_run, tmp_path):
    src, env = weak_run
    out = tmp_path / "weak"
    shutil.copytree(src, out)
    before = json.loads((out / "report.json").read_text())
    # per question mean of the weak grader: q1 1, q2 .5, q3 1, q4 0, q6 .5, q7 0, q8 .5
    assert overall(before, "weak_arith") == pytest.approx(3.5 / 7)
    hashes = {p.name: sha(p) for p in out.iterdir() if p.is_file()}

    proc = run_cli("regrade", str(out), "--grading-workers", "1", env=env, check=True)
    new_dirs = [p for p in out.iterdir() if p.is_dir() and p.name.startswith("regrade-")]
    assert len(new_dirs) == 1
    new = new_dirs[0]
    assert {p.name: sha(p) for p in out.iterdir() if p.is_file()} == hashes  # the old run is untouched
    assert {"config.yaml", "samples.jsonl", "report.json", "report.html", "changes.jsonl"} <= {p.name for p in new.iterdir()}
    assert (new / "config.yaml").read_bytes() == (out / "config.yaml").read_bytes()

    changes = [json.loads(l) for l in (new / "changes.jsonl").read_text().splitlines()]
    assert {(c["sample_id"], c["repeat"], c["change"]) for c in changes} == EXPECTED_CHANGES
    q3 = next(c for c in changes if c["sample_id"] == "q3")
    assert (q3["extracted_before"], q3["extracted_after"]) == ("6", "5")

    report = json.loads((new / "report.json").read_text())
    # strong grader: q1 1, q2 1, q3 .5, q4 0, q6 1, q7 1, q8 .5
    assert overall(report, "weak_arith") == pytest.approx(5 / 7)
    odd = next(r for r in report["results"] if r["subset"] == "odd" and r["metric"] == "AveragePass@1")
    assert odd["score"] == pytest.approx((1 + 0.5 + 1) / 3)  # q1, q3, q7 (q5 errored)
    summary = report["benchmarks"][0]
    assert (summary["questions"], summary["errors"], summary["graded"]) == (8, 2, 14)
    regrade = report["regrade"]["benchmarks"][0]
    assert regrade == {"benchmark": "weak_arith", "regraded": 14, "skipped_errors": 2, "wrong_to_right": 4,
                       "right_to_wrong": 1, "other_changes": 0, "score_before": pytest.approx(0.5),
                       "score_after": pytest.approx(5 / 7)}
    new_recs = records(new / "samples.jsonl")
    assert len(new_recs) == 16
    assert new_recs[("q5", 0)]["error"] and new_recs[("q5", 0)]["score"] is None
    assert new_recs[("q2", 0)]["extracted"] == "4" and new_recs[("q2", 0)]["correct"] is True
    assert "| weak_arith |" in proc.stdout and "0.5000" in proc.stdout and "0.7143" in proc.stdout
    assert "weak_arith q3 repeat 0: right→wrong" in proc.stdout
    assert "(the model was not called)" in proc.stdout

    # the HTML report of the new folder is an eval report of it
    html = (new / "report.html").read_text()
    assert "weak_arith" in html

    # a second regrade with the same grader changes nothing, and goes to its own folder
    again = out / "again"
    proc = run_cli("regrade", str(new), "--output", str(again), "--grading-workers", "1", env=env, check=True)
    assert (again / "changes.jsonl").read_text() == ""
    assert "no sample changed its score" in proc.stdout


def test_regrade_resolves_an_aliased_benchmark(weak_run, tmp_path):
    out, env = weak_run
    alias = tmp_path / "alias"
    alias.mkdir()
    for name in ("samples.jsonl", "report.json"):
        (alias / name).write_text((out / name).read_text().replace('"weak_arith"', '"doubling"'))
    import yaml

    config = yaml.safe_load((out / "config.yaml").read_text())
    config["benchmark"] = ["doubling=weak_arith"]
    (alias / "config.yaml").write_text(yaml.safe_dump(config))
    run_cli("regrade", str(alias), "--output", str(tmp_path / "alias-new"), "--grading-workers", "1", env=env,
            check=True)
    report = json.loads((tmp_path / "alias-new" / "report.json").read_text())
    assert overall(report, "doubling") == pytest.approx(5 / 7)
    changes = (tmp_path / "alias-new" / "changes.jsonl").read_text().splitlines()
    assert {(c["benchmark"], c["sample_id"], c["repeat"]) for c in map(json.loads, changes)} == \
        {("doubling", s, r) for s, r, _ in EXPECTED_CHANGES}


def test_regrade_bad_input_is_one_line(tmp_path, weak_run):
    out, env = weak_run
    assert_one_line_error(run_cli("regrade", str(tmp_path / "nope"), env=env), "not a folder")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run_cli("regrade", str(tmp_path / "empty"), env=env), "config.yaml")
    assert_one_line_error(run_cli("regrade", str(out), "--output", str(out), env=env), "--output")
    assert_one_line_error(run_cli("regrade", str(out), "--judge-model", "j", "--judge-backend", "nosuch", env=env),
                          "unknown backend 'nosuch'")


# --------------------------------------------------------------------------------------
# the judge

class JudgeServer:
    def __init__(self, script: dict, tmp: Path):
        self.path = tmp / f"judge-{time.monotonic_ns()}.json"
        self.path.write_text(json.dumps(script))
        self.proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "judge_server.py"), str(self.path)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.proc.kill()
            raise RuntimeError(f"judge server did not start: {line!r} {self.proc.stderr.read()}")
        self.base_url = f"http://127.0.0.1:{int(line.split()[1])}/v1"

    def log(self) -> list[dict]:
        p = Path(str(self.path) + ".log.jsonl")
        return [json.loads(x) for x in p.read_text().splitlines()] if p.exists() else []

    def markers(self) -> list[str]:
        return sorted(e["marker"] for e in self.log())

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()


@pytest.fixture
def judge_server(tmp_path):
    servers = []

    def start(script: dict) -> JudgeServer:
        s = JudgeServer(script, tmp_path)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()


@pytest.fixture(scope="module")
def math_samples():
    from lmgauge.plugins import PluginManager

    return PluginManager(only=["math_500"]).get("benchmarks", "math_500").load()[:9]


def math_answers(samples) -> dict[str, list[str]]:
    """Responses marked [[sN]]: s0/s6 right, s1/s7 wrong (decided); s2, s3, s4, s8 give no
    extractable answer (undecided); s5 never closes its thinking (no answer part at all)."""
    g = [s.gold for s in samples]
    texts = [f"The answer is $\\boxed{{{g[0]}}}$. [[s0]]",
             "So we get \\boxed{-987654}. [[s1]]",
             f"I think it comes out to {g[2]} in the end. [[s2]]",
             "Probably it is 17, not sure. [[s3]]",
             "Hmm, hard to say. [[s4]]",
             "<think>still thinking about [[s5]]",
             f"Therefore \\boxed{{{g[6]}}}. [[s6]]",
             "So we get \\boxed{-987654}. [[s7]]",
             f"It equals {g[8]}, I believe. [[s8]]"]
    return {s.prompt: [t] for s, t in zip(samples, texts)}


JUDGE_SCRIPT = {
    "model": "judge-model",
    "replies": {"[[s0]]": "Same value.\nVERDICT: CORRECT",
                "[[s1]]": "Equivalent after all.\n**VERDICT: CORRECT**",
                "[[s2]]": "The response states the reference value.\nVERDICT: CORRECT",
                "[[s3]]": "17 is not the reference.\nVERDICT: INCORRECT",
                "[[s4]]": "I cannot tell what the answer is.",
                "[[s6]]": "Same.\nVERDICT: CORRECT",
                "[[s7]]": "Different.\nVERDICT: INCORRECT",
                "[[s8]]": "<think>compare</think>Matches.\nVERDICT: CORRECT"},
    "faults": {"[[s8]]": ["500"]},  # one retryable failure, then the verdict
}
MATH_ENV = {"LMGAUGE_PLUGINS": "math_500,openai"}


def judged_eval(eval_server, judge_url: str, samples, out: Path, *extra: str, env: dict | None = None):
    server = eval_server({"model": "m", "answers": math_answers(samples)})
    cfg = out.parent / f"{out.name}-cfg.yaml"
    cfg.write_text("retry_backoff: 0.01\n")
    proc = run_cli("eval", "--config", str(cfg), "--base-url", server.base_url, "--model", "m", "--benchmark",
                   "math_500", "--limit", "9", "--output", str(out), "--no-progress", "--grading-workers", "1", "--judge-model", "judge-model",
                   "--judge-base-url", judge_url, *extra, env={**MATH_ENV, **(env or {})}, check=True)
    return server, proc


def test_fallback_judge_asks_only_undecided_and_never_twice(math_samples, eval_server, judge_server, tmp_path):
    judge = judge_server(JUDGE_SCRIPT)
    out = tmp_path / "fallback"
    server, _ = judged_eval(eval_server, judge.base_url, math_samples, out, "--judge-api-key", "sk-judge-secret-123",
                            "--judge-mode", "fallback")
    # exactly the undecided samples; s8 twice (a 500, then the verdict); s5 has no answer part
    assert judge.markers() == ["[[s2]]", "[[s3]]", "[[s4]]", "[[s8]]", "[[s8]]"]
    first = judge.log()
    assert all(e["auth"] and e["temperature"] == 0.0 for e in first)
    s2 = next(e["user"] for e in first if e["marker"] == "[[s2]]")
    assert math_samples[2].question in s2 and f"REFERENCE ANSWER:\n{math_samples[2].gold}\n" in s2
    assert s2.rstrip().endswith("`VERDICT: INCORRECT`.")

    recs = {r["sample_id"]: r for r in records(out / "samples.jsonl").values()}
    ids = [s.id for s in math_samples]
    by = {f"s{i}": recs[sid] for i, sid in enumerate(ids)}
    assert by["s2"]["judge_verdict"] == "correct" and by["s2"]["score"] == 1.0 and by["s2"]["correct"] is True
    assert by["s2"]["rule_score"] == 0.0 and by["s2"]["rule_correct"] is False
    assert by["s2"]["judge_text"] == JUDGE_SCRIPT["replies"]["[[s2]]"]
    assert by["s3"]["judge_verdict"] == "incorrect" and by["s3"]["score"] == 0.0
    assert by["s4"]["judge_verdict"] == "unparsable" and by["s4"]["score"] == 0.0
    assert by["s8"]["judge_verdict"] == "correct" and by["s8"]["score"] == 1.0
    for k in ("s0", "s1", "s5", "s6", "s7"):
        assert "judge_verdict" not in by[k]
    assert (by["s1"]["extracted"], by["s1"]["grade_detail"]) == ("-987654", None)  # decided by the rules

    report = json.loads((out / "report.json").read_text())
    assert overall(report, "math_500") == pytest.approx(4 / 9)  # s0, s6 by rule; s2, s8 by the judge
    j = report["judge"]
    assert (j["model"], j["mode"], j["asked"], j["cached"], j["failed"]) == ("judge-model", "fallback", 4, 0, 0)
    o = j["overall"]
    assert o["verdicts"] == {"correct": 2, "incorrect": 1, "unparsable": 1, "error": 0}
    assert (o["judged"], o["rule_undecided"], o["score_changed"]) == (4, 4, 2)
    assert o["agreement"]["samples"] == 0 and o["agreement"]["kappa"] is None  # fallback: nothing to compare
    for p in out.iterdir():  # the judge's key reaches no file
        if p.is_file():
            assert "sk-judge-secret-123" not in p.read_text(errors="replace"), p.name

    # resume: nothing is asked again (nor generated)
    n_model = len(server.log())
    run_cli("eval", "--resume", str(out), "--no-progress", "--judge-api-key", "sk-judge-secret-123",
            env=MATH_ENV, check=True)
    assert judge.log() == first and len(server.log()) == n_model
    again = json.loads((out / "report.json").read_text())
    assert again["results"] == report["results"] and again["judge"]["cached"] == 4 and again["judge"]["asked"] == 0

    # regrade with the same judge: verdicts come from the run's cache
    proc = run_cli("regrade", str(out), "--output", str(tmp_path / "rg"), "--grading-workers", "1", "--judge-model", "judge-model",
                   "--judge-base-url", judge.base_url, env=MATH_ENV, check=True)
    assert judge.log() == first
    rg = json.loads((tmp_path / "rg" / "report.json").read_text())
    assert overall(rg, "math_500") == pytest.approx(4 / 9)
    assert rg["judge"]["cached"] == 4 and rg["judge"]["asked"] == 0
    assert (tmp_path / "rg" / "changes.jsonl").read_text() == ""
    assert "4 from cache" in proc.stdout
    # a regrade without the judge: the rule scores alone
    run_cli("regrade", str(out), "--output", str(tmp_path / "rg-rules"), "--grading-workers", "1", env=MATH_ENV,
            check=True)
    rules = json.loads((tmp_path / "rg-rules" / "report.json").read_text())
    assert overall(rules, "math_500") == pytest.approx(2 / 9) and "judge" not in rules
    changes = [json.loads(l) for l in (tmp_path / "rg-rules" / "changes.jsonl").read_text().splitlines()]
    assert sorted(c["sample_id"] for c in changes) == sorted([ids[2], ids[8]])


def test_always_mode_asks_every_answer_and_reports_agreement(math_samples, eval_server, judge_server, tmp_path):
    judge = judge_server(JUDGE_SCRIPT)
    out = tmp_path / "always"
    judged_eval(eval_server, judge.base_url, math_samples, out, "--judge-mode", "always")
    assert judge.markers() == sorted(["[[s0]]", "[[s1]]", "[[s2]]", "[[s3]]", "[[s4]]", "[[s6]]", "[[s7]]",
                                      "[[s8]]", "[[s8]]"])
    report = json.loads((out / "report.json").read_text())
    # judge: s0 s1 s2 s6 s8 correct, s3 s7 incorrect; s4 unparsable (rule: wrong); s5 no answer
    assert overall(report, "math_500") == pytest.approx(5 / 9)
    ag = report["judge"]["overall"]["agreement"]
    # decided by both: s0 (C,C) s1 (rule I, judge C) s6 (C,C) s7 (I,I)
    assert (ag["samples"], ag["both_correct"], ag["rule_incorrect_judge_correct"], ag["both_incorrect"],
            ag["rule_correct_judge_incorrect"]) == (4, 2, 1, 1, 0)
    assert ag["agreement"] == pytest.approx(0.75)
    # po = .75, pe = (2*3 + 2*1) / 16 = .5 → kappa = .5
    assert ag["kappa"] == pytest.approx(0.5)
    assert report["judge"]["benchmarks"]["math_500"]["agreement"] == ag
    s1 = next(r for r in records(out / "samples.jsonl").values() if r["sample_id"] == math_samples[1].id)
    assert (s1["score"], s1["rule_score"], s1["judge_verdict"]) == (1.0, 0.0, "correct")


def test_a_judge_that_is_down_is_one_warning_and_rule_scores_stand(math_samples, eval_server, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "down"
    _, proc = judged_eval(eval_server, f"http://127.0.0.1:{port}/v1", math_samples, out)
    warnings = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(warnings) == 1 and warnings[0].startswith("lmgauge: warning: judge judge-model:"), proc.stderr
    assert "cannot reach" in warnings[0] and "rule scores stand" in warnings[0]
    report = json.loads((out / "report.json").read_text())
    assert overall(report, "math_500") == pytest.approx(2 / 9)
    assert report["judge"]["overall"]["verdicts"]["error"] == 4
    recs = records(out / "samples.jsonl")
    assert len(recs) == 9 and all(r["error"] is None for r in recs.values())


# --------------------------------------------------------------------------------------
# the parts, directly

def test_verdict_parser_is_strict():
    from lmgauge.eval.judge import parse_verdict

    assert parse_verdict("Reasoning.\nVERDICT: CORRECT") == "correct"
    assert parse_verdict("Reasoning.\n**Verdict:** incorrect\n\n") == "incorrect"
    assert parse_verdict("<think>VERDICT: INCORRECT</think>\nVERDICT: CORRECT") == "correct"
    for bad in ("VERDICT: CORRECT\nbut wait", "The verdict is correct", "VERDICT: PARTIAL", "", None,
                "<think>VERDICT: CORRECT", "VERDICT: CORRECT or INCORRECT"):
        assert parse_verdict(bad) == "unparsable", bad


def test_prompt_shapes_and_undecided():
    from lmgauge.eval.judge import ANSWER_CHARS, build_prompt, judge_kind, rule_undecided

    class Mcq:
        judge_kind = "mcq"

    assert judge_kind(Mcq(), "42") == "mcq" and judge_kind(None, "C") == "mcq" and judge_kind(None, "42") == "math"
    def rec(**d):
        return SampleRecord.from_dict({"benchmark": "b", "sample_id": "1", "repeat": 0, **d})

    r = rec(question="What?", gold="B", response="<think>A?</think>I pick (B).",
            prompt="Answer the following.\n\nWhat?\n\nA) one\nB) two")
    text = build_prompt("mcq", r)
    assert "correct option is B" in text and "B) two" in text and "I pick (B)." in text and "A?" not in text
    long = build_prompt("math", rec(question="Q", gold="5", response="x" * (ANSWER_CHARS + 50) + " so 5"))
    assert "earlier characters omitted" in long and long.count("x") <= ANSWER_CHARS

    # schema-1 lines (no score_status): undecided as that version's readers decided it
    base = {"error": None, "response": "it is five", "score": 0.0, "extracted": None, "grade_detail": "no answer found"}
    assert rule_undecided(rec(**base))
    assert rule_undecided(rec(**dict(base, extracted="x", grade_detail="math-verify timeout")))
    assert rule_undecided(rec(**dict(base, extracted="x", grade_detail="grader error: ValueError: boom")))
    assert not rule_undecided(rec(**dict(base, extracted="4", grade_detail=None)))
    assert not rule_undecided(rec(**dict(base, response="<think>never closed")))
    assert not rule_undecided(rec(**dict(base, error="HTTP 500", response=None)))
    # schema 2: the score says what it is
    assert rule_undecided(rec(**dict(base, extracted="4", score_status="undecided")))
    assert not rule_undecided(rec(**dict(base, extracted=None, score_status="decided")))


def test_cache_skips_torn_lines_and_never_keeps_errors(tmp_path):
    from lmgauge.eval.judge import PROMPT_VERSION, Verdict, VerdictCache, cache_key

    rec = SampleRecord(benchmark="b", sample_id="1", repeat=0, response="r")
    cache = VerdictCache(tmp_path / "judge.jsonl")
    cache.put(cache_key(rec, "j"), Verdict("correct", "VERDICT: CORRECT"), "openai")
    cache.close()
    with open(tmp_path / "judge.jsonl", "ab") as fh:
        fh.write(b'{"benchmark": "b", "sample_id": "2", "rep')  # a crash mid-write
    again = VerdictCache(tmp_path / "judge.jsonl")
    assert again.get(cache_key(rec, "j")).verdict == "correct"
    assert again.get(cache_key(rec, "other-judge")) is None
    assert again.get(cache_key(replace(rec, response="changed"), "j")) is None
    assert cache_key(rec, "j")[-1] == PROMPT_VERSION
    again.put(cache_key(replace(rec, sample_id="3"), "j"), Verdict("error", "HTTP 500"), "openai")
    again.close()
    assert VerdictCache(tmp_path / "judge.jsonl").get(cache_key(replace(rec, sample_id="3"), "j")) is None
