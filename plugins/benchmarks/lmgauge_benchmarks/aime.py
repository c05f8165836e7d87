"""``aime24`` and ``aime25``: AIME 2024 / 2025, 30 problems each, integer answers.

Not bundled (no clear data license): loaded from the hub by default, or from
``--dataset-path aime24=FILE`` (fields ``problem``/``prompt``/``question`` and ``answer``).
Subsets ``AIME2024-I``/``-II`` and ``AIME2025-I``/``-II`` (problems 1-15 are contest I,
16-30 contest II, in file order; a row's ``url`` naming ``_II_`` or ``_I_`` wins when present).
Answers compare as integers: "025" == 25.
"""
from __future__ import annotations

import re

from lmgauge import hookimpl
from lmgauge.interfaces import Benchmark
from lmgauge.types import Completion, Sample, Score

from .grading import grade_integer
from .loading import field, read_rows, rows_from_hub
from .math_500 import math_prompt

SUFFIX = re.compile(r"\s*Please reason step by step, and put your final answer within \\boxed\{\}\.?\s*$")


class Aime(Benchmark):
    year = 0
    hub_repo = ""

    def load(self, path: str | None = None) -> list[Sample]:
        rows = read_rows(path, self.name) if path else rows_from_hub(self.name, self.hub_repo)
        out = []
        half = (len(rows) + 1) // 2
        for i, row in enumerate(rows):
            where = f"row {i + 1}"
            problem = SUFFIX.sub("", str(field(row, "problem", "question", "prompt", bench=self.name, where=where)))
            answer = str(field(row, "answer", bench=self.name, where=where)).strip()
            url = str(row.get("url") or "")
            if "_II_" in url or "AIME_II" in url:
                part = "II"
            elif "_I_" in url or "AIME_I" in url:
                part = "I"
            else:
                part = "I" if i < half else "II"
            out.append(Sample(id=str(row.get("id", i)), benchmark=self.name, prompt=math_prompt(problem),
                              gold=answer, subsets=(f"AIME{self.year}-{part}",), question=problem))
        return out

    def score(self, sample: Sample, completion: Completion) -> Score:
        return grade_integer(completion.text, sample.gold)


class Aime24(Aime):
    name = "aime24"
    description = "AIME 2024 I+II: 30 problems, integer answers (hub or --dataset-path)"
    year = 2024
    hub_repo = "HuggingFaceH4/aime_2024"


class Aime25(Aime):
    name = "aime25"
    description = "AIME 2025 I+II: 30 problems, integer answers (hub or --dataset-path)"
    year = 2025
    hub_repo = "math-ai/aime25"


@hookimpl
def register_benchmarks(register):
    register(Aime24())
    register(Aime25())
