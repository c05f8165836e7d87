"""The append-only eval journal ``DIR/samples.jsonl``.

Every finished (question, repeat) is written as one JSON line and flushed at once, so a crash
or Ctrl-C loses nothing that finished; the file is fsynced every few seconds and on close.
Reading tolerates a torn last line (a crash in the middle of a write). A later line for the same
(benchmark, sample_id, repeat) supersedes an earlier one (a resumed run re-doing an error).
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterator

import orjson

Key = tuple[str, str, int]


@dataclass
class JournalRecord:
    """One line of ``samples.jsonl``: one (benchmark, question, repeat), graded or failed.

    The only definition of the journal's fields: the runner writes these, the report, the HTML
    page and the exporters read them (``JOURNAL_FIELDS``). ``error`` set means the request
    failed after its retries (no response, not scored; ``--resume`` re-runs it)."""

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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


#: the fields of a journal line, in order
JOURNAL_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(JournalRecord))


def record_key(rec: dict[str, Any]) -> Key:
    return (rec["benchmark"], rec["sample_id"], int(rec["repeat"]))


def read_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Latest record per key, in first-seen order; torn or blank lines are skipped."""
    latest: dict[Key, dict[str, Any]] = {}
    p = Path(path)
    if not p.exists():
        return []
    with p.open("rb") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                rec = orjson.loads(line)
                key = record_key(rec)
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                continue  # torn write from a crash
            latest[key] = rec
    return list(latest.values())


class Journal:
    def __init__(self, path: str | os.PathLike, fsync_every: float = 2.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_tail()
        self._fh = self.path.open("ab")
        self._fsync_every = fsync_every
        self._last_sync = time.monotonic()

    def _repair_tail(self) -> None:
        """A crash can leave a last line without newline; end it so appends stay parseable."""
        if self.path.exists() and self.path.stat().st_size:
            with self.path.open("rb+") as fh:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    fh.write(b"\n")

    def append(self, rec: dict[str, Any]) -> None:
        self._fh.write(orjson.dumps(rec, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")
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

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(read_records(self.path))
