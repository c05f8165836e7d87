"""``math_500``: the 500-problem MATH test split (bundled, MIT; see data/NOTICE.txt).

Subsets: ``Level 1`` … ``Level 5`` and the seven subjects. Graded with math-verify after
taking the last ``\\boxed{}`` of the text after any thinking.
"""
from __future__ import annotations

from importlib import resources

from lmgauge import hookimpl
from lmgauge.interfaces import Benchmark
from lmgauge.types import Completion, Sample, Score

from .grading import grade_math
from .loading import field, read_rows

MATH_PROMPT = "{problem}\nPlease reason step by step, and put your final answer within \\boxed{{}}."


def math_prompt(problem: str) -> str:
    return MATH_PROMPT.format(problem=problem)


class Math500(Benchmark):
    name = "math_500"
    description = "MATH-500: 500 competition math problems (bundled), levels 1-5, 7 subjects"

    def load(self, path: str | None = None) -> list[Sample]:
        if path is None:
            path = str(resources.files("lmgauge_benchmarks") / "data" / "math500.jsonl")
        out = []
        for i, row in enumerate(read_rows(path, self.name)):
            problem = field(row, "problem", "question", bench=self.name, where=f"row {i + 1}")
            answer = field(row, "answer", bench=self.name, where=f"row {i + 1}")
            subsets = []
            level = row.get("level")
            if level not in (None, ""):
                subsets.append(f"Level {level}" if not str(level).startswith("Level") else str(level))
            if row.get("subject") or row.get("type"):
                subsets.append(str(row.get("subject") or row.get("type")))
            out.append(Sample(id=str(row.get("unique_id") or row.get("id") or i), benchmark=self.name,
                              prompt=math_prompt(str(problem)), gold=str(answer), subsets=tuple(subsets),
                              question=str(problem)))
        return out

    def score(self, sample: Sample, completion: Completion) -> Score:
        return grade_math(completion.text, sample.gold)


@hookimpl
def register_benchmarks(register):
    register(Math500())
