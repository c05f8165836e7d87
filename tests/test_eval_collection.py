"""The R1-Distill-Math-Test case as one command: MATH-500 + GPQA-Diamond + AIME24 = 728
questions in one eval, with micro/macro/weighted averages computed exactly."""
from __future__ import annotations

import csv
import json

import pytest

from conftest import SHARED, run_cli

PLUGINS = {"LMGAUGE_PLUGINS": "math_500,gpqa_diamond,aime24,openai"}


def write_gpqa_csv(path, n=198):
    """GPQA-format questions written for the tests (no real GPQA text)."""
    domains = ["Physics", "Chemistry", "Biology"]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2",
                    "Incorrect Answer 3", "High-level domain"])
        for i in range(n):
            w.writerow([f"Synthetic test question {i}: which value is right?", f"right {i}", f"wrong a{i}",
                        f"wrong b{i}", f"wrong c{i}", domains[i % 3]])


def test_r1_collection_728_questions_one_command(tmp_path, eval_server):
    aime = SHARED / "data" / "aime24.jsonl"
    if not aime.exists():
        pytest.skip(f"shared data missing: {aime}")
    gpqa = tmp_path / "gpqa_diamond.csv"
    write_gpqa_csv(gpqa)
    coll = tmp_path / "r1.yaml"
    coll.write_text(f"name: R1-Distill-Math-Test\nsampler: stratified\nbenchmarks:\n"
                    f"  - {{name: math_500, weight: 500}}\n"
                    f"  - {{name: gpqa_diamond, weight: 198, dataset_path: {gpqa}}}\n"
                    f"  - {{name: aime24, weight: 30, dataset_path: {aime}}}\n")
    from lmgauge.plugins import PluginManager

    pm = PluginManager(only=["math_500", "gpqa_diamond", "aime24"])
    samples = {b: pm.get("benchmarks", b).load(p) for b, p in
               (("math_500", None), ("gpqa_diamond", str(gpqa)), ("aime24", str(aime)))}
    answers, right = {}, {}
    for b, items in samples.items():
        right[b] = []
        for i, s in enumerate(items):
            ok = i % 3 == 0
            if b == "gpqa_diamond":
                letter = s.gold if ok else ("B" if s.gold == "A" else "A")
                answers[s.prompt] = [f"<think>ANSWER: {s.gold}</think>Reasoned.\nANSWER: {letter}"]
            else:
                answers[s.prompt] = [f"The answer is \\boxed{{{s.gold if ok else '-31337'}}}."]
            right[b].append(1.0 if ok else 0.0)
    server = eval_server({"model": "r1", "answers": answers})
    out = tmp_path / "run"
    proc = run_cli("eval", "--base-url", server.base_url, "--model", "r1", "--collection", str(coll),
                   "--concurrency", "64", "--output", str(out), "--no-progress", env=PLUGINS, check=True, timeout=300)
    report = json.loads((out / "report.json").read_text())
    rows = {(r["benchmark"], r["subset"], r["metric"]): r for r in report["results"]}
    counts = {b: len(v) for b, v in right.items()}
    assert counts == {"math_500": 500, "gpqa_diamond": 198, "aime24": 30}
    means = {b: sum(v) / len(v) for b, v in right.items()}
    for b in right:
        assert rows[(b, "OVERALL", "AveragePass@1")]["score"] == pytest.approx(means[b], abs=1e-6)
    micro = rows[("R1-Distill-Math-Test", "OVERALL", "AveragePass@1")]
    assert micro["count"] == 728
    assert micro["score"] == pytest.approx(sum(sum(v) for v in right.values()) / 728, abs=1e-6)
    assert rows[("R1-Distill-Math-Test", "MACRO", "AveragePass@1")]["score"] == pytest.approx(sum(means.values()) / 3, abs=1e-6)
    weighted = (500 * means["math_500"] + 198 * means["gpqa_diamond"] + 30 * means["aime24"]) / 728
    assert rows[("R1-Distill-Math-Test", "WEIGHTED", "AveragePass@1")]["score"] == pytest.approx(weighted, abs=1e-6)
    assert len((out / "samples.jsonl").read_text().splitlines()) == 728
    assert "R1-Distill-Math-Test" in proc.stdout
