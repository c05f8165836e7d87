"""An eval journal as the app holds it: the library's :class:`SampleJournal` (one byte offset
per key) plus one small :class:`Entry` per sample (its verdict, score and the few fields the
filters and the live scores need), filled from the bytes appended since the last look.

Nothing of a journal's text is kept: a sample page reads its 25 records by offset, a search
scans the mapped file (pages of a mapped file are the kernel's cache, not the server's
memory) and parses only the lines the byte search found. So the server's memory is a few
hundred bytes per sample, whatever the size of the journal.
"""
from __future__ import annotations

import mmap
import os
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import orjson

from ..runfolder import CORRECT, ERROR, TRUNCATED, WRONG, Key, SampleJournal, SampleRecord, parse_line

#: bytes of journal parsed per step while following (the lock is released between steps)
STEP_BYTES = 8 << 20
#: bytes of the mapped journal lowered per step of a search (256 KB measured fastest of 256 KB-16 MB)
SEARCH_CHUNK = 256 << 10  # stays in the CPU cache while it is lowered and searched
#: texts a search looks in
SEARCH_FIELDS = ("question", "gold", "extracted", "response", "reasoning", "judge_text")
#: searches remembered per run (their hits: a list of offsets)
SEARCH_CACHE = 8
#: length of the error text kept per failed sample (the report counts errors by this text)
ERROR_TEXT = 80


_DIGITS = re.compile(r"\d+")


def natural_key(s: str) -> str:
    """A string that sorts ``q10`` after ``q9`` (every run of digits prefixed by its length;
    one small string per sample, not a tuple of parts)."""
    return _DIGITS.sub(lambda m: f"{len(m.group().lstrip('0') or '0'):03d}{m.group().lstrip('0') or '0'}", s.lower())


class Entry:
    """One sample (the latest line of its key): where it is and what it scored."""

    __slots__ = ("offset", "benchmark", "sample_id", "repeat", "subsets", "status", "correct", "score",
                 "extracted", "err", "failed", "grader_failed", "truncated", "seq", "nat")

    def __init__(self, rec: SampleRecord, offset: int, seq: int, intern: Callable[[Any], Any]):
        self.offset = offset
        self.benchmark = intern(rec.benchmark)
        self.sample_id = rec.sample_id
        self.repeat = rec.repeat
        self.subsets = intern(tuple(rec.subsets))
        self.status = rec.status
        self.correct = rec.correct
        self.failed = rec.failed
        self.grader_failed = rec.grader_failed
        self.score = rec.score
        self.truncated = bool(rec.truncated)
        self.extracted = rec.extracted if rec.extracted is None or isinstance(rec.extracted, str) else str(rec.extracted)
        err = rec.error if rec.failed else (rec.grade_detail or "grader error") if self.grader_failed else None
        self.err = " ".join(str(err).split())[:ERROR_TEXT] if err else None
        self.seq = seq
        self.nat: str | None = None

    def scored(self) -> SampleRecord:
        """A record carrying only what :func:`lmgauge.eval.report.build_results` reads."""
        rec = SampleRecord(self.benchmark, self.sample_id, self.repeat, subsets=list(self.subsets), score=self.score,
                           correct=self.correct, extracted=self.extracted, truncated=self.truncated)
        if self.failed:
            rec.error = self.err or "error"
        elif self.grader_failed:
            rec.score_status, rec.grade_detail = "error", self.err
        return rec

    def sort_key(self) -> str:
        if self.nat is None:
            self.nat = f"{natural_key(self.benchmark)}\0{natural_key(self.sample_id)}\0{self.repeat:09d}"
        return self.nat


class Filters:
    """What a sample listing asks for (every field optional)."""

    def __init__(self, benchmark: Iterable[str] = (), subset: Iterable[str] = (), status: Iterable[str] = (),
                 repeat: Iterable[int] = (), correct: bool | None = None, sample_id: str | None = None,
                 q: str | None = None):
        self.benchmark = frozenset(benchmark)
        self.subset = frozenset(subset)
        self.status = frozenset(status)
        self.repeat = frozenset(repeat)
        self.correct = correct
        self.sample_id = sample_id
        self.q = (q or "").strip() or None

    def match(self, e: Entry, skip_status: bool = False) -> bool:
        if self.benchmark and e.benchmark not in self.benchmark:
            return False
        if self.sample_id is not None and e.sample_id != self.sample_id:
            return False
        if self.repeat and e.repeat not in self.repeat:
            return False
        if self.subset and not self.subset.intersection(e.subsets):
            return False
        if self.correct is not None and (e.status == ERROR or bool(e.correct) != self.correct):
            return False
        if not skip_status and self.status and e.status not in self.status:
            return False
        return True


class EvalJournal:
    """A journal followed from its first byte on: :meth:`follow` reads what was appended (a torn
    last line waits for its newline), :meth:`page` filters, sorts and reads a page of records,
    :meth:`search` finds the samples whose texts hold a string. Thread-safe: following runs in
    a worker thread while pages are served."""

    def __init__(self, path: Path, max_repeat: int | None = None):
        self.path = Path(path)
        self.journal = SampleJournal(self.path)
        self.entries: dict[Key, Entry] = {}
        self.max_repeat = max_repeat  # repeats beyond the run's (an earlier session's) are ignored
        self.lock = threading.RLock()
        self.version = 0  # bumped whenever an entry changes
        self._ino: int | None = None
        self._seq = 0
        self._sorted: list[Entry] | None = None
        self._interned: dict[Any, Any] = {}
        self._searches: OrderedDict[tuple[str, int], list[int]] = OrderedDict()
        self.benchmarks: dict[str, None] = {}
        self.subsets: dict[str, dict[str, None]] = {}
        self.repeats: set[int] = set()

    def _intern(self, value: Any) -> Any:
        return self._interned.setdefault(value, value)

    # -- following -----------------------------------------------------------------------
    def follow(self, on_record: Callable[[Entry, Entry | None], None] | None = None) -> int:
        """Read the lines appended since the last call; returns how many records changed. A
        file that shrank or was replaced (a regrade rewrites its journal) is read again.
        Several threads may follow at once: each step holds the lock, from its stat on."""
        changed = 0
        while True:
            with self.lock:
                try:
                    st = os.stat(self.path)
                except FileNotFoundError:
                    return changed
                if st.st_size < self.journal.size or (self._ino is not None and st.st_ino != self._ino):
                    self._reset()
                    changed += 1
                self._ino = st.st_ino
                if st.st_size <= self.journal.size:
                    return changed
                n, more = self._step(on_record)
                changed += n
            if not more:
                return changed

    def _reset(self) -> None:
        self.journal = SampleJournal(self.path)
        self.entries.clear()
        self._sorted = None
        self._searches.clear()
        self.benchmarks.clear()
        self.subsets.clear()
        self.repeats.clear()
        self.version += 1

    def _step(self, on_record: Callable[[Entry, Entry | None], None] | None) -> tuple[int, bool]:
        """Up to STEP_BYTES of new lines; (records read, whether more may follow)."""
        j = self.journal
        changed = 0
        with open(self.path, "rb") as fh:
            fh.seek(j.size)
            offset = j.size
            budget = STEP_BYTES
            more = False
            for line in fh:
                if not line.endswith(b"\n"):
                    break  # torn, or still being written
                rec = parse_line(line)
                if rec is not None and (self.max_repeat is None or rec.repeat < self.max_repeat):
                    j.index[rec.key] = offset
                    old = self.entries.get(rec.key)
                    self._seq += 1
                    entry = Entry(rec, offset, old.seq if old is not None else self._seq, self._intern)
                    self.entries[rec.key] = entry
                    self.benchmarks.setdefault(entry.benchmark, None)
                    subs = self.subsets.setdefault(entry.benchmark, {})
                    for s in entry.subsets:
                        subs.setdefault(s, None)
                    self.repeats.add(entry.repeat)
                    if old is not None:
                        entry.nat = old.nat
                    self._sorted = None
                    if on_record is not None:
                        on_record(entry, old)
                    changed += 1
                j.lines += 1
                offset += len(line)
                budget -= len(line)
                if budget <= 0:
                    more = True
                    break
            j.size = offset
        if changed:
            self.version += 1
            self._searches.clear()
        return changed, more

    # -- reading -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.entries)

    def ordered(self, newest_first: bool = False) -> list[Entry]:
        """Every entry by (benchmark, sample id, repeat) in natural order, or newest first."""
        with self.lock:
            if newest_first:
                return sorted(self.entries.values(), key=lambda e: e.seq, reverse=True)
            if self._sorted is None:
                self._sorted = sorted(self.entries.values(), key=Entry.sort_key)
            return self._sorted

    def records(self, entries: Iterable[Entry]) -> list[SampleRecord | None]:
        """The full records of these entries, read by offset (in the order given; None where
        a line cannot be read any more, e.g. the file was replaced meanwhile)."""
        return [rec for _, rec in self.read_at([e.offset for e in entries])]

    def read_at(self, offsets: list[int]) -> list[tuple[int, SampleRecord | None]]:
        return list(self.iter_at(offsets))

    def iter_at(self, offsets: Iterable[int]) -> Iterator[tuple[int, SampleRecord | None]]:
        """(offset, record) one at a time: nothing but the current record is held."""
        offsets = list(offsets)
        if not offsets:
            return
        try:
            fh = open(self.path, "rb")
        except FileNotFoundError:
            for off in offsets:
                yield off, None
            return
        with fh:
            for off in offsets:
                fh.seek(off)
                yield off, parse_line(fh.readline())

    def select(self, f: Filters, newest_first: bool = False) -> tuple[list[Entry], dict[str, int]]:
        """(entries matching every filter, in order; counts per status under the other filters)."""
        hits = set(self.search(f.q)) if f.q else None
        counts = dict.fromkeys((CORRECT, WRONG, TRUNCATED, ERROR), 0)
        out = []
        for e in self.ordered(newest_first):
            if hits is not None and e.offset not in hits:
                continue
            if not f.match(e, skip_status=True):
                continue
            counts[e.status] = counts.get(e.status, 0) + 1
            if not f.status or e.status in f.status:
                out.append(e)
        return out, counts

    # -- search --------------------------------------------------------------------------
    def search(self, q: str) -> list[int]:
        """Offsets of the current lines whose question, gold, extracted answer, response,
        reasoning or judge's answer holds ``q`` (case-insensitive: ``q.lower()`` in
        ``text.lower()``).

        The mapped journal is searched for the longest ASCII run of the JSON-escaped, lowered
        query in the lowered bytes (a byte search, a few hundred MB/s); only the lines it hits
        are parsed and checked exactly. A query without ASCII letters or digits parses every
        line. Results are remembered until the journal changes."""
        needle_text = q.lower()
        with self.lock:
            size = self.journal.size
            key = (needle_text, size)
            found = self._searches.get(key)
            if found is not None:
                self._searches.move_to_end(key)
                return found
            current = {e.offset for e in self.entries.values()}
        candidates = self._candidates(needle_text, size, current)
        found = []
        for off, rec in self.iter_at(candidates):
            if rec is not None and _holds(rec, needle_text):
                found.append(off)
        with self.lock:
            self._searches[key] = found
            while len(self._searches) > SEARCH_CACHE:
                self._searches.popitem(last=False)
        return found

    def _candidates(self, needle_text: str, size: int, current: set[int]) -> list[int]:
        escaped = orjson.dumps(needle_text)[1:-1].lower()
        runs = [r for r in re.split(rb"[\x80-\xff]+", escaped) if r.strip()]
        needle = max(runs, key=len) if runs else b""
        if not needle or size == 0:
            return sorted(current)
        hits: set[int] = set()
        with open(self.path, "rb") as fh:
            try:
                mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            except ValueError:  # empty file
                return []
            try:
                fold = needle.lower() != needle.upper()
                if not fold:
                    pos = mm.find(needle, 0, size)
                    while pos != -1:
                        start = mm.rfind(b"\n", 0, pos) + 1
                        hits.add(start)
                        end = mm.find(b"\n", pos, size)
                        if end == -1:
                            break
                        pos = mm.find(needle, end, size)
                else:
                    overlap = len(needle) - 1
                    base = 0
                    while base < size:
                        top = min(size, base + SEARCH_CHUNK)
                        chunk = mm[base:top].lower()
                        pos = chunk.find(needle)
                        while pos != -1:
                            absolute = base + pos
                            start = mm.rfind(b"\n", 0, absolute) + 1
                            hits.add(start)
                            end = chunk.find(b"\n", pos)
                            if end == -1:
                                break
                            pos = chunk.find(needle, end)
                        del chunk
                        if top >= size:
                            break
                        base = top - overlap
            finally:
                mm.close()
        return sorted(hits & current)


def _holds(rec: SampleRecord, needle: str) -> bool:
    """``needle`` (lowered) in one of the searched texts, lowered; a text holding it as it is
    needs no lowering (most hits of a common word)."""
    texts = []
    for name in SEARCH_FIELDS:
        value = getattr(rec, name, None)
        if value is None:
            continue
        text = value if isinstance(value, str) else orjson.dumps(value).decode("utf-8", "replace")
        if needle in text:
            return True
        texts.append(text)
    return any(needle in t.lower() for t in texts)


def iter_scored(entries: Iterable[Entry]) -> Iterator[SampleRecord]:
    for e in entries:
        yield e.scored()
