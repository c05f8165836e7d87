"""The hand-written grading set (tests/data/grading_cases.jsonl) through the real graders
(math-verify included), plus the thinking split and the benchmarks' loaders."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmgauge_benchmarks.grading import extract_choice, grade_choice, grade_integer, grade_math, split_thinking

CASES = [json.loads(l) for l in (Path(__file__).parent / "data" / "grading_cases.jsonl").read_text().splitlines() if l.strip()]
GRADERS = {"math": grade_math, "integer": grade_integer, "choice": grade_choice}


def test_the_set_is_large_and_varied():
    assert len(CASES) >= 80
    assert {c["kind"] for c in CASES} == set(GRADERS)
    assert sum(1 for c in CASES if not c["correct"]) >= 25


@pytest.mark.parametrize("case", CASES, ids=[f"{i}-{c['kind']}-{c.get('note') or c['response'][:30]}" for i, c in enumerate(CASES)])
def test_grading_case(case):
    score = GRADERS[case["kind"]](case["response"], case["gold"])
    assert score.correct is case["correct"], (case, score)
    if "extracted" in case:
        assert score.extracted == case["extracted"], (case, score)


def test_split_thinking():
    assert split_thinking("<think>a</think>b") == ("<think>a", "b")
    assert split_thinking("a</think>b")[1] == "b"
    assert split_thinking("<think>never closed")[1] == ""
    assert split_thinking("plain") == ("", "plain")
    assert extract_choice(None) is None
