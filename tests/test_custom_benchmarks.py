"""custom_math and custom_mcq (lmgauge-benchmarks): questions from the user's own file.

Every accepted format and column spelling, grading through the real graders against
hand-computed verdicts, the reproducible --mcq-shuffle permutation, one-line errors that name
file, row and column, and end-to-end runs of ``lmgauge eval`` against the scripted server.
"""
from __future__ import annotations

import csv
import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import assert_one_line_error, run_cli
from lmgauge.errors import DataError
from lmgauge.plugins import PluginManager
from lmgauge.types import Completion
from lmgauge_benchmarks.custom import CustomMath, CustomMCQ, mcq_prompt, permute
from lmgauge_benchmarks.gpqa import gpqa_prompt
from lmgauge_benchmarks.math_500 import Math500, bundled_path, math_prompt

PLUGINS = {"LMGAUGE_PLUGINS": "custom_math,custom_mcq,openai"}


def write(path: Path, rows: list[dict], fmt: str | None = None) -> Path:
    """``rows`` as JSONL, JSON or CSV (by ``path``'s extension unless ``fmt``)."""
    fmt = fmt or path.suffix.lstrip(".")
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif fmt == "json":
        path.write_text(json.dumps(rows), encoding="utf-8")
    else:
        columns = list(dict.fromkeys(k for r in rows for k in r))
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, columns)
            w.writeheader()
            w.writerows(rows)
    return path


def mcq(options: dict | None = None) -> CustomMCQ:
    bench = CustomMCQ()
    if options is not None:
        bench.options = options  # what the core sets from --mcq-shuffle/--mcq-seed
    return bench


def load_error(bench, path) -> str:
    with pytest.raises(DataError) as info:
        bench.load(str(path))
    line = info.value.line()
    assert "\n" not in line
    return line


MATH_ROWS = [
    {"id": "q1", "question": "What is 2 + 2?", "answer": "4", "subset": "easy"},
    {"id": "q2", "question": "Write one half as a fraction.", "answer": "\\frac{1}{2}", "subset": "easy"},
    {"id": "q3", "question": "Solve $x^2 = 9$ for $x > 0$.", "answer": "3", "subset": "hard"},
]

# ------------------------------------------------------------------------- custom_math: loading


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv"])
def test_math_rows_in_each_format(tmp_path, fmt):
    path = write(tmp_path / f"m.{fmt}", MATH_ROWS)
    samples = CustomMath().load(str(path))
    assert [s.id for s in samples] == ["q1", "q2", "q3"]
    assert [s.gold for s in samples] == ["4", "\\frac{1}{2}", "3"]
    assert [s.subsets for s in samples] == [("easy",), ("easy",), ("hard",)]
    assert [s.benchmark for s in samples] == ["custom_math"] * 3
    for s, row in zip(samples, MATH_ROWS):
        assert s.question == row["question"]
        assert s.prompt == math_prompt(row["question"])
        assert s.prompt.endswith("Please reason step by step, and put your final answer within \\boxed{}.")


def test_math_problem_and_solution_columns_row_numbers_as_ids(tmp_path):
    rows = [
        {"Problem": "Halve 1.", "Solution": "Half of $1$ is $\\boxed{0.5}$, that is $\\boxed{\\frac{1}{2}}$."},
        {"Problem": "Nested?", "Solution": "So $\\boxed{\\frac{\\sqrt{2}}{2}}$."},
        {"Problem": "Short solution.", "Solution": " 7 "},
        {"Problem": "Answer wins.", "Solution": "\\boxed{1}", "Answer": "2"},
        {"Problem": "A number zero.", "Answer": 0},
    ]
    samples = CustomMath().load(str(write(tmp_path / "p.jsonl", rows)))
    assert [s.gold for s in samples] == ["\\frac{1}{2}", "\\frac{\\sqrt{2}}{2}", "7", "2", "0"]
    assert [s.id for s in samples] == ["1", "2", "3", "4", "5"], "without an id column the id is the row number"
    assert all(s.subsets == () for s in samples)
    # in a CSV whose answer column is empty on one row, that row falls back to its solution
    csv_rows = [{"question": "a", "answer": "1", "solution": ""}, {"question": "b", "answer": "", "solution": "\\boxed{5}"}]
    assert [s.gold for s in CustomMath().load(str(write(tmp_path / "p.csv", csv_rows)))] == ["1", "5"]


def test_subset_column_names_one_or_several_subsets(tmp_path):
    rows = [{"question": "a", "answer": "1", "subset": " algebra "}, {"question": "b", "answer": "2", "subset": ["x", "y"]},
            {"question": "c", "answer": "3", "subset": ""}, {"question": "d", "answer": "4"}]
    assert [s.subsets for s in CustomMath().load(str(write(tmp_path / "s.jsonl", rows)))] == [("algebra",), ("x", "y"), (), ()]


def test_math_reads_math500_rows_exactly_as_math_500_does(tmp_path):
    rows = [json.loads(line) for line in Path(bundled_path()).read_text().splitlines()[:25]]
    path = write(tmp_path / "m500.jsonl", rows)
    mine = CustomMath().load(str(path))
    theirs = Math500().load()[:25]
    assert [(s.prompt, s.gold, s.question) for s in mine] == [(s.prompt, s.gold, s.question) for s in theirs]


# (completion text, gold, expected score): worked out by hand, graded by the real grader
MATH_CASES = [
    ("So the answer is \\boxed{4}.", "4", 1.0),
    ("\\boxed{4.0}", "4", 1.0),
    ("\\boxed{5}", "4", 0.0),
    ("<think>maybe \\boxed{4}</think> no, \\boxed{5}", "4", 0.0),  # the thinking never counts
    ("<think>maybe \\boxed{5}</think> \\boxed{4}", "4", 1.0),
    ("The answer is 4.", "4", 1.0),
    ("\\boxed{0.5}", "\\frac{1}{2}", 1.0),
    ("\\boxed{\\dfrac{2}{4}}", "\\frac{1}{2}", 1.0),
    ("\\boxed{\\frac{1}{3}}", "\\frac{1}{2}", 0.0),
    ("\\boxed{x = 3}", "3", 1.0),
    ("I cannot tell.", "3", 0.0),
]


def test_math_scores_match_hand_computed_verdicts(tmp_path):
    golds = sorted({g for _, g, _ in MATH_CASES})
    path = write(tmp_path / "g.jsonl", [{"question": f"Q{i}", "answer": g} for i, g in enumerate(golds)])
    bench = CustomMath()
    by_gold = {s.gold: s for s in bench.load(str(path))}
    got = [bench.score(by_gold[g], Completion(text)).value for text, g, _ in MATH_CASES]
    assert got == [want for _, _, want in MATH_CASES]
    assert bench.score(by_gold["3"], Completion("I cannot tell.")).extracted is None
    # and graded exactly as math_500 grades
    m500 = Math500()
    assert [m500.score(by_gold[g], Completion(t)) for t, g, _ in MATH_CASES] == \
           [bench.score(by_gold[g], Completion(t)) for t, g, _ in MATH_CASES]


# ------------------------------------------------------------------------- custom_mcq: loading


def letter_rows() -> list[dict]:
    return [
        {"id": "m1", "question": "Which is a prime?", "A": "4", "B": "6", "C": "7", "D": "9", "answer": "C",
         "subset": "numbers"},
        {"id": "m2", "question": "Which colour has the longest wavelength?", "A": "blue", "B": "red",
         "C": "green", "D": "violet", "E": "ultraviolet", "answer": "red", "subset": "physics"},
        {"id": "m3", "question": "Is 1 > 0?", "A": "yes", "B": "no", "answer": "a", "subset": "numbers"},
    ]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json"])
def test_mcq_letter_columns(tmp_path, fmt):
    samples = mcq().load(str(write(tmp_path / f"q.{fmt}", letter_rows())))
    assert [s.id for s in samples] == ["m1", "m2", "m3"]
    assert [s.gold for s in samples] == ["C", "B", "A"]
    assert [s.meta["choices"] for s in samples] == [["4", "6", "7", "9"], ["blue", "red", "green", "violet", "ultraviolet"],
                                                   ["yes", "no"]]
    assert [s.subsets for s in samples] == [("numbers",), ("physics",), ("numbers",)]
    assert samples[1].prompt == mcq_prompt("Which colour has the longest wavelength?", samples[1].meta["choices"])
    assert "where LETTER is one of ABCDE." in samples[1].prompt and "\nE) ultraviolet" in samples[1].prompt
    assert "where LETTER is one of AB." in samples[2].prompt
    assert samples[0].question == "Which is a prime?\n\nA) 4\nB) 6\nC) 7\nD) 9"


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv"])
def test_mcq_choices_list(tmp_path, fmt):
    rows = [{"question": "Largest?", "choices": ["1", "10", "100"], "answer": "100"},
            {"question": "Ten letters", "choices": list("abcdefghij"), "answer": "J"}]
    if fmt == "csv":  # a CSV cell holds the list as JSON
        rows = [{**r, "choices": json.dumps(r["choices"])} for r in rows]
    samples = mcq().load(str(write(tmp_path / f"c.{fmt}", rows)))
    assert [s.gold for s in samples] == ["C", "J"]
    assert [s.id for s in samples] == ["1", "2"]
    assert samples[0].meta["choices"] == ["1", "10", "100"]
    assert "one of ABCDEFGHIJ." in samples[1].prompt and "\nJ) j" in samples[1].prompt


def test_mcq_answer_as_letter_or_text(tmp_path):
    choices = {"A": "Paris", "B": "Lyon", "C": "paris museum", "D": "Nice"}
    answers = {"B": "B", "b": "B", "(C)": "C", "D)": "D", "A.": "A", " Lyon ": "B", "nice": "D",
               "PARIS": "A", "paris museum": "C"}
    rows = [{"question": f"Q{i}", **choices, "answer": a} for i, a in enumerate(answers)]
    samples = mcq().load(str(write(tmp_path / "a.csv", rows)))
    assert [s.gold for s in samples] == list(answers.values())


def test_mcq_four_choices_prompt_and_grading_are_gpqas(tmp_path):
    rows = [{"question": "Which made-up particle decays fastest?", "A": "w2", "B": "w1", "C": "w3", "D": "right",
             "answer": "D"}]
    bench = mcq()
    (s,) = bench.load(str(write(tmp_path / "g.jsonl", rows)))
    assert s.prompt == gpqa_prompt("Which made-up particle decays fastest?", ["w2", "w1", "w3", "right"])
    # (response, gold letter, expected): by hand
    cases = [("ANSWER: D", 1.0), ("**Answer: D**", 1.0), ("ANSWER: B", 0.0), ("<think>ANSWER: D</think>\nANSWER: A", 0.0),
             ("<think>ANSWER: A</think>\nANSWER: D", 1.0), ("The answer is (D).", 1.0), ("ANSWER: E", 0.0), ("no idea", 0.0)]
    assert [bench.score(s, Completion(t)).value for t, _ in cases] == [want for _, want in cases]
    assert bench.score(s, Completion("ANSWER: E")).extracted is None, "E is not a letter of a 4-choice question"


def test_mcq_grades_letters_up_to_its_last_choice(tmp_path):
    rows = [{"question": "Five", "choices": list("vwxyz"), "answer": "z"},
            {"question": "Ten", "choices": [str(k) for k in range(10)], "answer": "9"}]
    bench = mcq()
    five, ten = bench.load(str(write(tmp_path / "l.jsonl", rows)))
    assert (five.gold, ten.gold) == ("E", "J")
    assert bench.score(five, Completion("ANSWER: E")).value == 1.0
    assert bench.score(five, Completion("ANSWER: e")).value == 1.0
    assert bench.score(five, Completion("ANSWER: F")).extracted is None
    assert bench.score(ten, Completion("The answer is (J)")).value == 1.0
    assert bench.score(ten, Completion("ANSWER: I")).value == 0.0


def test_mcq_rows_may_have_different_numbers_of_choices(tmp_path):
    rows = [{"question": "two", "A": "x", "B": "y", "C": "", "D": "", "answer": "B"},
            {"question": "four", "A": "p", "B": "q", "C": "r", "D": "s", "answer": "D"}]
    two, four = mcq().load(str(write(tmp_path / "v.csv", rows)))
    assert two.meta["choices"] == ["x", "y"] and four.meta["choices"] == ["p", "q", "r", "s"]


# ------------------------------------------------------------------------- permutation


def shuffle_rows(n: int) -> list[dict]:
    return [{"id": f"s{i}", "question": f"Made-up question {i}?", "A": f"right {i}", "B": f"wrong {i}a",
             "C": f"wrong {i}b", "D": f"wrong {i}c", "answer": "A"} for i in range(n)]


def test_mcq_shuffle_is_reproducible_by_seed_and_differs_across_seeds(tmp_path):
    path = str(write(tmp_path / "s.csv", shuffle_rows(40)))
    plain = mcq().load(path)
    assert [s.gold for s in plain] == ["A"] * 40, "the file's order unless --mcq-shuffle"
    assert [s.meta["choices"][0] for s in plain] == [f"right {i}" for i in range(40)]
    assert [s.prompt for s in mcq({"mcq_shuffle": False, "mcq_seed": 5}).load(path)] == [s.prompt for s in plain]

    seed1 = mcq({"mcq_shuffle": True, "mcq_seed": 1}).load(path)
    again = mcq({"mcq_shuffle": True, "mcq_seed": 1}).load(path)
    seed2 = mcq({"mcq_shuffle": True, "mcq_seed": 2}).load(path)
    assert [s.prompt for s in seed1] == [s.prompt for s in again]
    assert [s.meta["choices"] for s in seed1] != [s.meta["choices"] for s in seed2]
    for run in (seed1, seed2):
        assert {s.gold for s in run} == set("ABCD"), "the right answer lands on every letter"
        for i, s in enumerate(run):
            assert s.meta["choices"][ord(s.gold) - ord("A")] == f"right {i}"
            assert sorted(s.meta["choices"]) == sorted(plain[i].meta["choices"])
            assert f"{s.gold}) right {i}" in s.prompt
    # a question's order does not depend on where it is in the file
    moved = mcq({"mcq_shuffle": True, "mcq_seed": 1}).load(str(write(tmp_path / "r.csv", shuffle_rows(40)[::-1])))
    assert [s.prompt for s in moved] == [s.prompt for s in seed1][::-1]


def test_permutation_is_pinned_across_processes():
    # a fixed permutation: the same on every run, machine and Python version
    assert permute("Q?", ["a", "b", "c", "d"], 0, 1) == PINNED
    code = ("from lmgauge_benchmarks.custom import permute; "
            "print(permute('Q?', ['a', 'b', 'c', 'd'], 0, 1))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONHASHSEED": "123"}, check=True).stdout
    assert out.strip() == repr(PINNED)


PINNED = (["b", "a", "d", "c"], 1)


# ------------------------------------------------------------------------- bad files


def test_no_file_says_how_to_give_one():
    for bench, base in ((CustomMath(), "custom_math"), (CustomMCQ(), "custom_mcq")):
        with pytest.raises(DataError) as info:
            bench.load(None)
        assert f"--dataset-path {base}=FILE" in info.value.line()
        assert f"--benchmark NAME={base}:FILE" in info.value.line()


def test_bad_math_files_name_file_row_and_column(tmp_path):
    bench = CustomMath()
    missing = write(tmp_path / "missing.jsonl", [{"question": "a", "answer": "1"}, {"question": "b", "solutoin": "2"}])
    line = load_error(bench, missing)
    assert f"custom_math: {missing}, row 2 (line 2): no column answer or solution" in line
    assert "columns found: question, solutoin" in line

    path = tmp_path / "empty.csv"  # a blank line and a quoted two-line cell before the bad row
    path.write_text('question,answer\n"two\nlines",1\n\n  ,2\n', encoding="utf-8")
    assert f"{path}, row 2 (line 5), column question: is empty" in load_error(bench, path)

    dup = write(tmp_path / "dup.json", [{"id": "x", "question": "a", "answer": "1"}, {"question": "b", "answer": "2"},
                                        {"ID": "x", "question": "c", "answer": "3"}])
    assert f"{dup}, row 3, column ID: id 'x' repeats row 1" in load_error(bench, dup)

    clash = write(tmp_path / "clash.jsonl", [{"id": "2", "question": "a", "answer": "1"}, {"question": "b", "answer": "2"}])
    assert "row 2 (line 2), column id: id '2' repeats row 1" in load_error(bench, clash)

    reserved = write(tmp_path / "r.jsonl", [{"question": "a", "answer": "1", "subset": "OVERALL"}])
    assert "row 1 (line 1), column subset: the subset name OVERALL is reserved" in load_error(bench, reserved)


def test_bad_mcq_files_name_file_row_and_column(tmp_path):
    bench = mcq()
    base = {"question": "q", "A": "x", "B": "y", "C": "z", "D": "w"}
    cases = [
        ([base | {"answer": "A"}, base | {"answer": "E"}],
         "row 2 (line 3), column answer: letter E but the row has 4 choices (A-D)"),
        ([base | {"answer": "maybe"}], "row 1 (line 2), column answer: 'maybe' is neither a letter A-D nor the text of a choice"),
        ([base | {"answer": ""}], "row 1 (line 2), column answer: is empty"),
        ([{"question": "q", "A": "only", "answer": "A"}], "row 1 (line 2), column A: has 1 choice, a question needs at least 2"),
        ([{"question": "q", "A": "x", "B": "y", "C": "", "D": "w", "answer": "A"}],
         "row 1 (line 2), column C: is empty but column D is not"),
        ([{"question": "q", "A": "same", "B": "Same", "C": "same", "answer": "same"}],
         "row 1 (line 2), column answer: 'same' matches choices A and C"),
        ([{"question": "q", "A": "B", "B": "x", "answer": "B"}],
         "row 1 (line 2), column answer: 'B' is the letter B but also the text of choice A"),
        ([{"question": "q", "answer": "A"}], "row 1 (line 2): no choices: no columns A, B, ... and no column choices"),
        ([{"question": "q", "choices": "x or y", "answer": "x"}], "row 1 (line 2), column choices: is not a list of choices"),
        ([{"question": "", "A": "x", "B": "y", "answer": "A"}], "row 1 (line 2), column question: is empty"),
    ]
    for n, (rows, needle) in enumerate(cases):
        path = write(tmp_path / f"bad{n}.csv", rows)
        line = load_error(bench, path)
        assert line.startswith(f"custom_mcq: {path}, ") and needle in line, (needle, line)
    eleven = write(tmp_path / "eleven.jsonl", [{"question": "q", "choices": [str(k) for k in range(11)], "answer": "A"}])
    assert "row 1 (line 1), column choices: has 11 choices, at most 10 (A-J)" in load_error(bench, eleven)
    gap = write(tmp_path / "gap.jsonl", [{"question": "q", "choices": ["x", " ", "y"], "answer": "A"}])
    assert "row 1 (line 1), column choices: choice 2 is empty" in load_error(bench, gap)


def test_unreadable_files_are_one_line_naming_the_file(tmp_path):
    broken = tmp_path / "broken.csv"
    broken.write_bytes(b"question,answer\n\xff\xfe,1\n")
    line = load_error(CustomMath(), broken)
    assert line.startswith(f"custom_math: {broken}: cannot read it (UnicodeDecodeError")
    torn = tmp_path / "torn.jsonl"
    torn.write_text('{"question": "a", "answer": "1"}\n{"question": "b", "ans\n')
    assert f"custom_mcq: {torn}: line 2 is not valid JSON" in load_error(CustomMCQ(), torn)
    assert "no such file" in load_error(CustomMath(), tmp_path / "nope.jsonl")


# ------------------------------------------------------------------------- plugin contract


def test_one_entry_point_each_and_cheap_to_pickle(tmp_path):
    pm = PluginManager(only=["custom_math", "custom_mcq"])
    for name, cls in (("custom_math", CustomMath), ("custom_mcq", CustomMCQ)):
        assert type(pm.get("benchmarks", name)) is cls
        info = next(p for p in pm.plugins if p.name == name)
        assert info.distribution == "lmgauge-benchmarks" and info.error is None
        assert info.registers == {"benchmarks": [name]}
    bench = mcq({"mcq_shuffle": True, "mcq_seed": 3})
    bench.load(str(write(tmp_path / "s.csv", shuffle_rows(50))))
    blob = pickle.dumps(bench)
    assert len(blob) < 300 and pickle.loads(blob).options == {"mcq_shuffle": True, "mcq_seed": 3}


def test_the_bundled_demo_file_is_right(tmp_path):
    from importlib import resources

    path = resources.files("lmgauge_benchmarks").joinpath("data", "demo_math.jsonl")
    samples = CustomMath().load(str(path))
    assert 6 <= len(samples) <= 12 and {s.subsets for s in samples} <= {("addition",), ("multiplication",), ("subtraction",)}
    ops = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "times": lambda a, b: a * b}
    for s in samples:
        a, op, b = re.match(r"What is (\d+) (\+|-|times) (\d+)\?", s.question).groups()
        assert int(s.gold) == ops[op](int(a), int(b)), s.question


# ------------------------------------------------------------------------- end to end


def report_rows(out: Path) -> dict[tuple[str, str], dict]:
    report = json.loads((out / "report.json").read_text())
    return {(r["benchmark"], r["subset"]): r for r in report["results"] if r["metric"] == "AveragePass@1"}


def test_eval_with_dataset_path_scores_as_computed_by_hand(eval_server, tmp_path):
    rows = [{"id": "a", "question": "What is 1 + 1?", "answer": "2", "subset": "add"},
            {"id": "b", "question": "What is 2 + 2?", "answer": "4", "subset": "add"},
            {"id": "c", "question": "What is 3 times 3?", "answer": "9", "subset": "mul"},
            {"id": "d", "question": "What is 4 times 4?", "answer": "16", "subset": "mul"}]
    path = write(tmp_path / "mine.jsonl", rows)
    # right, wrong, right (as a fraction), no answer (the server's default)
    answers = {math_prompt("What is 1 + 1?"): ["\\boxed{2}"], math_prompt("What is 2 + 2?"): ["\\boxed{5}"],
               math_prompt("What is 3 times 3?"): ["\\boxed{\\frac{18}{2}}"]}
    server = eval_server({"model": "m", "answers": answers})
    out = tmp_path / "run"
    run_cli("eval", "--base-url", server.base_url, "--model", "m", "--benchmark", "custom_math",
            "--dataset-path", f"custom_math={path}", "--output", str(out), "--no-progress", env=PLUGINS, check=True)
    rows_ = report_rows(out)
    assert rows_[("custom_math", "OVERALL")]["score"] == pytest.approx(2 / 4)
    assert rows_[("custom_math", "add")]["score"] == pytest.approx(1 / 2)
    assert rows_[("custom_math", "mul")]["score"] == pytest.approx(1 / 2)
    graded = {json.loads(l)["sample_id"]: json.loads(l) for l in (out / "samples.jsonl").read_text().splitlines()}
    assert {k: v["extracted"] for k, v in graded.items()} == {"a": "2", "b": "5", "c": "\\frac{18}{2}", "d": None}


def test_eval_with_two_named_files_and_shuffled_choices(eval_server, tmp_path):
    algebra = write(tmp_path / "algebra.jsonl", [{"question": "Solve x + 1 = 3.", "answer": "2"},
                                                 {"question": "Solve 2x = 8.", "answer": "4"}])
    quiz_rows = shuffle_rows(3)
    quiz = write(tmp_path / "quiz.csv", quiz_rows)
    options = {"mcq_shuffle": True, "mcq_seed": 9}
    shuffled = mcq(options).load(str(quiz))
    assert [s.gold for s in shuffled] != ["A"] * 3, "pick a seed that moves some right answer off A"
    answers = {math_prompt("Solve x + 1 = 3."): ["\\boxed{2}"], math_prompt("Solve 2x = 8."): ["\\boxed{4}"]}
    # the server answers the shuffled prompts: right on s0 and s1, a wrong letter on s2; were the
    # options not applied, the prompts would differ and every answer would be the default
    for s in shuffled:
        wrong = "B" if s.gold == "A" else "A"
        answers[s.prompt] = [f"ANSWER: {s.gold if s.id != 's2' else wrong}"]
    server = eval_server({"model": "m", "answers": answers, "default": "ANSWER: A"})
    out = tmp_path / "run"
    run_cli("eval", "--base-url", server.base_url, "--model", "m",
            "--benchmark", f"algebra=custom_math:{algebra}", "--benchmark", f"quiz=custom_mcq:{quiz}",
            "--mcq-shuffle", "--mcq-seed", "9", "--output", str(out), "--no-progress", env=PLUGINS, check=True)
    rows_ = report_rows(out)
    assert rows_[("algebra", "OVERALL")]["score"] == pytest.approx(1.0)
    assert rows_[("quiz", "OVERALL")]["score"] == pytest.approx(2 / 3)
    assert {b for b, _ in rows_} >= {"algebra", "quiz"}
    assert {json.loads(l)["benchmark"] for l in (out / "samples.jsonl").read_text().splitlines()} == {"algebra", "quiz"}


def test_cli_bad_file_is_one_line(tmp_path):
    path = write(tmp_path / "bad.csv", [{"question": "q", "A": "x", "B": "y", "answer": "A"},
                                        {"question": "q2", "A": "x", "B": "y", "answer": "C"}])
    proc = run_cli("eval", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--benchmark", "custom_mcq",
                   "--dataset-path", f"custom_mcq={path}", env=PLUGINS)
    assert_one_line_error(proc, str(path), "row 2 (line 3)", "column answer", "letter C")
    proc = run_cli("eval", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--benchmark", "custom_math", env=PLUGINS)
    assert_one_line_error(proc, "--dataset-path custom_math=FILE")
