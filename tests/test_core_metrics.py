"""Metrics, confidence intervals, collection sampling and the journal, on known numbers."""
from __future__ import annotations

import json
import math
from itertools import combinations

import pytest

from lmgauge.eval.collection import Collection, CollectionEntry, _largest_remainder, load_collection, sample_collection
from lmgauge.runfolder import JournalWriter, SampleRecord, read_samples
from lmgauge.eval.metrics import AveragePass1, MajAtK, PassAtK, confidence_interval, pass_at_k
from lmgauge.eval.report import CollectionSpec, build_results
from lmgauge.errors import ConfigError


def brute_pass_at_k(n, c, k):
    items = [1] * c + [0] * (n - c)
    subsets = list(combinations(range(n), k))
    return sum(1 for s in subsets if any(items[i] for i in s)) / len(subsets)


@pytest.mark.parametrize("n,c,k", [(5, 0, 1), (5, 1, 1), (5, 2, 3), (10, 3, 5), (8, 8, 4), (6, 1, 6)])
def test_pass_at_k_matches_enumeration(n, c, k):
    assert pass_at_k(n, c, k) == pytest.approx(brute_pass_at_k(n, c, k))


def test_per_question_metrics():
    assert AveragePass1().per_question([1, 0, 1, 0], ["a"] * 4, 4) == 0.5
    assert PassAtK().per_question([0, 0, 1, 0], ["a"] * 4, 4) == 1.0
    assert PassAtK().label(4) == "pass@4"
    # majority answer "x" (2 votes) is wrong, "y" right once
    assert MajAtK().per_question([0, 1, 0, 0], ["x", "y", "x", None], 4) == 0.0
    assert MajAtK().per_question([1, 0, 1], ["7", "8", "7"], 3) == 1.0
    # tie: earliest answer reaching the top count wins
    assert MajAtK().per_question([0, 1], ["a", "b"], 2) == 0.0
    assert MajAtK().per_question([0, 0], [None, ""], 2) == 0.0


def test_wilson_and_t_intervals():
    lo, hi = confidence_interval([1.0] * 42 + [0.0] * 58)
    # Wilson 95% for 42/100
    assert lo == pytest.approx(0.32798, abs=1e-4) and hi == pytest.approx(0.51794, abs=1e-4)
    lo, hi = confidence_interval([0.2, 0.4, 0.6, 0.8])
    mean, sd = 0.5, math.sqrt(sum((x - 0.5) ** 2 for x in [0.2, 0.4, 0.6, 0.8]) / 3)
    assert lo == pytest.approx(mean - 3.182446 * sd / 2, abs=1e-4)
    assert confidence_interval([1.0]) == pytest.approx((0.2065, 1.0), abs=1e-3)


def rec(b, sid, r, score, subsets=(), extracted="1", error=None, truncated=False):
    return SampleRecord(benchmark=b, sample_id=sid, repeat=r, score=score, extracted=extracted,
                        subsets=list(subsets), error=error, truncated=truncated)


def test_results_rows_subsets_errors_and_collection():
    records = [rec("a", "1", 0, 1.0, ["x"]), rec("a", "1", 1, 0.0, ["x"]),
               rec("a", "2", 0, 1.0, ["y"]), rec("a", "2", 1, 1.0, ["y"]),
               rec("b", "1", 0, 0.0), rec("b", "1", 1, None, error="HTTP 500"),
               rec("b", "2", 0, 1.0, truncated=True), rec("b", "2", 1, 1.0)]
    metrics = [AveragePass1(), PassAtK(), MajAtK()]
    results, summaries = build_results(records, metrics, 2, {"a": 2, "b": 2}, CollectionSpec("mix", {"a": 3, "b": 1}))
    rows = {(r.benchmark, r.subset, r.metric): r for r in results}
    assert rows[("a", "OVERALL", "AveragePass@1")].score == 0.75
    assert rows[("a", "x", "AveragePass@1")].score == 0.5
    assert rows[("a", "OVERALL", "pass@2")].score == 1.0
    assert rows[("b", "OVERALL", "AveragePass@1")].score == 0.5  # q1: 0 (error excluded), q2: 1
    assert rows[("mix", "OVERALL", "AveragePass@1")].score == pytest.approx((0.5 + 1 + 0 + 1) / 4)
    assert rows[("mix", "MACRO", "AveragePass@1")].score == pytest.approx((0.75 + 0.5) / 2)
    assert rows[("mix", "WEIGHTED", "AveragePass@1")].score == pytest.approx(0.75 * 0.75 + 0.25 * 0.5)
    b = {s.benchmark: s for s in summaries}["b"]
    assert (b.errors, b.graded, b.truncated) == (1, 3, 1)
    assert any("max_tokens" in w for w in b.warnings) and any("--resume" in w for w in b.warnings)


def test_largest_remainder_and_samplers(tmp_path):
    assert _largest_remainder(10, [1, 1, 1], [100, 100, 100]) == [4, 3, 3]
    assert _largest_remainder(100, [1, 1], [10, 1000]) == [10, 90]  # capped share flows to the other
    assert sum(_largest_remainder(728, [500, 198, 30], [500, 198, 30])) == 728
    pools = {"a": list(range(500)), "b": list(range(198)), "c": list(range(30))}
    coll = Collection("r1", "stratified", 1, None, [CollectionEntry("a"), CollectionEntry("b"), CollectionEntry("c")])
    assert [len(v) for v in sample_collection(coll, pools).values()] == [500, 198, 30]
    coll = Collection("w", "weighted", 7, 100, [CollectionEntry("a", 2), CollectionEntry("b", 1), CollectionEntry("c", 1)])
    picked = sample_collection(coll, pools)
    assert [len(v) for v in picked.values()] == [50, 25, 25]
    assert picked == sample_collection(coll, pools)  # seeded
    assert picked["a"] == sorted(picked["a"])  # dataset order kept
    coll = Collection("u", "uniform", 7, 90, [CollectionEntry("a"), CollectionEntry("b"), CollectionEntry("c")])
    assert [len(v) for v in sample_collection(coll, pools).values()] == [30, 30, 30]
    f = tmp_path / "c.yaml"
    f.write_text("name: R1\nsampler: weighted\nbenchmarks: [math_500]\n")
    with pytest.raises(ConfigError, match="needs a `size`"):
        load_collection(str(f))
    f.write_text("benchmarks:\n  - {name: a, weight: 2}\n  - b\n")
    c = load_collection(str(f))
    assert c.name == "c" and [(e.name, e.weight) for e in c.entries] == [("a", 2.0), ("b", 1.0)]


def test_journal_survives_torn_line_and_supersedes(tmp_path):
    p = tmp_path / "samples.jsonl"
    j = JournalWriter(p)
    j.append(rec("a", "1", 0, None, error="HTTP 500"))
    j.append(rec("a", "2", 0, 1.0))
    j.close()
    with open(p, "ab") as fh:
        fh.write(b'{"benchmark": "a", "sample_id": "3", "rep')  # crash mid-write
    j = JournalWriter(p)
    j.append(rec("a", "1", 0, 1.0))
    j.close()
    got = {(r.sample_id, r.score) for r in read_samples(p)}
    assert got == {("1", 1.0), ("2", 1.0)}
    assert all(json.loads(l) for l in p.read_text().splitlines()[:2])
