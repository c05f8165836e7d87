"""How long `lmgauge compare` takes on two MATH-500-sized runs with 64 repeats per question.

Writes two synthetic eval run folders (500 questions x 64 repeats = 32,000 journal lines each,
MATH-500-style subsets: 5 levels x 7 subjects) into a temp dir, then times:

- read:   load_run + reading samples.jsonl, both runs
- pair:   per-question AveragePass@1, pairing, and every paired test (permutation + bootstrap,
          --resamples) on the runs already read
- total:  compare_runs from the folder paths (read + pair + tests)
- cli:    the command end to end in a fresh process (imports included)

Run: .venv/bin/python bench/compare_runtime.py [--questions 500] [--repeats 64] [--resamples 10000]
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LEVELS = [f"Level {i}" for i in range(1, 6)]
SUBJECTS = ["Algebra", "Counting & Probability", "Geometry", "Intermediate Algebra", "Number Theory", "Prealgebra",
            "Precalculus"]


def write_run(path: Path, questions: int, repeats: int, shift: float, seed: int, response_chars: int) -> None:
    rnd = random.Random(seed)
    path.mkdir(parents=True)
    filler = ("Let me think step by step about this problem and check the algebra twice. " * 200)[:response_chars]
    with (path / "samples.jsonl").open("w", encoding="utf-8") as fh:
        for q in range(questions):
            p = min(1.0, random.Random(q).random() + shift)  # same difficulty in both runs, B shifted
            subsets = [LEVELS[q % 5], SUBJECTS[q % 7]]
            for r in range(repeats):
                ok = rnd.random() < p
                fh.write(json.dumps({
                    "benchmark": "math_500", "sample_id": f"test/math/{q:04d}.json", "repeat": r, "subsets": subsets,
                    "question": f"Question {q}: compute the value of the expression ...", "gold": str(q),
                    "response": filler + f" \\boxed{{{q if ok else q + 1}}}", "finish_reason": "stop",
                    "truncated": False, "extracted": str(q if ok else q + 1), "score": 1.0 if ok else 0.0,
                    "correct": ok, "error": None, "prompt_tokens": 80, "completion_tokens": 2000 + r,
                    "latency_s": 12.5, "attempts": 1}) + "\n")
    cfg = {"model": f"bench-{seed}", "backend": "openai", "benchmark": ["math_500"], "repeats": repeats}
    (path / "report.json").write_text(json.dumps({"kind": "eval", "model": cfg["model"], "results": [],
                                                  "benchmarks": [{"benchmark": "math_500", "missing": 0}],
                                                  "config": cfg}))
    (path / "config.yaml").write_text(json.dumps(cfg))


def timed(fn, runs: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=64)
    ap.add_argument("--resamples", type=int, default=10_000)
    ap.add_argument("--response-chars", type=int, default=2000, help="length of each journaled response")
    ap.add_argument("--runs", type=int, default=3, help="timings are the median of this many runs")
    args = ap.parse_args()

    from lmgauge.eval.compare import compare_runs
    from lmgauge.htmlreport.rundata import load_run

    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "A", Path(tmp) / "B"
        write_run(a, args.questions, args.repeats, 0.0, 1, args.response_chars)
        write_run(b, args.questions, args.repeats, 0.01, 2, args.response_chars)
        size = (a / "samples.jsonl").stat().st_size

        def read():
            runs = load_run(a), load_run(b)
            for r in runs:
                r.samples()
            return runs

        t_read, runs = timed(read, args.runs)
        t_pair, result = timed(lambda: compare_runs(*runs, resamples=args.resamples), args.runs)
        t_total, _ = timed(lambda: compare_runs(a, b, resamples=args.resamples), args.runs)
        code = ("import sys; from lmgauge.cli import cli, main; from lmgauge.eval.compare_cli import compare; "
                "cli.add_command(compare); main(sys.argv[1:])")
        cmd = [sys.executable, "-c", code, "compare", str(a), str(b), "--resamples", str(args.resamples)]

        def cli():
            subprocess.run(cmd, check=True, capture_output=True)

        t_cli, _ = timed(cli, args.runs)

    overall = result.main_rows()[0]
    print(f"runs: {args.questions} questions x {args.repeats} repeats = {args.questions * args.repeats:,} samples each "
          f"(samples.jsonl {size / 1e6:.1f} MB each); {len(result.rows)} paired rows "
          f"(OVERALL + {len(result.rows) - 1} subsets), {args.resamples:,} resamples; median of {args.runs}")
    print(f"read (2 runs):           {t_read:.2f} s")
    print(f"pair + tests:            {t_pair:.2f} s ({t_pair / len(result.rows) * 1000:.0f} ms per row)")
    print(f"compare_runs total:      {t_total:.2f} s")
    print(f"CLI end to end:          {t_cli:.2f} s")
    print(f"OVERALL: {overall.verdict}")


if __name__ == "__main__":
    main()
