"""Benchmark loading: bundled MATH-500, AIME from files, GPQA from a CSV we write, hub errors."""
from __future__ import annotations

import csv
import json
from collections import Counter

import pytest

from conftest import SHARED, assert_one_line_error, run_cli
from lmgauge.errors import DataError
from lmgauge_benchmarks.aime import Aime24, Aime25
from lmgauge_benchmarks.gpqa import GPQADiamond, shuffle_choices
from lmgauge_benchmarks.math_500 import Math500
from lmgauge.types import Completion


def test_math500_bundled_counts_and_prompt():
    samples = Math500().load()
    assert len(samples) == 500 and len({s.id for s in samples}) == 500
    levels = Counter(s.subsets[0] for s in samples)
    assert levels == {"Level 1": 43, "Level 2": 90, "Level 3": 105, "Level 4": 128, "Level 5": 134}
    subjects = Counter(s.subsets[1] for s in samples)
    assert subjects["Algebra"] == 124 and subjects["Counting & Probability"] == 38 and len(subjects) == 7
    s = samples[0]
    assert s.prompt == s.question + "\nPlease reason step by step, and put your final answer within \\boxed{}."
    assert Math500().score(s, Completion(f"\\boxed{{{s.gold}}}")).correct


@pytest.mark.parametrize("cls,fname,first_gold", [(Aime24, "aime24.jsonl", None), (Aime25, "aime25.jsonl", "70")])
def test_aime_from_files(cls, fname, first_gold):
    path = SHARED / "data" / fname
    if not path.exists():
        pytest.skip(f"shared data missing: {path}")
    samples = cls().load(str(path))
    assert len(samples) == 30
    subs = Counter(s.subsets[0] for s in samples)
    assert subs == {f"AIME{cls.year}-I": 15, f"AIME{cls.year}-II": 15}
    assert all("Please reason step by step" in s.prompt and s.prompt.count("Please reason") == 1 for s in samples)
    if first_gold:
        assert samples[0].gold == first_gold
    padded = [s for s in samples if s.gold.startswith("0")]
    if cls is Aime24:
        assert padded, "aime24 keeps zero-padded answers"
        s = padded[0]
        assert cls().score(s, Completion(f"\\boxed{{{int(s.gold)}}}")).correct


def write_csv(path, rows):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3",
                    "High-level domain"])
        w.writerows(rows)


def test_gpqa_from_csv_shuffle_is_stable(tmp_path):
    rows = [[f"Made-up question {i}?", f"good {i}", f"bad1 {i}", f"bad2 {i}", f"bad3 {i}", ["Physics", "Biology"][i % 2]]
            for i in range(40)]
    path = tmp_path / "g.csv"
    write_csv(path, rows)
    a, b = GPQADiamond().load(str(path)), GPQADiamond().load(str(path))
    assert [s.prompt for s in a] == [s.prompt for s in b]
    assert len({s.gold for s in a}) == 4, "the right answer lands on every letter"
    s = a[0]
    assert f"{s.gold}) good 0" in s.prompt and "ANSWER: $LETTER" in s.prompt
    assert Counter(x.subsets[0] for x in a) == {"Physics": 20, "Biology": 20}
    # a fixed, machine-independent permutation
    assert shuffle_choices("Made-up question 0?", ["w", "x", "y", "z"]) == shuffle_choices("Made-up question 0?", ["w", "x", "y", "z"])
    assert GPQADiamond().score(s, Completion(f"<think>ANSWER: Z</think>\nANSWER: {s.gold}")).correct


def test_hub_offline_and_bad_files_are_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for bench, name in ((GPQADiamond(), "gpqa_diamond"), (Aime25(), "aime25")):
        with pytest.raises(DataError) as err:
            bench.load()
        assert f"--dataset-path {name}=" in err.value.line()
    bad = tmp_path / "x.xlsx"
    bad.write_text("x")
    with pytest.raises(DataError, match="unknown file format"):
        Math500().load(str(bad))
    broken = tmp_path / "b.jsonl"
    broken.write_text('{"problem": "1+1", "answer": "2"}\n{oops\n')
    with pytest.raises(DataError, match="line 2 is not valid JSON"):
        Math500().load(str(broken))
    nofield = tmp_path / "n.csv"
    write_csv(nofield, [])
    nofield.write_text("Q,A\nx,y\n")
    with pytest.raises(DataError, match="none of the fields"):
        GPQADiamond().load(str(nofield))
    proc = run_cli("eval", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--benchmark", "gpqa_diamond",
                   env={"LMGAUGE_PLUGINS": "gpqa_diamond,openai", "HF_HUB_OFFLINE": "1"})
    assert_one_line_error(proc, "gpqa_diamond", "--dataset-path gpqa_diamond=")
