"""The cost of the reasoning-length analytics (lmgauge.eval.lengths) on an R1-scale run folder,
side by side with building the report from the same journal.

The run folder is the DeepSeek-R1 report's set at 5 repeats: MATH-500 (the bundled 500
problems, their real subsets and golds) + 198 GPQA-style and 30 AIME-style questions = 728
questions × 5 = 3,640 samples, written with ``lmgauge.runfolder.JournalWriter``. Each response
is ``<think>`` + about 40 KB of thinking (uniform 20-60 KB; 8% are cut off at ~100 KB inside
the thinking, ``finish_reason: length``) + an answer part. The thinking holds reflection
markers at R1-like rates, decoy ``\\boxed{}`` candidates and "the answer is X" statements, the
gold for some samples. Each record is graded by the benchmark's own ``score`` and carries what
the grading worker would add: token counts (cl100k_base), reflections and first-correct, made
by ``lengths.analyze`` (timed: the per-sample cost at grading time).

Then, alternating rounds in one process (the journal in the page cache for all):

- ``build_report`` (the wired path: what the runner, ``lmgauge regrade`` and ``--resume`` call
  at the end) with ``analytics=False`` against ``analytics=True`` (the default: one read of the
  journal feeds ``build_results`` and ``LengthAnalytics``, then ``annotate``);
- ``report``: ``build_results(read_samples(journal), ...)``;
- ``report + analytics``: the same single pass with ``LengthAnalytics.feed`` in between, then
  ``annotate`` (lengths per benchmark and subset, the budget curve 1,024…32,768);
- in memory (records already read): ``build_results`` alone vs the analytics alone;

timed as CPU seconds of the process (the machine is shared; wall time is noisy), median of
``--rounds`` alternating rounds;
- for old runs without stored reflection counts: counting them from the texts at report time;
- with ``--pool K``: K of the samples graded in the runner's ``GradingPool`` (2 spawned
  workers, batches of 64), verdicts only against verdicts + analytics (``assess``): wall time
  and the workers' CPU.

    .venv/bin/python bench/lengths_cost.py [--dir /tmp/lengths-bench] [--rounds 5] [--pool 728] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import string
import sys
import time
from pathlib import Path

from lmgauge.eval.lengths import LengthAnalytics, analyze, choose_tokenizer, count_reflections, reasoning_text
from lmgauge.eval.metrics import AveragePass1, MajAtK, PassAtK
from lmgauge.config import EvalConfig
from lmgauge.eval.grading_pool import AnalyticsSettings, GradingPool, completion_of, sample_of
from lmgauge.eval.report import build_report, build_results
from lmgauge.runfolder import JournalWriter, SampleRecord, read_samples
from lmgauge.types import Completion, Sample
from lmgauge_benchmarks.aime import Aime24
from lmgauge_benchmarks.gpqa import GPQADiamond
from lmgauge_benchmarks.math_500 import Math500

REPEATS = 5
MAX_TOKENS = 32768
SENTENCES = (
    "So we need the sum of the roots of this polynomial.", "Let me write the equation again carefully.",
    "Substituting $x = 2$ gives $4a + 2b + c = 7$.", "By symmetry the two halves contribute equally.",
    "The discriminant must be nonnegative, so $b^2 - 4ac \\ge 0$.", "Consider the remainder modulo 9.",
    "This factors as $(x - 1)(x^2 + x + 1)$.", "Then the area is $\\frac{1}{2} \\cdot 6 \\cdot 4 = 12$.",
    "Expanding, we get $x^2 + 2xy + y^2$.", "Now I count the cases where $n$ is even.",
    "The angle at $B$ is $180^\\circ - 2\\theta$.", "So the probability is the number of good outcomes over 36.",
    "Using Vieta's formulas, the product of the roots is $-\\frac{d}{a}$.", "I should simplify the fraction first.",
)
REFLECTIONS = ("Wait, that doesn't look right.", "Hmm, let me think again.", "Alternatively, use coordinates.",
               "But wait, I should double-check the sign.", "Actually, the constraint is strict.",
               "Let me verify with a small case.", "Hold on, I made a mistake in the expansion.")


def thinking(rng: random.Random, size: int, gold: str, decoy: str, gold_at: float | None) -> str:
    """About ``size`` characters of R1-style thinking: a reflection every ~12 sentences, a
    decoy candidate now and then, and the gold stated once at ``gold_at`` (a fraction of the
    way through), if given."""
    parts, n, stated = [], 0, gold_at is None
    while n < size:
        r = rng.random()
        if r < 0.08:
            s = rng.choice(REFLECTIONS)
        elif r < 0.085:
            s = f"Maybe the answer is {decoy}." if rng.random() < 0.5 else f"So tentatively \\boxed{{{decoy}}}."
        else:
            s = rng.choice(SENTENCES)
        if not stated and n >= gold_at * size:
            s = f"So the answer is \\boxed{{{gold}}}."
            stated = True
        parts.append(s)
        n += len(s) + 1
    return " ".join(parts)


def questions(rng: random.Random) -> list[tuple[object, Sample, str]]:
    """(benchmark, sample, a wrong answer) for the 728 questions."""
    out = []
    math = Math500()
    for s in math.load():
        out.append((math, s, "-987654"))
    gpqa = GPQADiamond()
    domains = ("Physics", "Chemistry", "Biology")
    for i in range(198):
        gold = "ABCD"[i % 4]
        out.append((gpqa, Sample(f"g{i}", "gpqa_diamond", "p", gold, subsets=(domains[i % 3],)), "ABCD"[(i + 1) % 4]))
    aime = Aime24()
    for i in range(30):
        gold = str(rng.randint(0, 999))
        out.append((aime, Sample(f"a{i}", "aime24", "p", gold), str((int(gold) + 7) % 1000)))
    return out


def make_run(folder: Path, seed: int = 0) -> dict:
    """Write the journal; return the per-sample timings of grading and of the analytics."""
    rng = random.Random(seed)
    tok = choose_tokenizer("cl100k_base").tokenizer
    journal = folder / "samples.jsonl"
    folder.mkdir(parents=True, exist_ok=True)
    if journal.exists():
        journal.unlink()
    writer = JournalWriter(journal)
    t_score = t_analyze = 0.0
    n = 0
    size_total = 0
    for bench, sample, wrong in questions(rng):
        for rep in range(REPEATS):
            right = rng.random() < 0.7
            truncated = rng.random() < 0.08
            gold_txt = str(sample.gold) if bench.name != "gpqa_diamond" else sample.gold
            final = gold_txt if right else wrong
            gold_at = rng.random() if rng.random() < 0.6 else None
            size = 100_000 if truncated else rng.randint(20_000, 60_000)
            body = thinking(rng, size, gold_txt, wrong, gold_at)
            if truncated:
                response = "<think>" + body
            elif bench.name == "gpqa_diamond":
                response = f"<think>{body}</think>\n\nThe {rng.choice(string.ascii_lowercase)} option fits.\n\nANSWER: {final}"
            else:
                response = f"<think>{body}</think>\n\nPutting it together, the answer is $\\boxed{{{final}}}$."
            size_total += len(response)
            t0 = time.process_time()
            score = bench.score(sample, Completion(text=response))
            t1 = time.process_time()
            got = analyze(bench, sample, response, None, tokenizer=tok)
            t2 = time.process_time()
            t_score += t1 - t0
            t_analyze += t2 - t1
            rec = SampleRecord(benchmark=sample.benchmark, sample_id=sample.id, repeat=rep, subsets=list(sample.subsets),
                               question="q", prompt="p", gold=sample.gold, response=response,
                               finish_reason="length" if truncated else "stop", truncated=truncated, latency_s=60.0,
                               attempts=1).with_score(score)
            writer.append(got.apply(rec))
            n += 1
    writer.close()
    return {"samples": n, "mean_response_kb": size_total / n / 1000, "journal_mb": journal.stat().st_size / 1e6,
            "score_ms_per_sample": 1000 * t_score / n, "analyze_ms_per_sample": 1000 * t_analyze / n}


PLANNED = {"math_500": 500, "gpqa_diamond": 198, "aime24": 30}
METRICS = [AveragePass1(), PassAtK(), MajAtK()]


CONFIG = EvalConfig(model="bench-model", benchmark=list(PLANNED), repeats=REPEATS, max_tokens=MAX_TOKENS)


def built(journal: Path, analytics: bool):
    return build_report(read_samples(journal), config=CONFIG, metrics=METRICS, planned=PLANNED, analytics=analytics)


def pool_round(records: list[SampleRecord], analytics: bool) -> tuple[float, float]:
    """(wall seconds, workers' CPU seconds) of grading ``records`` in a fresh 2-worker pool."""
    import asyncio
    import resource

    benches = {"math_500": Math500(), "gpqa_diamond": GPQADiamond(), "aime24": Aime24()}

    async def go():
        pool = GradingPool(2, analytics=AnalyticsSettings("cl100k_base") if analytics else None)
        pool.start()
        await asyncio.gather(*(asyncio.wrap_future(f) for f in pool._warm))
        # the workers load the tokenizer on first use: warm them with one sample each
        await asyncio.gather(*(pool.assess(benches[r.benchmark], sample_of(r), completion_of(r)) for r in records[:2]))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        try:
            await asyncio.gather(*(pool.assess(benches[r.benchmark], sample_of(r), completion_of(r)) for r in records))
            wall = time.perf_counter() - t0
        finally:
            pool.close()  # waits for the workers: their CPU is counted now
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)

    return asyncio.run(go())


def report_only(journal: Path):
    return build_results(read_samples(journal), METRICS, REPEATS, PLANNED)


def report_with_analytics(journal: Path):
    acc = LengthAnalytics()
    results, summaries = build_results(acc.feed(read_samples(journal)), METRICS, REPEATS, PLANNED)
    acc.annotate(summaries, MAX_TOKENS, repeats=REPEATS)
    return results, summaries


def analytics_only(records: list[SampleRecord]):
    acc = LengthAnalytics()
    for r in records:
        acc.add(r)
    from lmgauge.runfolder import BenchmarkSummary

    summaries = [BenchmarkSummary(b) for b in PLANNED]
    acc.annotate(summaries, MAX_TOKENS, repeats=REPEATS)
    return summaries


def reflections_from_text(records: list[SampleRecord]) -> int:
    return sum(count_reflections(reasoning_text(r.response, r.reasoning)) for r in records)


def timed(fn, *args) -> float:
    """CPU seconds of this process (other agents share the machine's 2 cores, which makes
    wall time noisy; the work is single-threaded, so CPU time is its cost)."""
    t0 = time.process_time()
    fn(*args)
    return time.process_time() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="/tmp/lengths-bench")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--reuse", action="store_true", help="keep an existing journal in --dir")
    ap.add_argument("--pool", type=int, default=0, help="also grade this many samples in the GradingPool")
    ap.add_argument("--json")
    args = ap.parse_args()
    folder = Path(args.dir)
    journal = folder / "samples.jsonl"
    made = None
    if not (args.reuse and journal.exists()):
        t0 = time.perf_counter()
        made = make_run(folder)
        made["write_s"] = time.perf_counter() - t0
        print(f"wrote {made['samples']} samples, {made['journal_mb']:.0f} MB ({made['mean_response_kb']:.1f} KB "
              f"per response) in {made['write_s']:.0f} s; per sample: score {made['score_ms_per_sample']:.2f} ms, "
              f"analyze {made['analyze_ms_per_sample']:.2f} ms", flush=True)

    # the same figures either way
    _, plain = report_only(journal)
    _, annotated = report_with_analytics(journal)
    assert [(s.benchmark, s.graded, s.truncated) for s in plain] == [(s.benchmark, s.graded, s.truncated) for s in annotated]
    assert all(s.lengths and s.budget_curve for s in annotated)

    wired = built(journal, True)
    assert [b.lengths for b in wired.benchmarks] == [s.lengths for s in annotated]
    records = list(read_samples(journal))
    rows = {"build_report(analytics=False)": [], "build_report (with the analytics)": [],
            "report": [], "report + analytics": [], "build_results (in memory)": [], "analytics (in memory)": [],
            "reflections from the texts (in memory)": []}
    for _ in range(args.rounds):
        rows["build_report(analytics=False)"].append(timed(built, journal, False))
        rows["build_report (with the analytics)"].append(timed(built, journal, True))
        rows["report"].append(timed(report_only, journal))
        rows["report + analytics"].append(timed(report_with_analytics, journal))
        rows["build_results (in memory)"].append(timed(build_results, records, METRICS, REPEATS, PLANNED))
        rows["analytics (in memory)"].append(timed(analytics_only, records))
        rows["reflections from the texts (in memory)"].append(timed(reflections_from_text, records))
    med = {k: statistics.median(v) for k, v in rows.items()}
    for k, v in rows.items():
        print(f"{k:42s} median {1000 * med[k]:9.1f} ms CPU  (min {1000 * min(v):.1f}, max {1000 * max(v):.1f})")
    added = med["report + analytics"] / med["report"] - 1
    wired_added = med["build_report (with the analytics)"] / med["build_report(analytics=False)"] - 1
    print(f"added to the report's build (build_report, the wired path): {100 * wired_added:+.1f}% (goal ≤ 10%)")
    print(f"added to build_results' pass: {100 * added:+.1f}%; analytics alone in memory = "
          f"{100 * med['analytics (in memory)'] / med['build_results (in memory)']:.0f}% of build_results in memory")
    pool = None
    if args.pool:
        subset = records[: args.pool]
        pool = {"samples": len(subset), "verdicts": [], "verdicts + analytics": []}
        for _ in range(2):
            pool["verdicts"].append(pool_round(subset, False))
            pool["verdicts + analytics"].append(pool_round(subset, True))
        for k in ("verdicts", "verdicts + analytics"):
            wall = statistics.median(w for w, _ in pool[k])
            cpu = statistics.median(c for _, c in pool[k])
            print(f"GradingPool(2), {len(subset)} samples, {k:22s}: wall {wall:6.2f} s, workers' CPU {cpu:6.2f} s "
                  f"({1000 * cpu / len(subset):.2f} ms per sample)")
    math = next(s for s in annotated if s.benchmark == "math_500")
    ms = math.lengths
    print("math_500 lengths:", json.dumps({k: ms[k] for k in ("completion_tokens", "truncation_rate", "reflections_per_1k",
                                                            "first_correct")}))
    print("math_500 budget curve:", [(p["max_tokens"], p["score"]) for p in math.budget_curve])
    from lmgauge.eval.report import length_lines

    print("the terminal summary's lines:")
    for line in length_lines(wired.benchmarks):
        print("  " + line)
    if args.json:
        Path(args.json).write_text(json.dumps({"python": sys.version.split()[0], "machine": platform.machine(),
                                               "made": made, "median_s": med, "rounds": rows, "added": added,
                                               "wired_added": wired_added, "pool": pool}, indent=1))


if __name__ == "__main__":
    main()
