"""``custom_code``: your own code problems from a data file, no code of yours needed.

``--benchmark NAME=custom_code:FILE`` (or ``--dataset-path custom_code=FILE``), jsonl/json/csv/
parquet. Each row is one of

- **HumanEval format**: ``task_id``, ``prompt`` (signature and docstring), ``test`` (defining
  ``check(candidate)``), ``entry_point``; prompted and graded exactly as ``humaneval``;
- **LiveCodeBench format**: ``question_id``, ``question_content``, ``public_test_cases`` (a list of
  ``{"input", "output", "testtype"}``, or its JSON text), optional ``private_test_cases``,
  ``starter_code``, ``metadata`` (``{"func_name": ...}`` for LeetCode-style problems),
  ``difficulty``, ``platform``; prompted and graded exactly as ``livecodebench``.

``task_id`` (``question_id``) becomes the sample id; an optional ``subset`` column names subsets.
A bad row is one line naming the file, the row (and its line) and the column.
"""
from __future__ import annotations

import os
from typing import Any

from lmgauge.plugin import Limits, Sample, hookimpl

from .code import CODE_OPTIONS, CodeBenchmark, Outcome
from .custom import _column, _FileBenchmark
from .humaneval import HumanEvalTests, humaneval_sample
from .livecodebench import LCBTests, lcb_sample

HUMANEVAL_COLUMNS = ("task_id", "prompt", "test", "entry_point")
LCB_COLUMNS = ("question_id", "question_content")


class CustomCode(HumanEvalTests, LCBTests, CodeBenchmark, _FileBenchmark):
    name = "custom_code"
    description = ("Your code problems: --benchmark NAME=custom_code:FILE with HumanEval-format rows (task_id, prompt, "
                   "test, entry_point) or LiveCodeBench-format rows (question_id, question_content, public_test_cases)")
    options = CODE_OPTIONS
    default_test_timeout = 6.0

    def load(self, path: str | None = None) -> list[Sample]:
        rows = self._rows(path)
        out: list[Sample] = []
        seen: dict[str, int] = {}
        source = {"kind": "custom", "path": os.path.abspath(os.path.expanduser(path))}
        for i, row in enumerate(rows):
            keys = {str(k).strip().lower() for k in row}

            def require(col: str, i: int = i, row: dict = row) -> Any:
                return self._text_raw(path, i, row, col)

            if "entry_point" in keys or "test" in keys:
                where = self._where(path, i)
                sample = humaneval_sample(self.name, {k: _column(row, k)[1] for k in HUMANEVAL_COLUMNS}, where, require)
                sample.gold["format"] = "humaneval"
                sample.gold["prompt"] = sample.question
            elif keys & {"question_content", "public_test_cases", "question_id"}:
                where = self._where(path, i)
                plain = {str(k).strip().lower(): v for k, v in row.items()}
                sample = lcb_sample(self.name, plain, where, source, require)
                sample.gold["format"] = "livecodebench"
            else:
                raise self._error(path, i, None, "is neither a HumanEval row (task_id, prompt, test, entry_point) nor a "
                                                  "LiveCodeBench row (question_id, question_content, public_test_cases)",
                                  f"columns found: {', '.join(map(str, row)) or 'none'}")
            if sample.id in seen:
                raise self._error(path, i, "task_id" if sample.gold["format"] == "humaneval" else "question_id",
                                  f"id {sample.id!r} repeats row {seen[sample.id] + 1}", "every problem needs its own id")
            seen[sample.id] = i
            column, value = _column(row, "subset")
            extra = value if isinstance(value, (list, tuple)) else [] if value is None else [value]
            subsets = tuple(dict.fromkeys([*sample.subsets, *(str(v).strip() for v in extra if str(v).strip())]))
            if "OVERALL" in subsets:
                raise self._error(path, i, column, "the subset name OVERALL is reserved for the whole benchmark",
                                  "rename that subset")
            sample.subsets = subsets
            out.append(sample)
        return out

    def _where(self, path: str, i: int) -> str:
        err = self._error(path, i, None, "", "")
        return err.message.rstrip(": ")

    def _text_raw(self, path: str, i: int, row: dict[str, Any], col: str) -> Any:
        column, value = _column(row, col)
        if column is None:
            raise self._error(path, i, None, f"no column {col}", f"columns found: {', '.join(map(str, row)) or 'none'}")
        if value is None:
            raise self._error(path, i, column, "is empty", "fill it in or remove the row")
        return value

    def tests(self, sample: Sample, code: str, limits: Limits, budget: float) -> tuple[list[Outcome], int]:
        if (sample.gold or {}).get("format") == "humaneval":
            return self.humaneval_tests(sample, code, limits, budget)
        return self.lcb_tests(sample, code, limits, budget)


class CustomCodePlugin:
    """Entry point ``custom_code``: registers :class:`CustomCode`."""

    @staticmethod
    @hookimpl
    def register_benchmarks(register):
        register(CustomCode())
