"""``custom_math`` and ``custom_mcq``: benchmarks from the user's own data file, no code.

``custom_math`` reads rows with ``question`` (or ``problem``) and ``answer``, or a ``solution``
whose last ``\\boxed{}`` is the answer; it prompts and grades exactly as ``math_500``.
``custom_mcq`` reads rows with ``question``, the choices in columns ``A`` … ``J`` or in a
``choices`` list, and ``answer`` as a letter or as the text of the right choice; it prompts
and grades exactly as ``gpqa_diamond`` (letters A up to the number of choices), keeping the
file's order unless ``--mcq-shuffle`` permutes it (seeded by ``--mcq-seed`` and the question
text). Both take optional ``id`` (default: the row number) and ``subset`` columns.

The file comes from ``load(path)``: ``--dataset-path custom_math=FILE``, or an alias
``--benchmark NAME=custom_math:FILE`` (the core copies the instance and sets ``name``).
A bad row is one :class:`DataError` line naming the benchmark, the file, the row (1-based,
counting data rows only; plus the file line for JSONL and CSV) and the column.

Each benchmark has its own entry point; they point at :class:`MathPlugin` and
:class:`MCQPlugin` below.
"""
from __future__ import annotations

import csv
import json
import random
import re
from pathlib import Path
from typing import Any

import click

from lmgauge.plugin import (Benchmark, Completion, DataError, Sample, Score, grade_choice, grade_math, hookimpl,
                            last_boxed)

from .gpqa import PROMPT as MCQ_PROMPT
from .gpqa import choice_seed
from .loading import read_rows
from .math_500 import math_prompt

LETTERS = "ABCDEFGHIJ"
_LETTER = re.compile(r"\(([A-Ja-j])\)|([A-Ja-j])[.)]?")


def _present(value: Any) -> bool:
    if value is None or value != value:  # value != value: NaN from Parquet/pandas
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, (list, tuple)):
        return bool(value)
    return True


def _column(row: dict[str, Any], *names: str) -> tuple[str | None, Any]:
    """``(column as the file spells it, value)`` for the first of ``names`` (case-insensitive)
    holding a value; ``(column, None)`` when the columns exist but are empty; ``(None, None)``
    when the row has none of them."""
    keys = {str(k).strip().lower(): k for k in row}
    for n in names:
        k = keys.get(n)
        if k is not None and _present(row[k]):
            return str(k).strip(), row[k]
    for n in names:
        if n in keys:
            return str(keys[n]).strip(), None
    return None, None


def _line_of(path: str, index: int) -> int | None:
    """The file line where data row ``index`` (0-based) starts, for JSONL and CSV files.
    Only called to word an error, so it re-reads the file."""
    p = Path(path).expanduser()
    suffix = p.suffix.lower()
    try:
        with p.open(encoding="utf-8-sig", newline="") as fh:
            if suffix == ".jsonl":
                seen = -1
                for lineno, line in enumerate(fh, 1):
                    seen += bool(line.strip())
                    if seen == index:
                        return lineno
            elif suffix == ".csv":
                reader = csv.reader(fh)
                next(reader, None)
                start, seen = reader.line_num + 1, 0
                for record in reader:
                    if record:  # csv.DictReader skips blank lines too
                        if seen == index:
                            return start
                        seen += 1
                    start = reader.line_num + 1
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    return None


class _FileBenchmark(Benchmark):
    """What both custom benchmarks share: the path check, rows, ids, subsets, error lines."""

    def _rows(self, path: str | None) -> list[dict[str, Any]]:
        base = type(self).name
        if not path:
            raise DataError(f"{self.name}: has no data of its own; it reads your file",
                            f"--dataset-path {base}=FILE or --benchmark NAME={base}:FILE (jsonl/json/csv/parquet)")
        try:
            return read_rows(path)
        except DataError as exc:
            raise DataError(f"{self.name}: {exc.message}", exc.hint) from None

    def _error(self, path: str, index: int, column: str | None, what: str, hint: str) -> DataError:
        line = _line_of(path, index)
        at = f"row {index + 1}" + (f" (line {line})" if line else "")
        return DataError(f"{self.name}: {path}, {at}{f', column {column}' if column else ''}: {what}", hint)

    def _text(self, path: str, index: int, row: dict[str, Any], *names: str) -> str:
        """The stripped text of the first of ``names`` present, or a one-line error."""
        column, value = _column(row, *names)
        if column is None:
            raise self._error(path, index, None, f"no column {' or '.join(names)}",
                              f"columns found: {', '.join(map(str, row)) or 'none'}")
        if value is None:
            raise self._error(path, index, column, "is empty", "fill it in or remove the row")
        return str(value).strip()

    def _id_and_subsets(self, path: str, index: int, row: dict[str, Any],
                        seen: dict[str, int]) -> tuple[str, tuple[str, ...]]:
        column, value = _column(row, "id")
        sid = str(value).strip() if value is not None else str(index + 1)
        if sid in seen:
            raise self._error(path, index, column or "id", f"id {sid!r} repeats row {seen[sid] + 1}",
                              "every row needs its own id (rows without an id get their row number)")
        seen[sid] = index
        column, value = _column(row, "subset")
        values = value if isinstance(value, (list, tuple)) else [] if value is None else [value]
        subsets = tuple(s for s in (str(v).strip() for v in values) if s)
        if "OVERALL" in subsets:
            raise self._error(path, index, column, "the subset name OVERALL is reserved for the whole benchmark",
                              "rename that subset")
        return sid, subsets


class CustomMath(_FileBenchmark):
    name = "custom_math"
    judge_kind = "math"
    description = ("Your math questions: --dataset-path custom_math=FILE (question/problem + answer or "
                   "\\boxed solution), graded as math_500")

    def load(self, path: str | None = None) -> list[Sample]:
        rows = self._rows(path)
        out = []
        seen: dict[str, int] = {}
        for i, row in enumerate(rows):
            problem = self._text(path, i, row, "question", "problem")
            answer = _column(row, "answer")[1]
            gold = str(answer).strip() if answer is not None else ""
            if not gold:  # no answer: a solution's last \boxed{}, or the whole solution without one
                solution = self._text(path, i, row, "answer", "solution")
                gold = last_boxed(solution) or solution
            sid, subsets = self._id_and_subsets(path, i, row, seen)
            out.append(Sample(id=sid, benchmark=self.name, prompt=math_prompt(problem), gold=gold,
                              subsets=subsets, question=problem))
        return out

    def score(self, sample: Sample, completion: Completion) -> Score:
        return grade_math(completion.text, sample.gold)


def mcq_prompt(question: str, choices: list[str]) -> str:
    """The gpqa_diamond prompt for any number of choices (letters A up to the last one); for
    four choices it is exactly :func:`lmgauge_benchmarks.gpqa.gpqa_prompt`."""
    letters = LETTERS[:len(choices)]
    lines = "\n".join(f"{letters[k]}) {c}" for k, c in enumerate(choices))
    return MCQ_PROMPT.format(letters=letters, question=question, choices=lines)


def permute(question: str, choices: list[str], gold: int, seed: int) -> tuple[list[str], int]:
    """``(choices in a new order, new index of the gold)``: a permutation seeded by SHA-256 of
    ``"<seed>:<question>"``, the same on every run and machine."""
    order = list(range(len(choices)))
    random.Random(choice_seed(f"{seed}:{question}")).shuffle(order)
    return [choices[k] for k in order], order.index(gold)


class CustomMCQ(_FileBenchmark):
    name = "custom_mcq"
    judge_kind = "mcq"
    description = ("Your multiple-choice questions: --dataset-path custom_mcq=FILE (question, choices A..J or "
                   "a choices list, answer letter or text), graded as gpqa_diamond")
    options = [
        click.Option(["--mcq-shuffle/--no-mcq-shuffle", "mcq_shuffle"], default=False, show_default=True,
                     help="custom_mcq: show each question's choices in a permuted order, fixed by --mcq-seed "
                          "and the question text (default: the file's order)"),
        click.Option(["--mcq-seed", "mcq_seed"], type=int, default=0, show_default=True,
                     help="custom_mcq: seed of the --mcq-shuffle permutation"),
    ]

    def _option(self, key: str, default: Any) -> Any:
        # the core sets self.options to this benchmark's option values; the class attribute of
        # the same name is the list of declarations
        values = getattr(self, "options", None)
        got = values.get(key) if isinstance(values, dict) else None
        return default if got is None else got

    def load(self, path: str | None = None) -> list[Sample]:
        rows = self._rows(path)
        shuffle, seed = bool(self._option("mcq_shuffle", False)), int(self._option("mcq_seed", 0))
        out = []
        seen: dict[str, int] = {}
        for i, row in enumerate(rows):
            question = self._text(path, i, row, "question")
            choices = self._choices(path, i, row)
            gold = self._gold(path, i, row, choices)
            if shuffle:
                choices, gold = permute(question, choices, gold, seed)
            sid, subsets = self._id_and_subsets(path, i, row, seen)
            prompt = mcq_prompt(question, choices)
            out.append(Sample(id=sid, benchmark=self.name, prompt=prompt, gold=LETTERS[gold], subsets=subsets,
                              question=prompt.split("\n\n", 1)[1], meta={"choices": choices}))
        return out

    def _choices(self, path: str, i: int, row: dict[str, Any]) -> list[str]:
        column, value = _column(row, "choices")
        if value is not None:
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except ValueError:
                    value = None
            if not isinstance(value, (list, tuple)):
                raise self._error(path, i, column, "is not a list of choices",
                                  'write a JSON list, e.g. ["4", "5", "6"], or use columns A, B, C, ...')
            choices = [str(c).strip() if c is not None else "" for c in value]
            for k, c in enumerate(choices):
                if not c:
                    raise self._error(path, i, column, f"choice {k + 1} is empty", "fill it in or remove it")
        else:
            letters = [_column(row, x.lower()) for x in LETTERS]
            filled = [k for k, (_, v) in enumerate(letters) if v is not None]
            count = len(filled)
            if filled != list(range(count)):
                gap = next(k for k in range(len(LETTERS)) if k not in filled)
                raise self._error(path, i, LETTERS[gap], f"is empty but column {LETTERS[filled[-1]]} is not",
                                  "choices fill the columns from A on without gaps")
            if not count and column is None:
                raise self._error(path, i, None, "no choices: no columns A, B, ... and no column choices",
                                  f"columns found: {', '.join(map(str, row)) or 'none'}")
            choices = [str(letters[k][1]).strip() for k in range(count)]
            if count:
                column = f"A-{LETTERS[count - 1]}" if count > 1 else "A"
        if len(choices) < 2:
            raise self._error(path, i, column, f"has {len(choices)} choice{'s' * (len(choices) != 1)}, "
                                               "a question needs at least 2",
                              "give the choices in columns A, B, C, ... or as a choices list")
        if len(choices) > len(LETTERS):
            raise self._error(path, i, column, f"has {len(choices)} choices, at most {len(LETTERS)} (A-J) are allowed",
                              "split the question or drop choices")
        return choices

    def _gold(self, path: str, i: int, row: dict[str, Any], choices: list[str]) -> int:
        """Index of the right choice: a letter (``B``, ``b``, ``(B)``, ``B)``, ``B.``) or the text
        of one choice (exact after strip, else case-insensitive)."""
        answer = self._text(path, i, row, "answer")
        column = _column(row, "answer")[0]
        last = LETTERS[len(choices) - 1]
        m = _LETTER.fullmatch(answer)
        letter = (m.group(1) or m.group(2)).upper() if m else None
        if letter is not None and LETTERS.index(letter) < len(choices):
            k = LETTERS.index(letter)
            other = [LETTERS[j] for j, c in enumerate(choices) if c == answer and j != k]
            if other:
                raise self._error(path, i, column, f"{answer!r} is the letter {letter} but also the text of choice "
                                                   f"{other[0]}", f"to mean the letter write ({letter}), else give choice "
                                                                  f"{other[0]}'s letter")
            return k
        for same in (lambda c: c == answer, lambda c: c.casefold() == answer.casefold()):
            hits = [k for k, c in enumerate(choices) if same(c)]
            if len(hits) == 1:
                return hits[0]
            if hits:
                raise self._error(path, i, column, f"{answer!r} matches choices {' and '.join(LETTERS[k] for k in hits)}",
                                  f"give the letter (A-{last}) instead")
        if letter is not None:
            raise self._error(path, i, column, f"letter {letter} but the row has {len(choices)} "
                                               f"choices (A-{last})", "give one of its letters or the right choice's text")
        raise self._error(path, i, column, f"{answer!r} is neither a letter A-{last} nor the text of a choice",
                          "give the letter or copy the right choice's text exactly")

    def score(self, sample: Sample, completion: Completion) -> Score:
        return grade_choice(completion.text, sample.gold, LETTERS[:len(sample.meta["choices"])])


class MathPlugin:
    """Entry point ``custom_math``: registers :class:`CustomMath`."""

    @staticmethod
    @hookimpl
    def register_benchmarks(register):
        register(CustomMath())


class MCQPlugin:
    """Entry point ``custom_mcq``: registers :class:`CustomMCQ`."""

    @staticmethod
    @hookimpl
    def register_benchmarks(register):
        register(CustomMCQ())
