"""LiveCodeBench-format rows for the code benchmark tests, written as the dataset stores them
(public tests as JSON text, private tests as base64 of zlib of a pickle of JSON text)."""
from __future__ import annotations

import base64
import json
import pickle
import zlib
from pathlib import Path


def encode_private(tests: list[dict]) -> str:
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))).decode()


def stdin_row(qid: str, date: str, difficulty: str = "easy") -> dict:
    """Read two integers, print their sum (and their product on a second line)."""
    cases = [(1, 2), (10, -3), (7, 7), (123456789, 987654321)]
    tests = [{"input": f"{a} {b}\n", "output": f"{a + b}\n{a * b}\n", "testtype": "stdin"} for a, b in cases]
    return {"question_title": f"Sum and product {qid}", "question_content": f"Problem {qid}: read A and B, print A+B then A*B.",
            "platform": "atcoder", "question_id": qid, "contest_id": "abc001", "contest_date": f"{date}T00:00:00",
            "starter_code": "", "difficulty": difficulty, "public_test_cases": json.dumps(tests[:1]),
            "private_test_cases": encode_private(tests[1:]), "metadata": "{}"}


def functional_row(qid: str, date: str, difficulty: str = "medium") -> dict:
    """LeetCode style: maxPair(nums, k) = the largest sum of k elements."""
    cases = [([1, 5, 3], 2), ([4], 1), ([-1, -2, -3], 2), (list(range(50)), 5)]
    tests = [{"input": f"{json.dumps(n)}\n{k}", "output": json.dumps(sum(sorted(n)[-k:])), "testtype": "functional"}
             for n, k in cases]
    return {"question_title": f"Max pair {qid}", "question_content": f"Problem {qid}: return the largest sum of k numbers.",
            "platform": "leetcode", "question_id": qid, "contest_id": "weekly-1", "contest_date": f"{date}T00:00:00",
            "starter_code": "class Solution:\n    def maxPair(self, nums: List[int], k: int) -> int:\n        ",
            "difficulty": difficulty, "public_test_cases": json.dumps(tests[:2]),
            "private_test_cases": encode_private(tests[2:]), "metadata": json.dumps({"func_name": "maxPair"})}


STDIN_SOLUTION = "a, b = map(int, input().split())\nprint(a + b)\nprint(a * b)\n"
FUNCTIONAL_SOLUTION = ("class Solution:\n    def maxPair(self, nums: List[int], k: int) -> int:\n"
                       "        return sum(sorted(nums)[-k:])\n")


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def dataset_folder(folder: Path) -> Path:
    """A folder like a clone of code_generation_lite: test.jsonl (release v1) and test2.jsonl (v2)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / "test.jsonl", [stdin_row("abc001_a", "2023-06-01"), functional_row("lc-1", "2023-09-10")])
    write_jsonl(folder / "test2.jsonl", [stdin_row("abc300_b", "2024-08-15", "hard"),
                                         functional_row("lc-2", "2025-01-20", "hard")])
    return folder
