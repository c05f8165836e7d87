"""The eval journal ``DIR/samples.jsonl``: one :class:`SampleRecord` per line.

Every finished (question, repeat) is written as one JSON line and flushed at once, so a crash
or Ctrl-C loses nothing that finished; the file is fsynced every few seconds and on close.
A later line for the same (benchmark, sample_id, repeat) supersedes an earlier one (a resumed
run re-doing an error, a judge's verdict). A torn last line (a run being written, or killed)
is skipped until it is complete, never an error.

:class:`SampleJournal` reads it by byte offset: :meth:`SampleJournal.refresh` reads only the
bytes written since the last call and keeps one offset per key, so iterating the latest
records never holds the whole journal, and following a growing journal costs what was added.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Iterator

import orjson

from ..types import DECIDED, GRADER_ERROR, UNDECIDED, Score

Key = tuple[str, str, int]

#: sample statuses, as the report counts them (``SampleRecord.status``)
CORRECT, WRONG, TRUNCATED, ERROR = "correct", "wrong", "truncated", "error"
SAMPLE_STATUSES = (CORRECT, WRONG, TRUNCATED, ERROR)

#: grade_detail prefixes that meant "no verdict" before scores carried a status (schema 1)
_V1_UNDECIDED = ("math-verify", "grader error")
_V1_GRADER_ERROR = "grader error"


@dataclass
class SampleRecord:
    """One line of ``samples.jsonl``: one (benchmark, question, repeat), graded or failed.

    The one definition of the journal's fields: the runner, regrade and the judge write these;
    the report, compare, the HTML page, the app and the exporters read them.

    - ``error`` set: the request failed after its retries (no response, not scored;
      ``--resume`` re-runs it).
    - ``score``/``correct``: the score that counts. ``extracted``, ``grade_detail``,
      ``score_status`` (``decided``/``undecided``/``error``, :data:`lmgauge.types.SCORE_STATUSES`)
      and ``grade_info`` are the rule grader's (the benchmark's ``score``).
    - The judge's verdict is a second score beside the rule grader's: ``judge_verdict``
      (correct, incorrect, unparsable, error), ``judge_text``, ``judge_model``; the rule's own
      score then stays in ``rule_score``/``rule_correct`` and ``score_source`` says which one
      counts (``"judge"`` or ``"rule"``; the policy is :func:`lmgauge.eval.judge.judged_record`).
    - Token counts: ``completion_tokens`` (reasoning and answer), ``reasoning_tokens``,
      ``answer_tokens``; ``token_source`` says where they come from (``usage``: the server's
      per-sample usage; ``tokenizer``: counted; ``approximate``: counted with cl100k_base
      for lack of the model's tokenizer).
    - How it reasoned (lmgauge.eval.lengths, at grading time): ``reflections`` (reflection
      markers in the reasoning) and ``first_correct`` (``{"chars", "tokens", "share_after",
      "candidates"}``: where the gold first appears among the reasoning's candidate answers;
      absent without reasoning). Both are written only when set, so older readers and older
      journals are unaffected.
    - ``extra``: keys this version does not know (a newer writer's), kept on rewrite.
    """

    benchmark: str
    sample_id: str
    repeat: int
    subsets: list[str] = field(default_factory=list)
    question: str = ""
    prompt: Any = None
    gold: Any = None
    response: str | None = None
    reasoning: str | None = None
    finish_reason: str | None = None
    truncated: bool = False
    extracted: str | None = None
    score: float | None = None
    correct: bool | None = None
    grade_detail: str | None = None
    error: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float | None = None
    attempts: int | None = None
    score_status: str | None = None
    grade_info: dict[str, Any] | None = None
    reasoning_tokens: int | None = None
    answer_tokens: int | None = None
    token_source: str | None = None
    judge_verdict: str | None = None
    judge_text: str | None = None
    judge_model: str | None = None
    rule_score: float | None = None
    rule_correct: bool | None = None
    score_source: str | None = None
    reflections: int | None = None
    first_correct: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    # -- identity ------------------------------------------------------------------------
    @property
    def key(self) -> Key:
        return (self.benchmark, self.sample_id, self.repeat)

    # -- what it is ----------------------------------------------------------------------
    @property
    def failed(self) -> bool:
        """The request failed: no response."""
        return bool(self.error)

    @property
    def grader_failed(self) -> bool:
        """The request answered but the grader could not run: no verdict."""
        return not self.error and self.score_status == GRADER_ERROR and self.score_source != "judge"

    @property
    def graded(self) -> bool:
        """Holds a verdict that counts: answered and graded (an undecided score counts as
        its value; a grader failure does not count, unless the judge's verdict does)."""
        return not self.error and self.score is not None and not self.grader_failed

    @property
    def answered(self) -> bool:
        """The model answered (whatever the grader made of it)."""
        return not self.error and self.response is not None

    @property
    def status(self) -> str:
        """``error`` (request or grader failed), ``truncated`` (cut by max_tokens: it wins over
        the verdict, which stays in ``correct``), ``correct`` or ``wrong``."""
        if self.error or self.grader_failed:
            return ERROR
        if self.truncated:
            return TRUNCATED
        if self.correct is True or (self.correct is None and (self.score or 0) >= 1.0):
            return CORRECT
        return WRONG

    @property
    def judged(self) -> bool:
        return self.judge_verdict is not None

    # -- the rule grader's score and the judge's -----------------------------------------
    def rule(self) -> Score:
        """The rule grader's score (the benchmark's), whatever the judge said."""
        value = self.rule_score if self.judged else self.score
        return Score(float(value or 0.0), self.extracted, self.grade_detail, self.score_status or DECIDED,
                     self.grade_info)

    def rule_undecided(self) -> bool:
        """The rule grader gave no verdict it stands by: its score is undecided (or it failed)
        and not a full mark."""
        rule = self.rule()
        return self.answered and rule.value < 1.0 and rule.status in (UNDECIDED, GRADER_ERROR)

    def with_score(self, score: Score) -> "SampleRecord":
        """This record graded by ``score`` (the rule grader's), any judge verdict dropped."""
        rec = self.without_judge()
        rec.extracted, rec.score, rec.correct = score.extracted, score.value, score.correct
        rec.grade_detail, rec.score_status, rec.grade_info = score.detail, score.status, score.info
        return rec

    def without_judge(self) -> "SampleRecord":
        """The record as the rule grader left it (an earlier verdict undone)."""
        rec = self.copy()
        if rec.judged:
            rec.score, rec.correct = rec.rule_score, rec.rule_correct
        rec.judge_verdict = rec.judge_text = rec.judge_model = None
        rec.rule_score = rec.rule_correct = rec.score_source = None
        return rec

    def copy(self) -> "SampleRecord":
        from copy import copy

        rec = copy(self)
        rec.extra = dict(self.extra)
        return rec

    # -- JSON ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The journal line as a mapping: every field of schema 1 always (``None`` included),
        the newer ones when set, the judge's only when judged, unknown keys kept."""
        out = {name: getattr(self, name) for name in V1_FIELDS}
        for name in _OPTIONAL_FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        for k, v in self.extra.items():
            out.setdefault(k, v)
        return out

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SampleRecord":
        """Any schema version's line. Lines of schema 1 carry no ``score_status``: it is
        derived as that version's readers did (a grade_detail starting with ``grader error``
        is a grader failure; no extracted answer, or a math-verify problem, leaves a wrong
        score undecided unless the response had no answer part at all)."""
        known = {k: data[k] for k in _FIELD_NAMES if k in data}
        extra = {k: v for k, v in data.items() if k not in _FIELD_NAMES}
        rec = cls(benchmark=str(known.pop("benchmark")), sample_id=str(known.pop("sample_id")),
                  repeat=int(known.pop("repeat")), **known)
        if extra:
            rec.extra = extra
        rec.subsets = [str(s) for s in rec.subsets or ()]
        if rec.score_status is None and not rec.error and rec.score is not None:
            rec.score_status = _v1_status(rec)
        return rec

    @classmethod
    def from_json(cls, line: bytes | str) -> "SampleRecord":
        return cls.from_dict(orjson.loads(line))


def _v1_status(rec: SampleRecord) -> str:
    from ..grading import answer_part

    detail = rec.grade_detail or ""
    if detail.startswith(_V1_GRADER_ERROR):
        return GRADER_ERROR
    value = rec.rule_score if rec.judged else rec.score
    if (value or 0.0) >= 1.0 or not answer_part(rec.response).strip():
        return DECIDED
    return UNDECIDED if rec.extracted is None or detail.startswith(_V1_UNDECIDED) else DECIDED


_FIELD_NAMES = frozenset(f.name for f in fields(SampleRecord)) - {"extra"}
#: the fields of a journal line in schema 1, in order (always written)
V1_FIELDS: tuple[str, ...] = ("benchmark", "sample_id", "repeat", "subsets", "question", "prompt", "gold", "response",
                              "reasoning", "finish_reason", "truncated", "extracted", "score", "correct",
                              "grade_detail", "error", "prompt_tokens", "completion_tokens", "latency_s", "attempts")
_OPTIONAL_FIELDS = tuple(f.name for f in fields(SampleRecord) if f.name not in V1_FIELDS and f.name != "extra")
#: every field a journal line may hold, in order
JOURNAL_FIELDS: tuple[str, ...] = V1_FIELDS + _OPTIONAL_FIELDS


def parse_line(line: bytes) -> SampleRecord | None:
    """A journal line as the library reads it; a torn write (a run being written, or killed) or
    a line that is not a record is None, never an error."""
    line = line.strip()
    if not line:
        return None
    try:
        data = orjson.loads(line)
        if not isinstance(data, dict):
            return None
        return SampleRecord.from_dict(data)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None  # a torn write from a crash, or a line that is not a record


class SampleJournal:
    """Reads ``samples.jsonl`` by byte offset (see the module doc).

    ``index`` maps each key to the offset of its latest complete line, in the order keys were
    first seen; ``size`` is how far the file has been read (the end of the last complete
    line). Nothing of the file is kept but the offsets.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.index: dict[Key, int] = {}
        self.size = 0
        self.lines = 0  # complete lines read (superseded ones included)

    def follow(self) -> Iterator[SampleRecord]:
        """The records appended since the last call, one at a time, in file order, indexed as
        they are read (a caller may stop early: what it read stays indexed). A last line without
        its newline is left for the next call. A file that shrank (replaced) is read again from
        the start."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return
        if st.st_size < self.size:
            self.index.clear()
            self.size = self.lines = 0
        if st.st_size == self.size:
            return
        with self.path.open("rb") as fh:
            fh.seek(self.size)
            for line in fh:
                if not line.endswith(b"\n"):
                    break  # torn or still being written
                offset = self.size
                self.size += len(line)
                self.lines += 1
                rec = parse_line(line)
                if rec is not None:
                    self.index[rec.key] = offset
                    yield rec

    def refresh(self) -> int:
        """Index what was appended since the last call (see :meth:`follow`); return how many
        records it held. Nothing of them is kept but their offsets."""
        n = 0
        for _ in self.follow():
            n += 1
        return n

    def __len__(self) -> int:
        return len(self.index)

    def __iter__(self) -> Iterator[SampleRecord]:
        """The latest record of every key, in first-seen order, read one at a time."""
        if not self.index:
            self.refresh()
        yield from self.read(self.index.values())

    def read(self, offsets: Iterable[int]) -> Iterator[SampleRecord]:
        """The records at these offsets (of :attr:`index`), in the order given."""
        if not self.index:
            return
        with self.path.open("rb") as fh:
            for off in offsets:
                fh.seek(off)
                rec = parse_line(fh.readline())
                if rec is not None:
                    yield rec

    def get(self, key: Key) -> SampleRecord | None:
        off = self.index.get(key)
        return None if off is None else next(self.read([off]), None)


def read_samples(path: str | os.PathLike) -> Iterator[SampleRecord]:
    """The latest record per (benchmark, sample_id, repeat), first-seen order; torn or blank
    lines skipped; nothing when the file does not exist. The whole file is read once for the
    offsets, then record by record."""
    journal = SampleJournal(path)
    journal.refresh()
    return iter(journal)


def latest_samples(records: Iterable[SampleRecord]) -> list[SampleRecord]:
    """The latest of each key among ``records`` (in first-seen order)."""
    latest: dict[Key, SampleRecord] = {}
    for rec in records:
        latest[rec.key] = rec
    return list(latest.values())


class JsonlWriter:
    """Appends JSON lines to a file of a run folder (flushed per line, fsynced every
    ``fsync_every`` seconds and on close). A crash can leave a last line without its
    newline: it is ended first, so appends stay parseable."""

    def __init__(self, path: str | os.PathLike, fsync_every: float = 2.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_tail()
        self._fh = self.path.open("ab")
        self._fsync_every = fsync_every
        self._last_sync = time.monotonic()

    def _repair_tail(self) -> None:
        if self.path.exists() and self.path.stat().st_size:
            with self.path.open("rb+") as fh:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    fh.write(b"\n")

    def append(self, rec: Any) -> None:
        """One line: an object with ``to_json()``, or a plain mapping."""
        data = rec.to_json() if hasattr(rec, "to_json") else orjson.dumps(rec, option=orjson.OPT_SERIALIZE_NUMPY)
        self._fh.write(data + b"\n")
        self._fh.flush()
        now = time.monotonic()
        if now - self._last_sync >= self._fsync_every:
            os.fsync(self._fh.fileno())
            self._last_sync = now

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()


class JournalWriter(JsonlWriter):
    """Appends :class:`SampleRecord` lines to ``samples.jsonl``."""

    def append(self, rec: SampleRecord) -> None:  # type: ignore[override]
        super().append(rec)


def write_samples(path: str | os.PathLike, records: Iterable[SampleRecord]) -> None:
    """A whole journal at once (a regrade, a resume's fill-in), atomically: streamed to a
    temporary file beside it, fsynced, renamed over it; never the whole journal in memory."""
    from ..files import atomic_write

    atomic_write(path, (r.to_json() + b"\n" for r in records))
