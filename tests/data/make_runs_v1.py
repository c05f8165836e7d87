"""Make the committed run folders of schema version 1 (tests/data/runs_v1/) with the real
writers of the commit this script runs on, and record what the readers of that commit made of
them (tests/data/runs_v1/expected/): `lmgauge report` tables, `lmgauge compare --json`, `lmgauge
export --to json` and a `lmgauge regrade` report.json.

tests/test_runfolder_compat.py reads the folders with today's code and must get the same
outputs. The folders were made once, on main at e99d346 (before the run-folder library): do
not remake them with newer code, or the test checks nothing.

    .venv/bin/python tests/data/make_runs_v1.py        # from the repository root

Every server is a test server of tests/ on 127.0.0.1. Answers hold hostile markup (a
``<script>`` and an ``<img onerror>``), for the pages that show them.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEST = REPO / "tests" / "data" / "runs_v1"
EXPECTED = DEST / "expected"
PY = sys.executable
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "LMGAUGE_PLUGINS": "math_500,custom_math,custom_mcq,openai,random,multi_turn,json,sqlite,export_command"}
EVIL = '<script>window.__pwned="answer"</script><img src=x onerror="window.__pwned=\'img\'">'


def lmgauge(*args: str, cwd: Path = DEST) -> str:
    proc = subprocess.run([PY, "-m", "lmgauge.cli", *args], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"lmgauge {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def server(script_path: Path, *args: str, kind: str = "eval") -> tuple[subprocess.Popen, int]:
    prog = {"eval": "eval_server.py", "judge": "judge_server.py", "perf": "perf_server.py"}[kind]
    cmd = [PY, str(REPO / "tests" / prog), *([str(script_path)] if kind != "perf" else []), *args]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    port = int(p.stdout.readline().split()[1])
    return p, port


def math_questions(n: int) -> list[dict]:
    path = REPO / "plugins" / "benchmarks" / "lmgauge_benchmarks" / "data" / "math500.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()[:n]]
    return rows


def main() -> None:
    if DEST.exists():
        shutil.rmtree(DEST)
    EXPECTED.mkdir(parents=True)
    tmp = DEST / ".tmp"
    tmp.mkdir()
    sys.path.insert(0, str(REPO / "core"))
    from lmgauge.plugins import PluginManager

    samples = PluginManager(only=["math_500"]).get("benchmarks", "math_500").load()[:6]
    golds = [s.gold for s in samples]
    # model A: q0 right ×3, q1 right/wrong/right, q2 undecided (judge decides), q3 truncated once,
    # q4 wrong with hostile markup, q5 fails (HTTP 400: an error, not a verdict)
    answers_a = {
        samples[0].prompt: [f"\\boxed{{{golds[0]}}}"] * 3,
        samples[1].prompt: [f"\\boxed{{{golds[1]}}}", "\\boxed{-1}", f"so \\boxed{{{golds[1]}}}"],
        samples[2].prompt: [f"I think it is {golds[2]} [[u2]]", f"\\boxed{{{golds[2]}}}", "no idea [[u2b]]"],
        samples[3].prompt: [f"<think>long thought</think>\\boxed{{{golds[3]}}}", "<think>cut", f"\\boxed{{{golds[3]}}}"],
        samples[4].prompt: [f"{EVIL} \\boxed{{12345}}"] * 3,
    }
    answers_b = {
        samples[0].prompt: [f"\\boxed{{{golds[0]}}}"] * 3,
        samples[1].prompt: [f"\\boxed{{{golds[1]}}}"] * 3,
        samples[2].prompt: ["\\boxed{0}"] * 3,
        samples[3].prompt: [f"\\boxed{{{golds[3]}}}"] * 3,
        samples[4].prompt: [f"\\boxed{{{golds[4]}}}"] * 3,
        samples[5].prompt: [f"\\boxed{{{golds[5]}}}"] * 3,
    }
    script_a = {"model": "model-a", "answers": answers_a, "finish_reason": {samples[3].prompt: "length"},
                "faults": {samples[5].prompt: ["400"] * 20},
                "reasoning": {samples[0].prompt: "Let me think. <b>bold?</b> Wait, check again."}}
    (tmp / "a.json").write_text(json.dumps(script_a))
    (tmp / "b.json").write_text(json.dumps({"model": "model-b", "answers": answers_b}))
    (tmp / "judge.json").write_text(json.dumps({
        "model": "judge-model",
        "replies": {"[[u2]]": "Same value.\nVERDICT: CORRECT", "[[u2b]]": f"{EVIL}\nVERDICT: INCORRECT"},
        "default": "Looks right.\nVERDICT: CORRECT"}))
    (tmp / "cfg.yaml").write_text("retry_backoff: 0.01\nretries: 1\n")
    procs = []
    try:
        pa, port_a = server(tmp / "a.json")
        pb, port_b = server(tmp / "b.json")
        pj, port_j = server(tmp / "judge.json", kind="judge")
        procs += [pa, pb, pj]
        common = ["--benchmark", "math_500", "--limit", "6", "--repeats", "3", "--seed", "0", "--no-progress",
                  "--grading-workers", "1", "--config", ".tmp/cfg.yaml", "--temperature", "0.6", "--max-tokens", "2048"]
        lmgauge("eval", "--base-url", f"http://127.0.0.1:{port_a}/v1", "--model", "model-a", "--api-key",
                "sk-fixture-SECRET-0123456789", *common, "--judge-model", "judge-model", "--judge-base-url",
                f"http://127.0.0.1:{port_j}/v1", "--judge-mode", "fallback", "--output", "eval-a")
        lmgauge("eval", "--base-url", f"http://127.0.0.1:{port_b}/v1", "--model", "model-b", *common, "--output", "eval-b")
        lmgauge("regrade", "eval-a", "--output", "regrade-a")

        # custom_math + custom_mcq from the user's own files, one repeat
        (tmp / "algebra.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
            {"id": "al1", "question": "What is 2+3?", "answer": "5", "subset": "easy"},
            {"id": "al2", "question": "Solve x+1=3.", "answer": "2", "subset": "easy"},
            {"id": "al3", "question": "What is 7*6?", "answer": "42", "subset": "hard"}]))
        (tmp / "quiz.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
            {"id": "mc1", "question": "Which is a noble gas?", "choices": ["Iron", "Neon", "Salt", "Wood"], "answer": "B"},
            {"id": "mc2", "question": "2+2?", "choices": ["3", "5", "4", "22"], "answer": "C"}]))
        custom = {"What is 2+3?": ["\\boxed{5}"], "Solve x+1=3.": ["x = \\boxed{3}"], "What is 7*6?": ["\\boxed{42}"]}
        (tmp / "c.json").write_text(json.dumps({"model": "model-c", "answers": custom,
                                                 "default": "The answer is (B). ANSWER: B"}))
        pc, port_c = server(tmp / "c.json")
        procs.append(pc)
        lmgauge("eval", "--base-url", f"http://127.0.0.1:{port_c}/v1", "--model", "model-c", "--benchmark",
                "algebra=custom_math:.tmp/algebra.jsonl", "--benchmark", "quiz=custom_mcq:.tmp/quiz.jsonl",
                "--no-progress", "--grading-workers", "1", "--output", "eval-custom")

        # perf: a sweep, an SLA search, multi-turn sessions
        pp, port_p = server(tmp, "--ttft", "0.01", "--itl", "0.002", "--tokens", "8", kind="perf")
        ps, port_s = server(tmp, "--ttft", "0.002", "--ttft-per-inflight", "0.004", "--itl", "0.001", "--tokens", "4",
                            kind="perf")
        pm, port_m = server(tmp, "--ttft", "0.005", "--itl", "0.001", "--prefix-cache", kind="perf")
        procs += [pp, ps, pm]
        url = "http://127.0.0.1:{}/v1/chat/completions"
        lmgauge("perf", "--url", url.format(port_p), "--model", "perf-model", "--concurrency", "1", "2", "--number",
                "4", "8", "--dataset", "random", "--tokenizer", "cl100k_base", "--min-prompt-length", "16",
                "--max-prompt-length", "16", "--max-tokens", "8", "--slo", "ttft=500ms", "--output", "perf-sweep")
        lmgauge("perf", "--url", url.format(port_s), "--model", "perf-model", "--dataset", "random", "--tokenizer",
                "cl100k_base", "--min-prompt-length", "8", "--max-prompt-length", "8", "--max-tokens", "4",
                "--sla", "ttft_p99<=40ms", "--sla-search", "concurrency", "--sla-range", "1:32", "--number", "16",
                "--output", "perf-sla")
        lmgauge("perf", "--url", url.format(port_m), "--model", "perf-model", "--dataset", "multi_turn", "--turns", "3",
                "--min-prompt-length", "20", "--max-prompt-length", "20", "--max-tokens", "5", "--number", "4",
                "--concurrency", "2", "--output", "perf-multiturn")
    finally:
        for p in procs:
            p.kill()
            p.wait()
    shutil.rmtree(tmp)
    for name in ("eval-a", "eval-b", "regrade-a", "eval-custom", "perf-sweep", "perf-sla", "perf-multiturn"):
        (EXPECTED / f"report-{name}.txt").write_text(lmgauge("report", name, "-o", f"expected/{name}.html"))
        lmgauge("export", name, "--to", "json", "--export-path", f"expected/export-{name}.json")
        (EXPECTED / f"{name}.html").unlink()
    (EXPECTED / "compare-a-b.txt").write_text(lmgauge("compare", "eval-a", "eval-b", "--json", "expected/compare-a-b.json"))
    lmgauge("regrade", "eval-a", "--output", ".regrade-now")
    shutil.copyfile(DEST / ".regrade-now" / "report.json", EXPECTED / "regrade-eval-a-report.json")
    shutil.rmtree(DEST / ".regrade-now")
    print(f"wrote {DEST}")


if __name__ == "__main__":
    main()
