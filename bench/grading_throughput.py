"""Grading throughput of math_500 (lmgauge_benchmarks), measured the way the core grades.

The core sends (benchmark, sample, completion) batches of 64 to a pool of spawned worker
processes (core/lmgauge/eval/grading_pool.py) and calls ``benchmark.score`` in each worker's main
thread. This script does the same with a synthetic but realistic workload built from the bundled
MATH-500 problems: every response has a ~6 kB thinking block with decoy ``\\boxed{}``s, then an
answer part. Per (question, repeat) the kind of answer is drawn with a fixed seed:

    55% correct, same form as the gold       15% correct, another form (\\dfrac, spaces, \\left/\\right)
    20% wrong (another problem's answer or an off-by-one number)     10% no answer (cut off inside <think>)

and the verdict the grader should give is checked for every sample, so the figure is for correct
grading, not just fast grading. Worker start-up (spawn + importing sympy/math-verify) is timed
separately from steady-state grading.

    python bench/grading_throughput.py [--workers 2] [--repeats 4] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from lmgauge.types import Completion
from lmgauge_benchmarks.math_500 import Math500

BATCH = 64
WORDS = ("so we need the sum of the roots", "let me check the case n = 2", "this factors nicely",
         "substituting back gives", "wait, that is not right", "by symmetry the two halves match",
         "the discriminant must be nonnegative", "hence the area is", "consider the remainder mod 9")


def _thinking(rng: random.Random, decoy: str) -> str:
    parts, size = [], 0
    while size < 6000:
        w = rng.choice(WORDS)
        if rng.random() < 0.15:
            w += f" $x^{rng.randint(2, 9)} + {rng.randint(1, 99)}$"
        if rng.random() < 0.03:
            w += f", maybe \\boxed{{{decoy}}}?"
        parts.append(w)
        size += len(w) + 2
    return ". ".join(parts)


def _variant(gold: str) -> str:
    if "\\frac" in gold:
        return gold.replace("\\frac", "\\dfrac")
    if gold.startswith("(") and gold.endswith(")"):
        return "\\left" + gold[:-1] + "\\right)"
    if re.fullmatch(r"-?\d+", gold):
        return f" {gold} "
    return gold.replace(",", ", ")


def _wrong(rng: random.Random, gold: str, other: str) -> str:
    if re.fullmatch(r"-?\d+", gold) and rng.random() < 0.5:
        return str(int(gold) + rng.choice((-1, 1)))
    return other


def workload(repeats: int, seed: int = 1234):
    """[(sample, completion, expected_correct or None)]; None = verdict not asserted (a 'wrong'
    answer with the same digits as the gold, which may be the same value: "\\frac14")."""
    samples = Math500().load()
    rng = random.Random(seed)
    out = []
    for r in range(repeats):
        for i, s in enumerate(samples):
            other = samples[(i * 7 + r + 1) % len(samples)].gold
            u = rng.random()
            think = _thinking(rng, other)
            if u < 0.55:
                text, ok = f"<think>{think}</think>\n\nTherefore the answer is $\\boxed{{{s.gold}}}$.", True
            elif u < 0.70:
                text, ok = f"<think>{think}</think>\n\n**Final Answer**\n\\[\n\\boxed{{{_variant(s.gold)}}}\n\\]", True
            elif u < 0.90:
                wrong = _wrong(rng, s.gold, other)
                text = f"<think>{think}</think>\nSo the answer is \\boxed{{{wrong}}}."
                # not asserted when the two could be the same value written differently
                ok = None if sorted(re.findall(r"\d", wrong)) == sorted(re.findall(r"\d", s.gold)) else False
            else:
                text, ok = f"<think>{think} and so on, and then the output was cut at max_tokens", False
            out.append((s, Completion(text=text, finish_reason="stop"), ok))
    return out


def _grade_batch(items):
    bench = Math500()
    return [(bench.score(s, c).value, ok) for s, c, ok in items]


def _warm(_=None) -> int:
    from lmgauge.grading import math_equal

    math_equal("x+1", "1+x")  # imports sympy/latex2sympy, builds math-verify's parsers
    time.sleep(0.2)  # so that the warm-up calls spread over all workers
    return os.getpid()


def run(workers: int, items) -> dict:
    batches = [items[i:i + BATCH] for i in range(0, len(items), BATCH)]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        pids = set()
        while len(pids) < workers:  # make sure every worker is up and warm
            pids |= set(pool.map(_warm, range(workers * 2)))
        t1 = time.perf_counter()
        results = [r for batch in pool.map(_grade_batch, batches) for r in batch]
        t2 = time.perf_counter()
    mismatches = sum(1 for value, ok in results if ok is not None and (value >= 1.0) is not ok)
    return {"workers": workers, "samples": len(items), "startup_s": round(t1 - t0, 3),
            "grading_s": round(t2 - t1, 3), "samples_per_s": round(len(items) / (t2 - t1), 1),
            "samples_per_s_incl_startup": round(len(items) / (t2 - t0), 1),
            "checked": sum(1 for _, ok in results if ok is not None), "mismatches": mismatches,
            "correct_rate": round(sum(v for v, _ in results) / len(results), 4)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=4, help="responses per MATH-500 question (default 4 = 2,000 samples)")
    ap.add_argument("--json", help="also write the result here")
    args = ap.parse_args()
    items = workload(args.repeats)
    res = run(args.workers, items)
    res.update(machine=f"{platform.machine()} {os.cpu_count()} cpus, Python {platform.python_version()}")
    print(json.dumps(res, indent=1))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=1)
    return 0 if res["mismatches"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
