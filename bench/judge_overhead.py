"""The LLM judge's overhead: eval wall time without a judge, with ``--judge-mode fallback`` and
with ``--judge-mode always``, same run, variants alternating round by round.

Model: tests/eval_server.py answering MATH-500 (500 questions) with a fixed schedule: 80 %
boxed right answers, 10 % boxed wrong ones, 10 % answers with no extractable final answer (the
rule grader's undecided samples, which fallback mode asks about). Judge: tests/perf_server.py
answering every request with ``VERDICT: CORRECT`` in one precomputed write (zero latency), in
its own process; so what is measured is lmgauge's own cost per judged sample (prompt
building, HTTP, parsing, the cache file, the journal lines), not a judge model's.

Also timed: ``--resume`` of a finished judged run, where every verdict comes from the cache.

Run: .venv/bin/python bench/judge_overhead.py [--rounds 3] [--limit 500]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent / "tests"


def start(cmd: list[str]) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        raise SystemExit(f"server did not start: {cmd}")
    return proc, int(line.split()[1])


def schedule(limit: int, tmp: str) -> str:
    from lmgauge.plugins import PluginManager

    samples = PluginManager(only=["math_500"]).get("benchmarks", "math_500").load()[:limit]
    answers = {}
    for i, s in enumerate(samples):
        if i % 10 == 8:
            text = "So the answer is \\boxed{-987654}."
        elif i % 10 == 9:
            text = f"I think it comes out to {s.gold} in the end."
        else:
            text = f"Reasoning...\nSo the answer is $\\boxed{{{s.gold}}}$."
        answers[s.prompt] = [text]
    path = os.path.join(tmp, "model.json")
    with open(path, "w") as fh:
        json.dump({"model": "bench-model", "answers": answers}, fh)
    return path


def run_eval(out: str, model_url: str, judge_url: str, mode: str | None, limit: int, resume: bool = False) -> float:
    """Wall time of one `lmgauge eval` process (start-up, generation, grading, judge, report)."""
    if resume:
        args = ["eval", "--resume", out, "--no-progress"]
    else:
        args = ["eval", "--base-url", model_url, "--model", "bench-model", "--benchmark", "math_500",
                "--limit", str(limit), "--concurrency", "64", "--grading-workers", "2", "--output", out,
                "--no-progress"]
        if mode:
            args += ["--judge-model", "judge", "--judge-base-url", judge_url, "--judge-mode", mode,
                     "--judge-concurrency", "64"]
    env = dict(os.environ, LMGAUGE_PLUGINS="math_500,openai")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "lmgauge.cli", *args], capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0 or proc.stderr.strip():
        raise SystemExit(f"eval failed: {proc.stderr.strip()[:500]}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--limit", type=int, default=500)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model, mport = start([sys.executable, str(TESTS / "eval_server.py"), schedule(args.limit, tmp)])
        judge, jport = start([sys.executable, str(TESTS / "perf_server.py"), "--model", "judge",
                              "--answer", "The answers match.\nVERDICT: CORRECT"])
        model_url, judge_url = f"http://127.0.0.1:{mport}/v1", f"http://127.0.0.1:{jport}/v1"
        times: dict[str, list[float]] = {"none": [], "fallback": [], "always": [], "resume none": [],
                                         "resume always (cached)": []}
        judged: dict[str, int] = {}
        phase: dict[str, list[float]] = {"fallback": [], "always": []}  # report.json judge.elapsed_s
        try:
            run_eval(os.path.join(tmp, "warm"), model_url, judge_url, None, args.limit)
            for r in range(args.rounds):
                for mode in ("none", "fallback", "always"):
                    out = os.path.join(tmp, f"{mode}-{r}")
                    times[mode].append(run_eval(out, model_url, judge_url, None if mode == "none" else mode,
                                                args.limit))
                    if mode != "none":
                        with open(os.path.join(out, "report.json")) as fh:
                            section = json.load(fh)["judge"]
                        judged[mode] = section["asked"]
                        phase[mode].append(section["elapsed_s"])
                times["resume none"].append(run_eval(os.path.join(tmp, f"none-{r}"), "", "", None, 0, resume=True))
                times["resume always (cached)"].append(
                    run_eval(os.path.join(tmp, f"always-{r}"), "", "", None, 0, resume=True))
        finally:
            model.kill()
            judge.kill()
    base = statistics.median(times["none"])
    print(f"MATH-500, {args.limit} questions, {args.rounds} alternating rounds, median wall time of `lmgauge eval`:")
    print("| variant | judge requests | wall time (median) | vs no judge | judge phase (median) | judge phase per judged sample |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in ("none", "fallback", "always"):
        med = statistics.median(times[name])
        n = judged.get(name, 0)
        ph = statistics.median(phase[name]) if name in phase else None
        cells = (f"{ph:.3f} s", f"{ph / n * 1000:.2f} ms") if ph is not None and n else ("-", "-")
        print(f"| {name} | {n} | {med:.2f} s | {med - base:+.2f} s ({(med - base) / base:+.1%}) | {cells[0]} | {cells[1]} |")
    rn, rc = statistics.median(times["resume none"]), statistics.median(times["resume always (cached)"])
    print(f"| --resume of a finished run, no judge | 0 | {rn:.2f} s | | | |")
    print(f"| --resume of a finished always-judged run (all {judged.get('always', 0)} verdicts cached) | 0 | "
          f"{rc:.2f} s | {rc - rn:+.2f} s | | |")
    print("judge phase times:", {k: [round(x, 3) for x in v] for k, v in phase.items()})
    print("all times:", {k: [round(x, 2) for x in v] for k, v in times.items()})


if __name__ == "__main__":
    main()
