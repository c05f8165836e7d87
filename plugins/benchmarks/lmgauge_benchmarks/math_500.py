"""``math_500``: the 500-problem MATH test split of "Let's Verify Step by Step" (bundled, MIT; see
data/NOTICE.txt).

Subsets: ``Level 1`` … ``Level 5`` and the seven subjects (``Algebra``, ``Counting &
Probability``, ``Geometry``, ``Intermediate Algebra``, ``Number Theory``, ``Prealgebra``,
``Precalculus``). ``Sample.id`` is the row's ``unique_id`` (e.g. ``test/precalculus/807.json``).
Graded with :func:`lmgauge.grading.grade_math`: the last ``\\boxed{}`` of the text
after any thinking, then a normalized comparison and math-verify.
"""
from __future__ import annotations

from importlib import resources

from lmgauge.plugin import Benchmark, Completion, Sample, Score, grade_math, hookimpl

from .loading import field, optional, read_rows, row_where

MATH_PROMPT = "{problem}\nPlease reason step by step, and put your final answer within \\boxed{{}}."


def math_prompt(problem: str) -> str:
    """The math prompt used by math_500, aime24 and aime25."""
    return MATH_PROMPT.format(problem=problem)


def bundled_path() -> str:
    return str(resources.files("lmgauge_benchmarks").joinpath("data", "math500.jsonl"))


class Math500(Benchmark):
    name = "math_500"
    description = "MATH-500: 500 competition math problems (bundled), subsets Level 1-5 and 7 subjects"
    judge_kind = "math"  # the LLM judge's prompt shape (eval/judge.py)

    def load(self, path: str | None = None) -> list[Sample]:
        rows = read_rows(path or bundled_path(), self.name if path else "")
        out = []
        for i, row in enumerate(rows):
            where = row_where(self.name, path, i, "(bundled)")
            problem = str(field(row, "problem", "question", bench=self.name, where=where))
            answer = str(field(row, "answer", bench=self.name, where=where)).strip()
            subsets = []
            level = optional(row, "level")
            if level is not None:
                level = str(level).strip()
                subsets.append(level if level.lower().startswith("level") else f"Level {level}")
            subject = optional(row, "subject", "type")
            if subject is not None:
                subsets.append(str(subject).strip())
            sid = optional(row, "unique_id", "id")
            out.append(Sample(id=str(sid) if sid is not None else str(i), benchmark=self.name,
                              prompt=math_prompt(problem), gold=answer, subsets=tuple(subsets),
                              question=problem))
        return out

    def score(self, sample: Sample, completion: Completion) -> Score:
        return grade_math(completion.text, sample.gold)


@hookimpl
def register_benchmarks(register):
    register(Math500())
