"""How the model reasons: token counts, reflection markers, where the gold answer first
appears in the reasoning, length statistics and the token-budget curve.

Per sample (at generation / grading time, results stored in the journal):

- :func:`count_tokens` — ``(completion_tokens, reasoning_tokens, answer_tokens)`` counted on the
  texts exactly as journaled. The reasoning is the separate ``reasoning`` field (a server's
  ``reasoning_content``) plus the part of ``response`` up to and including ``</think>`` when the
  response carries its thinking inline (the split is :func:`lmgauge.grading.split_thinking`'s, so
  an unclosed ``<think>`` makes the whole response reasoning, and with ``--starts-thinking`` a
  response without any tag is all reasoning, as the grader reads it); the answer is the rest of
  the response. ``completion_tokens`` = count(reasoning field) + count(response), tags
  included. Reasoning and answer are counted separately, so their sum may differ from
  ``completion_tokens`` by a token where a tokenizer merges across the ``</think>`` boundary.
- :func:`choose_tokenizer` — ``--tokenizer``, else the model's own tokenizer (an in-process
  backend's, or a local folder / ``.gguf`` / hub id already in the Hugging Face cache: never a
  download), else ``cl100k_base`` marked approximate. ``token_source`` of a record is
  ``usage`` (the server's per-sample usage), ``tokenizer`` or ``approximate``.
- :func:`count_reflections` — the markers of :data:`REFLECTION_MARKERS` in the reasoning.
- :func:`first_correct` — the first candidate answer in the reasoning that the benchmark's own
  grader accepts: its position and the share of reasoning tokens spent after it.
- :func:`analyze` — all of the above for one completion, in one call (the grading worker's).

Per run (at report time, from numbers only):

- :class:`LengthAnalytics` — one pass over the journal's records (``add``), then
  :meth:`LengthAnalytics.lengths` per benchmark and subset and
  :meth:`LengthAnalytics.budget_curve` per benchmark; :func:`length_stats` and
  :func:`budget_curve` are the one-call forms.

Usage counts: a request with n > 1 choices reports usage summed over its choices (the openai
backend then leaves ``completion_tokens`` empty); a per-sample usage count is kept as the
completion count (``token_source = "usage"``) and split into reasoning and answer in the
proportion the tokenizer counts them.
"""
from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..grading import _BOXED, _THINK_CLOSE, _THINK_OPEN, _group
from ..runfolder import SampleRecord
from ..types import Completion

USAGE, TOKENIZER, APPROXIMATE = "usage", "tokenizer", "approximate"
TOKEN_SOURCES = (USAGE, TOKENIZER, APPROXIMATE)
FALLBACK_TOKENIZER = "cl100k_base"

# ---------------------------------------------------------------------------- splitting


def _answer_span(text: str, starts_thinking: bool = False) -> tuple[int, int]:
    """``(a0, a1)``: the answer part of ``text`` is ``text[a0:a1]``, everything else is
    thinking; the same split as :func:`lmgauge.grading.split_thinking` applied to the text the
    grader sees (with ``--starts-thinking`` the grading pool puts ``<think>`` back in front of a
    response whose first 200 characters hold none). An empty answer is ``(len, len)``."""
    shift = 0
    if starts_thinking and "<think" not in text[:200].lower():
        text, shift = "<think>" + text, 7
    last_close = None
    for last_close in _THINK_CLOSE.finditer(text):
        pass
    n = len(text)
    if last_close is None:
        if _THINK_OPEN.search(text):
            return n - shift, n - shift
        return 0, n  # no tags: all answer (shift is 0 here)
    a0, a1 = last_close.end(), n
    reopened = _THINK_OPEN.search(text, a0)
    if reopened:
        a1 = reopened.start()
    return a0 - shift, a1 - shift


def split_parts(response: str | None, reasoning: str | None = None,
                starts_thinking: bool = False) -> tuple[list[str], str]:
    """``(reasoning pieces, answer)`` of a journaled sample: the reasoning field, the response's
    thinking up to and including its last ``</think>``, and any thinking reopened after the
    answer (non-empty pieces, in order); the answer is the response's answer part."""
    text = response or ""
    a0, a1 = _answer_span(text, starts_thinking)
    pieces = [p for p in (reasoning or "", text[:a0], text[a1:]) if p]
    return pieces, text[a0:a1]


def reasoning_text(response: str | None, reasoning: str | None = None, starts_thinking: bool = False) -> str:
    """The reasoning of a sample as one text (the pieces of :func:`split_parts` joined as
    they are): what reflection markers and first-correct candidates are searched in."""
    return "".join(split_parts(response, reasoning, starts_thinking)[0])

# ---------------------------------------------------------------------------- tokenizers


@dataclass
class TokenCounter:
    """The tokenizer a run counts with. ``source``: ``tokenizer`` or ``approximate``;
    ``spec``: what :func:`lmgauge.tokenizers.load_tokenizer` reloads it from (a grading worker
    process loads its own copy with :func:`worker_tokenizer`), ``None`` for an in-process
    backend's own tokenizer object; ``note``: one line for the terminal when approximate."""

    tokenizer: Any
    source: str
    spec: str | None
    note: str | None = None

    @property
    def approximate(self) -> bool:
        return self.source == APPROXIMATE


def _cached_hub_folder(model: str) -> Path | None:
    """The local snapshot folder of a hub id whose tokenizer is already in the Hugging Face
    cache (never a download), else None."""
    if "/" not in model and not re.fullmatch(r"[\w.-]+", model):
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for name in ("tokenizer.json", "tokenizer_config.json"):
        try:
            found = try_to_load_from_cache(model, name)
        except Exception:  # noqa: BLE001 - not a valid repo id
            return None
        if isinstance(found, str):
            return Path(found).parent
    return None


def choose_tokenizer(spec: str | None = None, model: str | None = None, backend: Any = None) -> TokenCounter:
    """The run's tokenizer: ``spec`` (``--tokenizer``; a bad one is a ConfigError, one line),
    else the backend's own (in-process backends), else the served model's own when it can be
    loaded without a download (``model`` a tokenizer folder, a ``.gguf`` file, or a hub id in
    the local cache), else cl100k_base with the counts marked approximate."""
    from ..errors import ConfigError
    from ..tokenizers import load_tokenizer

    if spec:
        return TokenCounter(load_tokenizer(spec), TOKENIZER, spec)
    own = backend.own_tokenizer() if backend is not None and hasattr(backend, "own_tokenizer") else None
    if own is not None:
        return TokenCounter(own, TOKENIZER, None)
    if model:
        path = Path(model).expanduser()
        local = str(path) if (path.is_dir() or (path.is_file() and model.endswith(".gguf"))) else None
        if local is None:
            folder = _cached_hub_folder(model)
            local = str(folder) if folder is not None else None
        if local is not None:
            try:
                return TokenCounter(load_tokenizer(local), TOKENIZER, local)
            except ConfigError:
                pass
    note = (f"token counts are approximate ({FALLBACK_TOKENIZER}): the tokenizer of {model or 'the model'} "
            "could not be loaded offline; pass --tokenizer FOLDER|FILE.gguf|HUB_ID for exact counts")
    return TokenCounter(load_tokenizer(FALLBACK_TOKENIZER), APPROXIMATE, FALLBACK_TOKENIZER, note)


@lru_cache(maxsize=4)
def worker_tokenizer(spec: str) -> Any:
    """A tokenizer loaded once per process (a grading worker's copy of the run's)."""
    from ..tokenizers import load_tokenizer

    return load_tokenizer(spec)

# ---------------------------------------------------------------------------- counting


def _count_parts(pieces: Sequence[str], answer: str, response: str, reasoning: str | None,
                 tokenizer: Any) -> tuple[int, int, int, list[int]]:
    counts = [tokenizer.count(p) for p in pieces]
    reasoning_n = sum(counts)
    answer_n = tokenizer.count(answer) if answer else 0
    completion_n = (tokenizer.count(reasoning) if reasoning else 0) + (tokenizer.count(response) if response else 0)
    return completion_n, reasoning_n, answer_n, counts


def count_tokens(record: SampleRecord, tokenizer: Any, starts_thinking: bool = False) -> tuple[int, int, int]:
    """``(completion_tokens, reasoning_tokens, answer_tokens)`` of a journaled sample, counted
    by ``tokenizer`` (anything with ``count(text) -> int``) on its texts as stored (see the
    module doc). A record without a response counts ``(0, 0, 0)`` plus its reasoning field."""
    pieces, answer = split_parts(record.response, record.reasoning, starts_thinking)
    c, r, a, _ = _count_parts(pieces, answer, record.response or "", record.reasoning, tokenizer)
    return c, r, a


def _with_usage(usage: int, reasoning_n: int, answer_n: int) -> tuple[int, int, int]:
    """A per-sample usage count split into reasoning and answer in the tokenizer's proportion."""
    total = reasoning_n + answer_n
    if total <= 0:
        return usage, 0, usage
    r = round(usage * reasoning_n / total)
    return usage, r, usage - r


def fill_token_counts(record: SampleRecord, counter: TokenCounter, starts_thinking: bool = False,
                      force: bool = False) -> SampleRecord:
    """``record`` with ``completion_tokens``, ``reasoning_tokens``, ``answer_tokens`` and
    ``token_source`` set (a copy; the record itself is left alone). A completion count already
    journaled without a source is the backend's per-sample usage (the openai backend keeps
    usage only for one-choice responses) and stays, as ``usage``. Records already counted are
    returned as they are unless ``force`` (a per-sample usage count is kept even then); failed
    requests are never counted."""
    if record.failed or record.response is None:
        return record
    if not force and record.token_source is not None and record.reasoning_tokens is not None:
        return record
    rec = record.copy()
    pieces, answer = split_parts(rec.response, rec.reasoning, starts_thinking)
    c, r, a, _ = _count_parts(pieces, answer, rec.response or "", rec.reasoning, counter.tokenizer)
    usage = rec.completion_tokens if rec.token_source in (None, USAGE) else None
    if usage is not None:
        rec.completion_tokens, rec.reasoning_tokens, rec.answer_tokens = _with_usage(int(usage), r, a)
        rec.token_source = USAGE
    else:
        rec.completion_tokens, rec.reasoning_tokens, rec.answer_tokens = c, r, a
        rec.token_source = counter.source
    return rec

# ---------------------------------------------------------------------------- reflections


#: Reflection markers: phrases with which a reasoning model stops to re-examine, verify,
#: backtrack or switch approach (the "aha" vocabulary of DeepSeek-R1-style traces, after the
#: keyword lists used in R1-reproduction studies). Each is a regular expression matched
#: case-insensitively on word boundaries; matches do not overlap (leftmost first, and at one
#: position the earlier entry wins), so "but wait" or "wait, wait" count once per "wait" and
#: "let me double-check" counts once.
REFLECTION_MARKERS: tuple[str, ...] = (
    r"wait",                                        # "Wait, ...", "but wait", "no, wait"
    r"hmm+",                                        # "Hmm", "Hmmm"
    r"alternatively",                               # switching approach
    r"actually",                                    # "Actually, that's wrong"
    r"on second thought",
    r"hold on",
    r"double[- ]?check(?:s|ed|ing)?",               # "let me double-check", "double check"
    r"re-?check(?:s|ed|ing)?",                      # "let me re-check", "recheck"
    r"let me (?:check|verify|confirm)",
    r"check (?:again|that again|this again)",
    r"re-?examin(?:e|es|ed|ing)",
    r"re-?evaluat(?:e|es|ed|ing)",
    r"reconsider(?:s|ed|ing)?",
    r"re-?think(?:s|ing)?",
    r"(?:i|we) made (?:a|an) (?:mistake|error)",
    r"(?:that|this)(?:['’]s| is) (?:not right|wrong|incorrect)",
    r"(?:that|this) can['’]?t be (?:right|correct)",
)
_REFLECTION = re.compile(r"\b(?:" + "|".join(REFLECTION_MARKERS) + r")\b", re.I)


def count_reflections(text: str | None) -> int:
    """How many reflection markers (:data:`REFLECTION_MARKERS`) ``text`` holds."""
    if not text:
        return 0
    return sum(1 for _ in _REFLECTION.finditer(text))

# ---------------------------------------------------------------------------- first correct


MAX_CANDIDATES = 64
"""At most this many distinct candidates are graded per sample (then: not found)."""

_STATEMENT = re.compile(r"\b(?:final\s+)?answer\s*(?:is|would\s+be|should\s+be|must\s+be|:)[ \t]*:?[ \t]*", re.I)
_PROSE = re.compile(r"\s+[A-Za-z]{2,}")
_THINK_TAG = re.compile(r"</?think", re.I)


@dataclass(frozen=True)
class Candidate:
    """A candidate answer in the reasoning: ``text[start:end]`` as written, ``graded`` the
    completion text handed to the benchmark's grader, ``kind`` ``boxed`` or ``statement``."""

    start: int
    end: int
    graded: str
    kind: str


def all_boxed(text: str) -> list[tuple[int, int, str]]:
    """Every complete ``\\boxed{...}`` / ``\\fbox{...}`` (and ``\\boxed 5``) in ``text``, in order:
    ``(start, end, content)`` with ``text[start:end]`` the whole expression (the brace parser
    of :func:`lmgauge.grading.last_boxed`). Empty boxes are skipped."""
    out = []
    if not text or "box" not in text:
        return out
    for m in _BOXED.finditer(text):
        if m.group(1) is not None:
            got = _group(text, m.start(1))
            if got is None or not got[0].strip():
                continue
            out.append((m.start(), got[1], got[0].strip()))
        else:
            value = m.group(2).rstrip(".,;:")
            if value:
                out.append((m.start(), m.start(2) + len(value), value))
    return out


def _statement_value(text: str, pos: int) -> int:
    """End of the answer stated from ``pos`` on ("the answer is X"): X runs to the end of its
    sentence (a ``.`` not followed by a digit) or line, a ``;``/``?``/``!``, a think tag, a comma
    or space followed by a word (prose), or a closing bracket it did not open; brackets and
    ``$…$`` are skipped whole."""
    n, i, depth, in_math = len(text), pos, 0, False
    limit = min(n, pos + 300)
    while i < limit:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "$":
            in_math = not in_math
            i += 2 if text.startswith("$$", i) else 1
            continue
        if not in_math:
            if c in "([{":
                depth += 1
            elif c in ")]}":
                depth -= 1
                if depth < 0:
                    return i
            elif depth == 0:
                if c in "\n;?!":
                    return i
                if c == "." and not (i + 1 < n and text[i + 1].isdigit()):
                    return i  # a full stop; "3.5" goes on
                if c == "<" and _THINK_TAG.match(text, i):
                    return i
                if c == "," and re.match(r",\s*[A-Za-z]{2,}", text[i:i + 40]):
                    return i
                if c.isspace() and i > pos and _PROSE.match(text, i):
                    return i
        i += 1
    return min(i, n)


def answer_candidates(text: str) -> list[Candidate]:
    """The candidate answers of a reasoning text, in order of position: each ``\\boxed{}``
    expression (graded as written) and each "the answer is X" statement ("final answer is",
    "answer would/should/must be", "answer:" too; graded as ``The answer is X.``); a
    statement whose X holds a box is left to that box."""
    found = [Candidate(s, e, text[s:e], "boxed") for s, e, _ in all_boxed(text)]
    if "nswer" in text:
        for m in _STATEMENT.finditer(text):
            end = _statement_value(text, m.end())
            value = text[m.end():end].strip().strip("*").strip()
            if not value or "box" in value:
                continue
            found.append(Candidate(m.start(), m.end() + len(text[m.end():end].rstrip()), f"The answer is {value}.",
                                   "statement"))
    found.sort(key=lambda c: (c.start, c.kind != "boxed"))
    return found


def _prefix_tokens(pieces: Sequence[str], counts: Sequence[int], chars: int, tokenizer: Any) -> int:
    """Tokens of the first ``chars`` characters of the joined pieces (pieces counted apart,
    as the reasoning count is)."""
    total = 0
    for piece, n in zip(pieces, counts):
        if chars >= len(piece):
            total += n
            chars -= len(piece)
            if chars == 0:
                break
        else:
            total += tokenizer.count(piece[:chars])
            break
    return total


def first_correct(bench: Any, sample: Any, response: str | None, reasoning: str | None = None, *,
                  tokenizer: Any = None, starts_thinking: bool = False,
                  max_candidates: int = MAX_CANDIDATES) -> dict[str, Any] | None:
    """Where the gold answer first appears in the reasoning (see :func:`locate_first_correct`,
    which this calls after splitting and counting); ``None`` when there is no reasoning."""
    pieces, _ = split_parts(response, reasoning, starts_thinking)
    if not pieces:
        return None
    counts = [tokenizer.count(p) for p in pieces] if tokenizer is not None else None
    return locate_first_correct(bench, sample, pieces, counts, tokenizer, max_candidates)


def locate_first_correct(bench: Any, sample: Any, pieces: Sequence[str], counts: Sequence[int] | None,
                         tokenizer: Any, max_candidates: int = MAX_CANDIDATES) -> dict[str, Any] | None:
    """The first candidate (:func:`answer_candidates`) of the reasoning ``pieces`` that
    ``bench.score(sample, Completion(text=candidate.graded))`` scores as correct (a full mark):

    ``{"chars": END, "tokens": T, "share_after": S, "candidates": K}`` — END is the character
    offset just past that candidate in the reasoning text, T the reasoning tokens up to there
    (None without a tokenizer), S the share of the reasoning tokens after it, K the number of
    candidates the reasoning holds. When none is correct, ``chars``/``tokens``/``share_after``
    are None (the gold never appears). The grader runs at most ``max_candidates`` times
    (identical candidates are graded once; grading stops at the first correct one)."""
    text = "".join(pieces)
    if not text:
        return None
    cands = answer_candidates(text)
    out: dict[str, Any] = {"chars": None, "tokens": None, "share_after": None, "candidates": len(cands)}
    verdicts: dict[str, bool] = {}
    for cand in cands:
        ok = verdicts.get(cand.graded)
        if ok is None:
            if len(verdicts) >= max_candidates:
                break
            try:
                ok = bool(bench.score(sample, Completion(text=cand.graded)).correct)
            except Exception:  # noqa: BLE001 - a grader failing on a candidate: not correct
                ok = False
            verdicts[cand.graded] = ok
        if ok:
            out["chars"] = cand.end
            if tokenizer is not None and counts is not None:
                total = sum(counts)
                tokens = _prefix_tokens(pieces, counts, cand.end, tokenizer)
                out["tokens"] = tokens
                out["share_after"] = round(max(0.0, (total - tokens) / total), 6) if total else 0.0
            break
    return out

# ---------------------------------------------------------------------------- one sample


@dataclass
class SampleAnalytics:
    """What :func:`analyze` finds for one completion; :meth:`apply` puts it on a record."""

    completion_tokens: int | None = None
    reasoning_tokens: int | None = None
    answer_tokens: int | None = None
    token_source: str | None = None
    reflections: int | None = None
    first_correct: dict[str, Any] | None = None

    def apply(self, record: SampleRecord) -> SampleRecord:
        """A copy of ``record`` with these figures (``reflections`` and ``first_correct`` go in
        the record's fields of those names when SampleRecord has them, else in ``extra``)."""
        rec = record.copy()
        if self.completion_tokens is not None:
            rec.completion_tokens, rec.reasoning_tokens = self.completion_tokens, self.reasoning_tokens
            rec.answer_tokens, rec.token_source = self.answer_tokens, self.token_source
        for name in ("reflections", "first_correct"):
            value = getattr(self, name)
            if hasattr(rec, name):
                setattr(rec, name, value)
            elif value is not None:
                rec.extra[name] = value
        return rec


def analyze(bench: Any, sample: Any, response: str | None, reasoning: str | None = None, *,
            tokenizer: Any = None, source: str = TOKENIZER, usage_tokens: int | None = None,
            starts_thinking: bool = False) -> SampleAnalytics:
    """Token counts, reflections and first-correct of one completion, each text tokenized once
    (the response twice: whole, and split). ``tokenizer``: the run's (None: no counts), or
    its :attr:`TokenCounter.spec` (a worker process loads it once, :func:`worker_tokenizer`);
    ``source``: its :attr:`TokenCounter.source`; ``usage_tokens``: the server's per-sample
    completion count, when there is one; ``bench``/``sample``: the benchmark and question
    (None: no first-correct). Call it in the grading worker right after ``bench.score``."""
    if isinstance(tokenizer, str):
        tokenizer = worker_tokenizer(tokenizer)
    pieces, answer = split_parts(response, reasoning, starts_thinking)
    out = SampleAnalytics(reflections=sum(count_reflections(p) for p in pieces))
    counts = None
    if tokenizer is not None:
        c, r, a, counts = _count_parts(pieces, answer, response or "", reasoning, tokenizer)
        if usage_tokens is not None:
            out.completion_tokens, out.reasoning_tokens, out.answer_tokens = _with_usage(int(usage_tokens), r, a)
            out.token_source = USAGE
        else:
            out.completion_tokens, out.reasoning_tokens, out.answer_tokens = c, r, a
            out.token_source = source
    if bench is not None and pieces:
        out.first_correct = locate_first_correct(bench, sample, pieces, counts, tokenizer)
    return out

# ---------------------------------------------------------------------------- per run


def _stored(rec: SampleRecord, name: str) -> Any:
    """A per-sample figure: the record's field, or (until SampleRecord declares it) the value
    a newer writer left in ``extra``."""
    if hasattr(rec, name):
        return getattr(rec, name)
    return rec.extra.get(name)


def _distribution(values: list[int]) -> dict[str, float | int] | None:
    from ..runfolder.perf import percentile

    if not values:
        return None
    values.sort()
    return {"mean": round(sum(values) / len(values), 1), "p50": round(percentile(values, 50), 1),
            "p90": round(percentile(values, 90), 1), "max": values[-1]}


def _ratio(a: float, b: float, digits: int = 6) -> float | None:
    return round(a / b, digits) if b else None


@dataclass
class _Group:
    """Numbers of one benchmark or subset (no texts)."""

    samples: int = 0
    counted: int = 0
    completion: list[int] = field(default_factory=list)
    reasoning: list[int] = field(default_factory=list)
    answer: list[int] = field(default_factory=list)
    sources: Counter = field(default_factory=Counter)
    correct_n: int = 0
    correct_tokens: int = 0
    wrong_n: int = 0
    wrong_tokens: int = 0
    truncated: int = 0
    score_finished: float = 0.0
    score_truncated: float = 0.0
    counted_score: float = 0.0
    counted_tokens: int = 0
    reflections: int = 0
    reflection_tokens: int = 0
    reflection_samples: int = 0
    fc_checked: int = 0
    fc_found: int = 0
    fc_share_after: float = 0.0
    fc_shared: int = 0
    fc_tokens: int = 0
    fc_tokened: int = 0

    def add(self, score: float, correct: bool, truncated: bool, comp: int | None, reas: int | None,
            ans: int | None, source: str | None, refl: int | None, fc: dict | None) -> None:
        self.samples += 1
        if truncated:
            self.truncated += 1
            self.score_truncated += score
        else:
            self.score_finished += score
        if comp is not None:
            self.counted += 1
            self.completion.append(comp)
            self.counted_score += score
            self.counted_tokens += comp
            if correct:
                self.correct_n += 1
                self.correct_tokens += comp
            else:
                self.wrong_n += 1
                self.wrong_tokens += comp
            self.sources[source or USAGE] += 1
        if reas is not None:
            self.reasoning.append(reas)
        if ans is not None:
            self.answer.append(ans)
        if refl is not None and reas is not None:
            self.reflections += refl
            self.reflection_tokens += reas
            self.reflection_samples += 1
        if fc is not None:
            self.fc_checked += 1
            if fc.get("chars") is not None:
                self.fc_found += 1
                if fc.get("share_after") is not None:
                    self.fc_share_after += float(fc["share_after"])
                    self.fc_shared += 1
                if fc.get("tokens") is not None:
                    self.fc_tokens += int(fc["tokens"])
                    self.fc_tokened += 1

    def result(self) -> dict[str, Any]:
        finished = self.samples - self.truncated
        sources = dict(self.sources)
        return {
            "samples": self.samples,
            "counted": self.counted,
            "token_source": (next(iter(sources)) if len(sources) == 1 else ("mixed" if sources else None)),
            "completion_tokens": _distribution(self.completion),
            "reasoning_tokens": _distribution(self.reasoning),
            "answer_tokens": _distribution(self.answer),
            "mean_tokens_correct": _ratio(self.correct_tokens, self.correct_n, 1),
            "mean_tokens_wrong": _ratio(self.wrong_tokens, self.wrong_n, 1),
            "truncated": self.truncated,
            "truncation_rate": _ratio(self.truncated, self.samples) if self.samples else 0.0,
            "score_finished": _ratio(self.score_finished, finished),
            "score_truncated": _ratio(self.score_truncated, self.truncated),
            "tokens_per_correct": _ratio(self.counted_tokens, self.counted_score, 1),
            "reflections_per_1k": _ratio(1000.0 * self.reflections, self.reflection_tokens, 3),
            "reflections_per_sample": _ratio(self.reflections, self.reflection_samples, 3),
            "first_correct": None if not self.fc_checked else {
                "checked": self.fc_checked,
                "found": self.fc_found,
                "found_rate": _ratio(self.fc_found, self.fc_checked),
                "mean_tokens": _ratio(self.fc_tokens, self.fc_tokened, 1),
                "mean_share_after": _ratio(self.fc_share_after, self.fc_shared),
            },
        }


def budget_points(max_tokens: int | None, longest: int) -> list[int]:
    """The budgets B of the curve: powers of two from 1,024 up to and including
    ``max_tokens`` (a ``max_tokens`` that is no power of two is added last); without one, up to
    the first power of two at or above ``longest``."""
    if max_tokens is not None and max_tokens > 0:
        points = [2 ** k for k in range(10, 64) if 2 ** k <= max_tokens]
        if max_tokens not in points:
            points.append(max_tokens)
        return points
    if longest <= 0:
        return []
    points = [1024]
    while points[-1] < longest:
        points.append(points[-1] * 2)
    return points


class LengthAnalytics:
    """The run's length analytics in one pass over its records (the latest per key, as the
    report reads them). ``add`` keeps only numbers: per benchmark and subset the token counts
    and counters, per question the (completion tokens, score, extracted answer) of its
    repeats for the budget curve. Failed requests and grader failures are left out, as in the
    report; a graded record without token counts counts in ``samples``, the truncation rate and
    finished/truncated scores, but in nothing measured in tokens (``counted`` says how many
    had counts), and is left out of the budget curve."""

    def __init__(self) -> None:
        self._groups: dict[str, dict[str, _Group]] = defaultdict(dict)
        self._questions: dict[str, dict[str, list[tuple[int, float, str | None]]]] = defaultdict(dict)
        self._longest: dict[str, int] = defaultdict(int)

    def add(self, rec: SampleRecord) -> None:
        if rec.failed or rec.grader_failed or rec.score is None:
            return
        score = float(rec.score)
        correct = rec.correct if rec.correct is not None else score >= 1.0
        comp = rec.completion_tokens
        fc = _stored(rec, "first_correct")
        args = (score, bool(correct), bool(rec.truncated), comp, rec.reasoning_tokens, rec.answer_tokens,
                rec.token_source, _stored(rec, "reflections"), fc if isinstance(fc, dict) else None)
        groups = self._groups[rec.benchmark]
        for name in ("OVERALL", *rec.subsets):
            g = groups.get(name)
            if g is None:
                g = groups[name] = _Group()
            g.add(*args)
        if comp is not None:
            self._questions[rec.benchmark].setdefault(rec.sample_id, []).append((int(comp), score, rec.extracted))
            if comp > self._longest[rec.benchmark]:
                self._longest[rec.benchmark] = int(comp)

    def feed(self, records: Iterable[SampleRecord]) -> Iterable[SampleRecord]:
        """``records`` passed through, each added on the way (one read of the journal for the
        report and the analytics: ``build_results(analytics.feed(records), ...)``)."""
        for rec in records:
            self.add(rec)
            yield rec

    def benchmarks(self) -> list[str]:
        return list(self._groups)

    def lengths(self, benchmark: str) -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]]]:
        """(the benchmark's length statistics over all its samples, the same per subset)."""
        groups = self._groups.get(benchmark)
        if not groups:
            return None, {}
        overall = groups["OVERALL"].result()
        subsets = {name: g.result() for name, g in groups.items() if name != "OVERALL"}
        return overall, subsets

    def budget_curve(self, benchmark: str, max_tokens: int | None, metric: Any = None,
                     repeats: int = 1) -> list[dict[str, Any]]:
        """The score the benchmark would have had at each smaller ``max_tokens`` B
        (:func:`budget_points`): a sample with ``completion_tokens > B`` counts as unanswered
        (score 0, no extracted answer); at B ≥ the run's ``max_tokens`` every sample keeps its
        score. Per question ``metric.per_question`` over its repeats (default AveragePass@1:
        their mean), then the mean over questions with the report's 95% CI."""
        from .metrics import AveragePass1, confidence_interval

        metric = metric or AveragePass1()
        questions = self._questions.get(benchmark) or {}
        out = []
        for b in budget_points(max_tokens, self._longest.get(benchmark, 0)):
            keep_all = max_tokens is not None and b >= max_tokens
            values = []
            for reps in questions.values():
                vals = [s if keep_all or c <= b else 0.0 for c, s, _ in reps]
                extracted = [x if keep_all or c <= b else None for c, _, x in reps]
                values.append(float(metric.per_question(vals, extracted, repeats)))
            lo, hi = confidence_interval(values)
            out.append({"max_tokens": b, "score": round(sum(values) / len(values), 6) if values else None,
                        "ci_low": None if math.isnan(lo) else round(lo, 6),
                        "ci_high": None if math.isnan(hi) else round(hi, 6)})
        return out

    def annotate(self, summaries: Iterable[Any], max_tokens: int | None, metric: Any = None, repeats: int = 1) -> None:
        """Fill ``lengths``, ``subset_lengths`` and ``budget_curve`` of each
        :class:`lmgauge.runfolder.BenchmarkSummary` whose benchmark has records."""
        for s in summaries:
            overall, subsets = self.lengths(s.benchmark)
            if overall is None:
                continue
            s.lengths, s.subset_lengths = overall, subsets
            s.budget_curve = self.budget_curve(s.benchmark, max_tokens, metric, repeats)


def length_stats(records: Iterable[SampleRecord]) -> dict[str, dict[str, Any]]:
    """``{benchmark: {"lengths": {...}, "subset_lengths": {SUBSET: {...}}}}`` in one pass."""
    acc = LengthAnalytics()
    for rec in records:
        acc.add(rec)
    out = {}
    for b in acc.benchmarks():
        overall, subsets = acc.lengths(b)
        out[b] = {"lengths": overall, "subset_lengths": subsets}
    return out


def budget_curve(records: Iterable[SampleRecord], max_tokens: int | None, metric: Any = None,
                 repeats: int = 1) -> list[dict[str, Any]]:
    """The token-budget curve (:meth:`LengthAnalytics.budget_curve`) of one benchmark's
    records (records of several benchmarks: pass them one benchmark at a time)."""
    acc = LengthAnalytics()
    names = set()
    for rec in records:
        acc.add(rec)
        names.add(rec.benchmark)
    if len(names) > 1:
        raise ValueError(f"budget_curve takes one benchmark's records, got {len(names)} benchmarks")
    return acc.budget_curve(next(iter(names)), max_tokens, metric, repeats) if names else []


__all__ = ["USAGE", "TOKENIZER", "APPROXIMATE", "TOKEN_SOURCES", "REFLECTION_MARKERS", "MAX_CANDIDATES",
           "split_parts", "reasoning_text", "TokenCounter", "choose_tokenizer", "worker_tokenizer", "count_tokens",
           "fill_token_counts", "count_reflections", "Candidate", "all_boxed", "answer_candidates", "first_correct",
           "locate_first_correct", "SampleAnalytics", "analyze", "LengthAnalytics", "length_stats", "budget_curve",
           "budget_points"]
