"""``gpqa_diamond``: 198 graduate-level multiple-choice questions (physics, chemistry, biology).

Gated, never bundled: loaded from the hub (``Idavidrein/gpqa``, config ``gpqa_diamond`` =
``gpqa_diamond.csv``, token from ``HF_TOKEN``) or from ``--dataset-path gpqa_diamond=FILE.csv``
with the original columns ``Question, Correct Answer, Incorrect Answer 1..3`` (``High-level
domain`` gives the subsets, ``Record ID`` the sample id). Never commit its text anywhere.

The four choices are shuffled with a permutation seeded from the SHA-256 of the question text,
so the order is the same on every run and machine, and shown one per line as ``A) text``; the
prompt asks for a final line ``ANSWER: $LETTER``.
"""
from __future__ import annotations

import hashlib
import random

from lmgauge.plugin import Benchmark, Completion, Sample, Score, grade_choice, hookimpl

from .loading import HubSource, field, optional, read_rows, row_where, rows_from_hub

LETTERS = "ABCD"
PROMPT = ("Answer the following multiple choice question. The last line of your response should be of "
          "the following format: 'ANSWER: $LETTER' (without quotes) where LETTER is one of {letters}. "
          "Think step by step before answering.\n\n{question}\n\n{choices}")
HUB = HubSource("Idavidrein/gpqa", files=("gpqa_diamond.csv",), token_env="HF_TOKEN", gated=True,
                path_hint="FILE.csv")


def choice_seed(question: str) -> int:
    """The shuffle seed of a question: the first 8 bytes of SHA-256 of its UTF-8 text."""
    return int.from_bytes(hashlib.sha256(question.encode("utf-8")).digest()[:8], "big")


def shuffle_choices(question: str, choices: list[str]) -> tuple[list[str], int]:
    """``(shuffled choices, new index of choices[0])``, the permutation seeded by the question
    text (:func:`choice_seed`) — identical on every run, machine and Python version."""
    order = list(range(len(choices)))
    random.Random(choice_seed(question)).shuffle(order)
    return [choices[i] for i in order], order.index(0)


def gpqa_prompt(question: str, choices: list[str]) -> str:
    lines = "\n".join(f"{LETTERS[k]}) {c}" for k, c in enumerate(choices))
    return PROMPT.format(letters=LETTERS, question=question, choices=lines)


class GPQADiamond(Benchmark):
    name = "gpqa_diamond"
    description = "GPQA-Diamond: 198 graduate-level science MCQs (gated: HF_TOKEN, or --dataset-path gpqa_diamond=FILE.csv)"
    judge_kind = "mcq"  # the LLM judge's prompt shape (eval/judge.py)

    def load(self, path: str | None = None) -> list[Sample]:
        rows = read_rows(path, self.name) if path else rows_from_hub(self.name, HUB)
        out = []
        seen: set[str] = set()
        for i, row in enumerate(rows):
            where = row_where(self.name, path, i, f"(hub {HUB.repo_id})")
            question = str(field(row, "Question", bench=self.name, where=where)).strip()
            correct = str(field(row, "Correct Answer", bench=self.name, where=where)).strip()
            wrong = [str(field(row, f"Incorrect Answer {k}", bench=self.name, where=where)).strip() for k in (1, 2, 3)]
            choices, gold_idx = shuffle_choices(question, [correct, *wrong])
            domain = optional(row, "High-level domain", "high_level_domain", "domain")
            sid = str(optional(row, "Record ID", "record_id", "id") or f"q{choice_seed(question):016x}"[:13])
            if sid in seen:
                sid = f"{sid}#{i + 1}"
            seen.add(sid)
            prompt = gpqa_prompt(question, choices)
            out.append(Sample(id=sid, benchmark=self.name, prompt=prompt, gold=LETTERS[gold_idx],
                              subsets=(str(domain).strip(),) if domain else (),
                              question=prompt.split("\n\n", 1)[1], meta={"choices": choices}))
        return out

    def score(self, sample: Sample, completion: Completion) -> Score:
        return grade_choice(completion.text, sample.gold, LETTERS)


@hookimpl
def register_benchmarks(register):
    register(GPQADiamond())
