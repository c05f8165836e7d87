"""``gpqa_diamond``: 198 graduate-level multiple-choice questions (physics, chemistry, biology).

Gated: loaded from the hub (Idavidrein/gpqa, gpqa_diamond.csv, token from ``HF_TOKEN``) or
``--dataset-path gpqa_diamond=FILE.csv`` with the original columns ``Question, Correct Answer,
Incorrect Answer 1..3`` (``High-level domain`` gives the subsets). Never commit its text.

The four choices are shuffled with a permutation seeded from the question text, so the order is
the same on every run and machine; the prompt asks for a final ``ANSWER: $LETTER`` line.
"""
from __future__ import annotations

import hashlib
import random

from lmgauge import hookimpl
from lmgauge.interfaces import Benchmark
from lmgauge.types import Completion, Sample, Score

from .grading import grade_choice
from .loading import field, read_rows, rows_from_hub

LETTERS = "ABCD"
PROMPT = ("Answer the following multiple choice question. The last line of your response should be of "
          "the following format: 'ANSWER: $LETTER' (without quotes) where LETTER is one of ABCD. "
          "Think step by step before answering.\n\n{question}\n\n{choices}")


def shuffle_choices(question: str, choices: list[str]) -> tuple[list[str], int]:
    """(shuffled choices, index of the first input choice) — seeded by the question text."""
    seed = int.from_bytes(hashlib.sha256(question.encode("utf-8")).digest()[:8], "big")
    order = list(range(len(choices)))
    random.Random(seed).shuffle(order)
    return [choices[i] for i in order], order.index(0)


class GPQADiamond(Benchmark):
    name = "gpqa_diamond"
    description = "GPQA-Diamond: 198 graduate-level science MCQs (gated: HF_TOKEN or --dataset-path)"

    def load(self, path: str | None = None) -> list[Sample]:
        if path:
            rows = read_rows(path, self.name)
        else:
            rows = rows_from_hub(self.name, "Idavidrein/gpqa", "gpqa_diamond.csv", token_env="HF_TOKEN")
        out = []
        for i, row in enumerate(rows):
            where = f"row {i + 1}"
            question = str(field(row, "Question", bench=self.name, where=where)).strip()
            correct = str(field(row, "Correct Answer", bench=self.name, where=where)).strip()
            wrong = [str(field(row, f"Incorrect Answer {k}", bench=self.name, where=where)).strip() for k in (1, 2, 3)]
            choices, gold_idx = shuffle_choices(question, [correct, *wrong])
            lines = "\n".join(f"{LETTERS[k]}) {c}" for k, c in enumerate(choices))
            domain = row.get("High-level domain") or row.get("high_level_domain") or ""
            sid = str(row.get("Record ID") or row.get("id") or i)
            out.append(Sample(id=sid, benchmark=self.name, prompt=PROMPT.format(question=question, choices=lines),
                              gold=LETTERS[gold_idx], subsets=(str(domain),) if domain else (),
                              question=f"{question}\n\n{lines}", meta={"choices": choices}))
        return out

    def score(self, sample: Sample, completion: Completion) -> Score:
        return grade_choice(completion.text, sample.gold, LETTERS)


@hookimpl
def register_benchmarks(register):
    register(GPQADiamond())
