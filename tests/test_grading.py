"""The hand-written grading set (tests/data/grading_cases.jsonl, source: make_grading_cases.py) through
the real graders (math-verify included), plus the thinking split, timeouts and threads."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

import lmgauge.grading as grading
from lmgauge.grading import (MV_TIMEOUT, UNCLOSED_THINK, extract_choice, extract_math_answer,
                                        grade_choice, grade_integer, grade_math, last_boxed, math_equal,
                                        normalize_math, split_thinking, to_integer)

CASES = [json.loads(l) for l in (Path(__file__).parent / "data" / "grading_cases.jsonl").read_text().splitlines() if l.strip()]
GRADERS = {"math": grade_math, "integer": grade_integer, "choice": grade_choice}


def test_the_set_is_large_and_varied():
    assert len(CASES) >= 80
    assert {c["kind"] for c in CASES} == set(GRADERS)
    assert sum(1 for c in CASES if not c["correct"]) >= 30
    text = " ".join(c["response"] for c in CASES)
    for needle in ("<think>", "</think>", "\\dfrac", "^\\circ", "\\text{ cm}", "[2,5)", "(1, 2)", "025",
                   "**Answer: D**", "\\boxed{A}", "(B)"):
        assert needle in text, needle


@pytest.mark.parametrize("case", CASES, ids=[f"{i}-{c['kind']}-{c.get('note') or c['response'][:30]}" for i, c in enumerate(CASES)])
def test_grading_case(case):
    score = GRADERS[case["kind"]](case["response"], case["gold"])
    assert score.correct is case["correct"], (case, score)
    if "extracted" in case:
        assert score.extracted == case["extracted"], (case, score)
    if score.extracted is None:
        assert score.detail in (grading.NO_ANSWER, UNCLOSED_THINK)


def test_split_thinking():
    assert split_thinking("<think>a</think>b") == ("<think>a", "b")
    assert split_thinking("a</think>b") == ("a", "b")
    assert split_thinking("<think>never closed") == ("<think>never closed", "")
    assert split_thinking("x <think>y") == ("x <think>y", "")
    assert split_thinking("<think>a</think>b<think>c") == ("<think>a<think>c", "b")
    assert split_thinking("plain") == ("", "plain")
    assert split_thinking(None) == ("", "")


def test_extraction_helpers():
    assert last_boxed("\\boxed{\\frac{1}{2}} and \\boxed{x^{2}}") == "x^{2}"
    assert last_boxed("\\boxed{\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}}") == "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}"
    assert last_boxed("\\boxed{a\\}b}") == "a\\}b"
    assert last_boxed("no box") is None and last_boxed(None) is None
    assert extract_math_answer("<think>\\boxed{1}</think>") is None
    assert extract_choice(None) is None and extract_choice("ANSWER: E", letters="ABCDE") == "E"
    assert extract_choice("ANSWER: E") is None
    assert to_integer("025") == 25 and to_integer("1{,}000") == 1000 and to_integer("\\frac{1}{2}") is None


def test_normalize_math():
    assert normalize_math("$\\dfrac{1}{2}$") == normalize_math("\\frac{1}{2}")
    assert normalize_math("\\left( 1, 2 \\right)") == "(1,2)"
    assert normalize_math("30^\\circ") == "30" and normalize_math("5\\text{ cm}^2") == "5"
    assert normalize_math("10,000.50") == "10000.5" and normalize_math("7.") == "7"
    assert normalize_math("x \\rightarrow y") == "x\\rightarrowy", "\\right inside \\rightarrow is kept"
    assert normalize_math("2m") == "2m", "a glued letter is not stripped as a unit"


def test_math_verify_timeout_is_recorded():
    score = grade_math("\\boxed{9^{9^{9^8}}}", "9^{9^{9^9}}", timeout_s=1)
    assert score.value == 0.0 and score.detail == MV_TIMEOUT and score.extracted == "9^{9^{9^8}}"


def test_math_verify_decides_what_the_fast_paths_cannot():
    assert math_equal("\\sqrt{18}", "3\\sqrt{2}") == (True, None)
    assert math_equal("7", "\\frac{1}{4}") == (False, None)  # exact rationals: no math-verify needed
    ok, detail = math_equal("\\frac{", "5")
    assert not ok


def test_grading_works_outside_the_main_thread():
    out = {}

    def work():
        out["math"] = grade_math("<think>x</think>\\boxed{\\sqrt{8}}", "2\\sqrt{2}")
        out["wrong"] = grade_math("\\boxed{x^2+3}", "(x+1)^2")

    t = threading.Thread(target=work)
    t.start()
    t.join(60)
    assert out["math"].correct and not out["wrong"].correct and out["wrong"].detail is None


def test_public_api_is_importable_by_other_plugins():
    for name in grading.__all__:
        assert hasattr(grading, name), name
