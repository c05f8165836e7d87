"""Sweeps (`lmgauge eval ... --sweep KEY=V1,V2,...`) against the local test server: a server
that honours reasoning_effort (accuracy and length per level) gives distinct rows and
no_effect false; one that ignores the setting (a grid with temperature, which it ignores
too) gives no_effect true with a warning line; every variant's score is exact in both; a
sweep killed mid-way finishes exactly when the command is run again; `lmgauge report DIR`
works on the sweep folder; bad sweeps are one line each."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import LMGAUGE, assert_one_line_error, run_cli
from lmgauge.eval.metrics import confidence_interval
from lmgauge.eval.sweep import holm, parse_sweep, variants
from lmgauge.errors import ConfigError
from lmgauge.runfolder import load_run, read_manifest, read_samples
from lmgauge_benchmarks.math_500 import math_prompt

PLUGINS = {"LMGAUGE_PLUGINS": "custom_math,openai"}
N = 10
QS = [(f"q{i}", f"What is {i} + {i}?", str(2 * i)) for i in range(1, N + 1)]
#: per effort: reasoning length (" step" tokens) and how many of the questions (the first k) it gets right
LEVELS = {"low": (100, 2), "medium": (400, 6), "high": (1600, 10)}


def answer(gold: str, steps: int, right: bool) -> str:
    return "<think>" + " step" * steps + "</think>\\boxed{" + (gold if right else "0") + "}"


def level_answers(effort: str) -> dict[str, list[str]]:
    steps, k = LEVELS[effort]
    return {math_prompt(q): [answer(g, steps, i <= k)] for i, (_, q, g) in enumerate(QS, 1)}


def tokens(text: str) -> int:
    """A sample's completion tokens: one request per sample (repeats 1), so the server's usage
    is per sample and counts (this test server counts whitespace-separated words)."""
    return len(text.split())


@pytest.fixture
def data(tmp_path) -> Path:
    path = tmp_path / "qs.jsonl"
    path.write_text("".join(json.dumps({"id": a, "question": q, "answer": g}) + "\n" for a, q, g in QS))
    return path


def sweep_args(server, data: Path, out: Path, *sweeps: str, extra: tuple[str, ...] = ()) -> list[str]:
    args = ["eval", "--base-url", server.base_url, "--model", "m", "--benchmark", "custom_math", "--dataset-path",
            f"custom_math={data}", "--tokenizer", "cl100k_base", "--seed", "0", "--grading-workers", "1",
            "--output", str(out), "--no-progress", *extra]
    for s in sweeps:
        args += ["--sweep", s]
    return args


def honouring(eval_server, **more):
    return eval_server({"model": "m", "answers": level_answers("low") | {math_prompt(q): [answer(g, 50, False)]
                                                                       for _, q, g in QS},
                        "by_effort": {e: level_answers(e) for e in LEVELS}, **more})


def check_variant(out: Path, name: str, values: dict, score: float, texts: list[str]) -> dict:
    """The variant folder is an ordinary eval run of the sweep, its score exact (AveragePass@1
    over the ten 0/1 questions, the report's Wilson CI) and its mean tokens those of its texts
    (the server's per-sample usage)."""
    run = load_run(out / name)
    assert run.kind == "eval" and run.manifest.sweep == ".." and run.manifest.values == values
    row = run.report.main_row("custom_math")
    lo, hi = confidence_interval([1.0] * round(score * N) + [0.0] * (N - round(score * N)))
    assert (row.score, row.ci_low, row.ci_high, row.count) == (score, round(lo, 6), round(hi, 6), N)
    mean = sum(tokens(t) for t in texts) / N
    assert run.report.summary("custom_math").lengths["completion_tokens"]["mean"] == round(mean, 1)
    return {"score": score, "mean": round(mean, 1)}


def test_a_server_that_honours_reasoning_effort(eval_server, data, tmp_path):
    server = honouring(eval_server)
    out = tmp_path / "effort"
    proc = run_cli(*sweep_args(server, data, out, "reasoning_effort=low,medium,high"), env=PLUGINS, check=True)
    # each variant sent its own value as a top-level body field, to every question once
    sent = [e["reasoning_effort"] for e in server.log() if e["user"] != "Say hi."]
    assert sorted(sent) == sorted(["low"] * N + ["medium"] * N + ["high"] * N)
    assert read_manifest(out).kind == "sweep"
    figures = {}
    for effort, (steps, k) in LEVELS.items():
        texts = [answer(g, steps, i <= k) for i, (_, _, g) in enumerate(QS, 1)]
        figures[effort] = check_variant(out, f"reasoning_effort={effort}", {"reasoning_effort": effort}, k / N, texts)
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["keys"] == ["reasoning_effort"] and doc["no_effect"] is False and doc["complete"] is True
    assert [v["dir"] for v in doc["variants"]] == [f"reasoning_effort={e}" for e in LEVELS]
    for v, effort in zip(doc["variants"], LEVELS):
        assert v["values"] == {"reasoning_effort": effort}
        assert v["scores"]["custom_math"]["score"] == figures[effort]["score"]
        assert v["lengths"]["custom_math"]["completion_tokens"]["mean"] == figures[effort]["mean"]
    # every two variants compared; each against the next is flagged; the length tests decide here
    pairs = {(c["a"], c["b"]): c for c in doc["comparisons"]}
    assert len(pairs) == 3 and sum(c["adjacent"] for c in pairs.values()) == 2
    low_high = pairs[("reasoning_effort=low", "reasoning_effort=high")]
    assert low_high["score"]["diff"] == pytest.approx(0.8) and low_high["score"]["test"] == "exact McNemar"
    assert low_high["score"]["b_only"] == 8 and low_high["score"]["a_only"] == 0
    assert low_high["score"]["p_value"] == pytest.approx(2 * 0.5 ** 8, abs=1e-6)
    assert low_high["tokens"]["diff"] == pytest.approx(figures["high"]["mean"] - figures["low"]["mean"])
    assert low_high["tokens"]["p_value"] == pytest.approx(2 / 2 ** N, abs=1e-6)  # exact sign-flip: every question longer
    # the score test is lmgauge compare's, number for number
    from lmgauge.eval.compare import compare_runs

    for (a, b), c in pairs.items():
        row = next(r for r in compare_runs(out / a, out / b).rows if r.subset == "OVERALL").result.to_dict()
        assert {k: c["score"][k] for k in row} == {k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()}
    # the rejections are Holm's over the whole family of six tests
    family = [c[part] for c in doc["comparisons"] for part in ("score", "tokens")]
    assert [t["significant_adjusted"] for t in family] == holm([t["p_value"] for t in family])
    assert doc["tests"]["count"] == 6 and any(t["significant_adjusted"] for t in family)
    # one table: a distinct row per variant (score, CI, mean tokens, tokens per correct), then the pairs
    lines = proc.stdout.splitlines()
    rows = [line for line in lines if line.startswith("| ") and "custom_math" in line and "→" not in line]
    assert [r.split("|")[1].strip() for r in rows] == list(LEVELS)
    assert len({r.split("|")[3] for r in rows}) == 3 and len({r.split("|")[5] for r in rows}) == 3
    assert f"{figures['high']['mean']:,.0f}" in rows[2]
    pair_rows = [line.split("|")[1].strip() for line in lines if line.startswith("| ") and "→" in line and "custom_math" in line]
    assert pair_rows == ["low → medium", "medium → high"]
    assert "no effect" not in proc.stderr and any(line.startswith("effect: ") for line in lines)

    # lmgauge report DIR: the same table, and the page with the frontier and the pairs
    rep = run_cli("report", str(out), env=PLUGINS, check=True)
    assert [line for line in rep.stdout.splitlines() if line.startswith("| ") and "custom_math" in line
            and "→" not in line] == rows
    page = (out / "report.html").read_text()
    assert 'class="chart tradeoff"' in page and 'class="sweep-variants"' in page and 'class="sweep-pairs"' in page
    assert page.count('class="variant front"') == 3  # more tokens bought a higher score each time: all on the frontier


def test_a_server_that_ignores_the_settings(eval_server, data, tmp_path):
    """A grid of reasoning_effort × temperature on a server that implements neither: four
    variants with the same answers, no_effect true and the warning line; every score exact.
    The value written as markup is escaped on the page and made safe in the folder name."""
    answers = {math_prompt(q): [answer(g, 30 * i, i % 2 == 0)] for i, (_, q, g) in enumerate(QS, 1)}
    server = eval_server({"model": "m", "answers": answers})
    out = tmp_path / "grid"
    proc = run_cli(*sweep_args(server, data, out, "reasoning_effort=low,<i>hi</i>", "temperature=0.2,0.9"),
                   env=PLUGINS, check=True)
    sent = sorted((e["reasoning_effort"], e["temperature"]) for e in server.log() if e["user"] != "Say hi.")
    assert sent == sorted([(eff, t) for eff in ("low", "<i>hi</i>") for t in (0.2, 0.9)] * N)
    names = ["reasoning_effort=low,temperature=0.2", "reasoning_effort=low,temperature=0.9",
             "reasoning_effort=_i_hi__i_,temperature=0.2", "reasoning_effort=_i_hi__i_,temperature=0.9"]
    texts = [answer(g, 30 * i, i % 2 == 0) for i, (_, _, g) in enumerate(QS, 1)]
    for name in names:
        values = {"reasoning_effort": "low" if "low" in name else "<i>hi</i>", "temperature": float(name[-3:])}
        check_variant(out, name, values, 0.5, texts)
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["no_effect"] is True and doc["underpowered"] is False
    assert [v["dir"] for v in doc["variants"]] == names
    assert all(c["score"]["differing"] == 0 and c["tokens"]["diff"] == 0 for c in doc["comparisons"])
    assert len(doc["comparisons"]) == 6 and doc["tests"]["count"] == 12
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("lmgauge: warning: no effect")]
    assert len(warnings) == 1 and "reasoning_effort, temperature" in warnings[0]
    page = (out / "report.html").read_text()
    assert "<i>hi</i>" not in page and "&lt;i&gt;hi&lt;/i&gt;" in page

    # the same folder for another sweep is refused in one line; so is a sweep into an eval folder
    again = run_cli(*sweep_args(server, data, out, "reasoning_effort=low,medium", "temperature=0.2,0.9"), env=PLUGINS)
    assert_one_line_error(again, "holds a sweep with other settings", "sweep")
    plain = run_cli(*sweep_args(server, data, out / names[0], "temperature=0.1,0.2"), env=PLUGINS)
    assert_one_line_error(plain, "already holds a eval run")


def journal_keys(out: Path) -> dict[str, set]:
    return {p.parent.name: {r.sample_id for r in read_samples(p) if not r.failed} for p in out.glob("*/samples.jsonl")}


def test_a_killed_sweep_finishes_exactly_when_run_again(eval_server, data, tmp_path):
    """SIGKILL while the second variant runs (one request at a time): the same command again
    finishes every variant, asks only for what was not journaled, and gives the scores and the
    verdict of an uninterrupted sweep; `--resume DIR` of the finished sweep asks for nothing."""
    server = honouring(eval_server, delay=0.15, max_in_flight=1)
    out = tmp_path / "killed"
    args = sweep_args(server, data, out, "reasoning_effort=low,medium,high", extra=("--concurrency", "1"))
    proc = subprocess.Popen([*LMGAUGE, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, **PLUGINS})
    second = out / "reasoning_effort=medium" / "samples.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if second.exists() and len(second.read_bytes().splitlines()) >= 3:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    had = journal_keys(out)
    assert len(had["reasoning_effort=low"]) == N and 3 <= len(had["reasoning_effort=medium"]) < N
    assert "reasoning_effort=high" not in had
    asked_before = len(server.log())

    run_cli(*args, env=PLUGINS, check=True)
    asked = [(e["reasoning_effort"], e["user"]) for e in server.log()[asked_before:] if e["user"] != "Say hi."]
    short = {q: math_prompt(q)[:80] for _, q, _ in QS}
    ids = {short[q]: sid for sid, q, _ in QS}
    # only what the journals lacked: nothing of low, the rest of medium, all of high
    assert not [a for a in asked if a[0] == "low"]
    assert sorted(ids[u] for e, u in asked if e == "medium") == sorted(
        {sid for sid, _, _ in QS} - had["reasoning_effort=medium"])
    assert len([a for a in asked if a[0] == "high"]) == N
    assert {k: len(v) for k, v in journal_keys(out).items()} == {f"reasoning_effort={e}": N for e in LEVELS}
    for p in out.glob("*/samples.jsonl"):
        assert len(p.read_bytes().splitlines()) == N  # no sample journaled twice
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["complete"] is True and doc["no_effect"] is False
    assert [v["scores"]["custom_math"]["score"] for v in doc["variants"]] == [k / N for _, k in LEVELS.values()]

    asked_before = len(server.log())
    run_cli("eval", "--resume", str(out), "--no-progress", env=PLUGINS, check=True)
    assert server.log()[asked_before:] == []
    again = json.loads((out / "sweep.json").read_text())
    assert again["variants"] == doc["variants"] and again["no_effect"] is False


@pytest.mark.parametrize("flags, needles", [
    (["--sweep", "temperature=0.5"], ["at least two values"]),
    (["--sweep", "temperature=0.5,hot"], ["'hot' is not a number"]),
    (["--sweep", "temperature=0.5,0.5"], ["given twice"]),
    (["--temperature", "0.6", "--sweep", "temperature=0.5,1"], ["--temperature are both given"]),
    (["--sweep", "model=a,b"], ["sets this request field itself"]),
    (["--sweep", "repeats=1,2"], ["not a generation setting"]),
    (["--sweep", "max_tokens=0,100"], ["max-tokens must be"]),
    (["--extra-body", '{"reasoning_effort": "low"}', "--sweep", "reasoning_effort=low,high"], ["also in --extra-body"]),
    (["--sweep", "reasoning_effort"], ["cannot read it"]),
])
def test_bad_sweeps_are_one_line(tmp_path, flags, needles):
    proc = run_cli("eval", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--benchmark", "custom_math",
                   "--dataset-path", f"custom_math={tmp_path / 'none.jsonl'}", "--output", str(tmp_path / "o"), *flags,
                   env=PLUGINS)
    assert_one_line_error(proc, *needles)
    assert not (tmp_path / "o").exists()


def test_sweep_values_and_variants():
    sk = parse_sweep('chat_template_kwargs=[{"enable_thinking": true}, {"enable_thinking": false}]')
    assert sk.values == ({"enable_thinking": True}, {"enable_thinking": False})
    assert parse_sweep("top-p=0.9,1").values == (0.9, 1.0) and parse_sweep("top-p=0.9,1").key == "top_p"
    assert parse_sweep("top_k=20,-1").values == (20, -1)  # JSON where it parses, a body field
    grid = variants([parse_sweep("a=x,y"), parse_sweep("b=1,2,3")])
    assert [v.name for v in grid] == ["a=x,b=1", "a=x,b=2", "a=x,b=3", "a=y,b=1", "a=y,b=2", "a=y,b=3"]
    with pytest.raises(ConfigError):
        parse_sweep("k=a/b,a_b")  # the same folder name
    assert holm([0.01, 0.04, 0.03], 0.05) == [True, False, False]
    assert holm([0.001, 0.02, 0.04], 0.05) == [True, True, True]


def test_evaluate_runs_a_sweep_from_python(eval_server, data, tmp_path, monkeypatch):
    """`lmgauge.evaluate(..., sweep=[...])` runs the sweep and returns its sweep.json."""
    import lmgauge
    from lmgauge.plugins import reset_manager

    monkeypatch.setenv("LMGAUGE_PLUGINS", PLUGINS["LMGAUGE_PLUGINS"])
    reset_manager()
    monkeypatch.setattr("lmgauge.plugins._MANAGER", None)  # and a fresh one again after the test
    answers = {math_prompt(q): [answer(g, 10, i <= 3)] for i, (_, q, g) in enumerate(QS, 1)}
    server = eval_server({"model": "m", "answers": answers})
    doc = lmgauge.evaluate(base_url=[server.base_url], model="m", benchmark=["custom_math"],
                           dataset_path={"custom_math": str(data)}, sweep=["top_k=20,40"], grading_workers=1,
                           output=str(tmp_path / "py"))
    assert doc == json.loads((tmp_path / "py" / "sweep.json").read_text())
    assert [v["scores"]["custom_math"]["score"] for v in doc["variants"]] == [0.3, 0.3] and doc["no_effect"] is True
    assert sorted(e["keys"].count("top_k") for e in server.log() if e["user"] != "Say hi.") == [1] * (2 * N)
