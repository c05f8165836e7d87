"""``aime24`` and ``aime25``: AIME 2024 / 2025, contests I and II, 30 problems each, integer answers.

Not bundled (the problems are MAA's and no data license is stated): the default source is the
Hugging Face hub (``HuggingFaceH4/aime_2024``, ``math-ai/aime25``; cached by huggingface_hub),
or ``--dataset-path aime24=PATH`` / ``aime25=PATH`` (jsonl/json/csv/parquet with a
``problem``/``question``/``prompt`` field and an ``answer`` field). A prompt that already ends
with the math instruction (the QwQ aime25 file) is stripped of it, then the MATH-500 prompt is
applied. Subsets ``AIME2024-I``/``-II`` and ``AIME2025-I``/``-II``: a row's AoPS ``url``
(``2024_AIME_I_Problems`` / ``2024_AIME_II_Problems``) decides; else aime24 ids 60-74 are I and
75-89 are II; else the first half of the file is I and the second half II. Answers compare as
integers ("025" == 25).

This module holds the classes; ``aime24.py`` and ``aime25.py`` register them (one entry point
per benchmark).
"""
from __future__ import annotations

import re

from lmgauge.plugin import Benchmark, Completion, Sample, Score, grade_integer

from .loading import HubSource, field, optional, read_rows, row_where, rows_from_hub
from .math_500 import math_prompt

SUFFIX = re.compile(r"\s*Please reason step by step, and put your final answer within \\boxed\{\}\.?\s*$")
_URL = re.compile(r"(\d{4})_AIME_(I{1,2})_Problems/Problem_(\d+)", re.I)


def strip_instruction(problem: str) -> str:
    """The problem without a trailing "Please reason step by step, …\\boxed{}." instruction."""
    return SUFFIX.sub("", problem)


class Aime(Benchmark):
    """Shared loader and grader of the AIME benchmarks; subclasses set the year and hub source."""

    year = 0
    judge_kind = "math"  # the LLM judge's prompt shape (eval/judge.py)
    hub: HubSource | None = None
    id_split: tuple[int, int] | None = None  # (first id of contest I, first id of contest II)

    def load(self, path: str | None = None) -> list[Sample]:
        rows = read_rows(path, self.name) if path else rows_from_hub(self.name, self.hub)
        half = (len(rows) + 1) // 2
        out, counters = [], {"I": 0, "II": 0}
        for i, row in enumerate(rows):
            where = row_where(self.name, path, i, f"(hub {self.hub.repo_id})")
            problem = strip_instruction(str(field(row, "problem", "question", "prompt", bench=self.name, where=where)))
            answer = str(field(row, "answer", bench=self.name, where=where)).strip()
            part, number = self._contest(row, i, half)
            counters[part] += 1
            rid = optional(row, "id")
            sid = str(rid) if rid is not None else f"{self.year}-{part}-{number or counters[part]}"
            meta = {"contest": f"AIME {self.year} {part}"}
            if number:
                meta["problem_number"] = number
            out.append(Sample(id=sid, benchmark=self.name, prompt=math_prompt(problem), gold=answer,
                              subsets=(f"AIME{self.year}-{part}",), question=problem, meta=meta))
        return out

    def _contest(self, row: dict, index: int, half: int) -> tuple[str, int | None]:
        """("I" or "II", problem number if known)."""
        m = _URL.search(str(optional(row, "url") or ""))
        if m:
            return m.group(2).upper(), int(m.group(3))
        rid = optional(row, "id")
        if self.id_split and rid is not None and str(rid).strip().isdigit():
            first, second = self.id_split
            n = int(str(rid).strip())
            if first <= n < second:
                return "I", None
            if second <= n < second + (second - first):
                return "II", None
        return ("I" if index < half else "II"), None

    def score(self, sample: Sample, completion: Completion) -> Score:
        return grade_integer(completion.text, sample.gold)


class Aime24(Aime):
    name = "aime24"
    description = "AIME 2024 I+II: 30 problems, integer answers (hub HuggingFaceH4/aime_2024 or --dataset-path aime24=PATH)"
    year = 2024
    hub = HubSource("HuggingFaceH4/aime_2024", files=("data/*.parquet", "data/*.jsonl", "*.parquet", "*.jsonl"))
    id_split = (60, 75)


class Aime25(Aime):
    name = "aime25"
    description = "AIME 2025 I+II: 30 problems, integer answers (hub math-ai/aime25 or --dataset-path aime25=PATH)"
    year = 2025
    hub = HubSource("math-ai/aime25", files=("test.jsonl",))
