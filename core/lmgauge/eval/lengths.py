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
  included. Each text is tokenized once; a response token is reasoning or answer by where its
  first character lies, so ``reasoning_tokens + answer_tokens == completion_tokens``.
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

Where it runs: the grading workers call :func:`analyze` right after ``score``
(lmgauge.eval.grading_pool, the tokenizer from :func:`worker_spec`); a resumed run measures
the samples :func:`needs_analysis` finds (lmgauge.eval.runner); ``lmgauge regrade`` measures
every sample again; :func:`lmgauge.eval.report.build_report` feeds :class:`LengthAnalytics`
in its one pass over the records.
"""
from __future__ import annotations

import math
import re
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
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


def worker_spec(counter: TokenCounter, folder: str | Path) -> str | None:
    """What grading workers load the run's tokenizer from (once per process, with
    :func:`worker_tokenizer`). A tiktoken encoding or a tokenizer folder is passed on as it is.
    A tokenizer that is slow to load (a ``.gguf`` file: its vocabulary is converted, 10-15 s
    per process) or that exists only as an object (an in-process backend's own) is saved once
    into ``folder`` with ``save_pretrained``, and the workers load that copy (under a second).
    None when there is nothing a worker could load."""
    tok, spec = counter.tokenizer, counter.spec
    if getattr(tok, "kind", None) == "tiktoken" and spec:
        return spec
    if spec and Path(spec).expanduser().is_dir():
        return spec
    impl = getattr(tok, "impl", None)
    if impl is not None and hasattr(impl, "save_pretrained"):
        out = Path(folder) / "tokenizer"
        impl.save_pretrained(str(out))
        return str(out)
    return spec


def needs_analysis(record: SampleRecord, upgrade: bool = False) -> bool:
    """A journaled sample without the analytics of :func:`analyze` (written by an older
    lmgauge, or its analysis failed): an answered sample with no reflection count or no token
    counts. ``upgrade``: also one counted with the approximate fallback (a run resumed with a
    ``--tokenizer`` now)."""
    if record.failed or record.response is None:
        return False
    if _stored(record, "reflections") is None or record.token_source is None or record.reasoning_tokens is None:
        return True
    return upgrade and record.token_source == APPROXIMATE


def usage_of(record: SampleRecord) -> int | None:
    """The server's per-sample usage count a journaled record holds, if any: a completion
    count with no source (the openai backend keeps usage only for one-choice responses) or
    one marked ``usage``; counts made by a tokenizer are not usage."""
    if record.completion_tokens is None or record.token_source not in (None, USAGE):
        return None
    return int(record.completion_tokens)


@lru_cache(maxsize=4)
def worker_tokenizer(spec: str) -> Any:
    """A tokenizer loaded once per process (a grading worker's copy of the run's)."""
    from ..tokenizers import load_tokenizer

    return load_tokenizer(spec)

# ---------------------------------------------------------------------------- counting


class _Tokens:
    """One text tokenized once, with where each token starts, so that any prefix's token count
    is a lookup: :meth:`before` is the number of tokens starting before a character offset.
    tiktoken (token byte lengths) and transformers fast tokenizers (offset mappings) give the
    starts; any other tokenizer (only ``count``) counts the prefix itself."""

    __slots__ = ("text", "tokenizer", "n", "starts", "in_bytes")

    def __init__(self, tokenizer: Any, text: str):
        self.text, self.tokenizer, self.starts, self.in_bytes = text, tokenizer, None, False
        kind, impl = getattr(tokenizer, "kind", None), getattr(tokenizer, "impl", None)
        if not text:
            self.n, self.starts = 0, []
        elif kind == "tiktoken" and hasattr(impl, "decode_tokens_bytes"):
            ids = impl.encode(text, disallowed_special=())
            self.starts = list(accumulate((len(b) for b in impl.decode_tokens_bytes(ids[:-1])), initial=0)) if ids else []
            self.n, self.in_bytes = len(ids), True
        elif kind == "hf" and getattr(impl, "is_fast", False):
            enc = impl(text, add_special_tokens=False, return_offsets_mapping=True)
            self.starts = [a for a, _ in enc["offset_mapping"]]
            self.n = len(self.starts)
        else:
            self.n = tokenizer.count(text)

    def before(self, pos: int) -> int:
        """Tokens that start before character ``pos`` (all of them at the end of the text)."""
        if pos <= 0:
            return 0
        if pos >= len(self.text):
            return self.n
        if self.starts is None:
            return self.tokenizer.count(self.text[:pos])
        at = len(self.text[:pos].encode("utf-8")) if self.in_bytes else pos
        return bisect_left(self.starts, at)


class _Counted:
    """The token counts of one sample: the reasoning field and the response, each tokenized
    once; a token of the response belongs to the part (thinking or answer) its first
    character is in, so ``reasoning + answer == completion`` always."""

    def __init__(self, tokenizer: Any, response: str | None, reasoning: str | None, starts_thinking: bool):
        self.field = reasoning or ""
        self.text = response or ""
        self.a0, self.a1 = _answer_span(self.text, starts_thinking)
        self.f = _Tokens(tokenizer, self.field)
        self.r = _Tokens(tokenizer, self.text)
        before_a0, before_a1 = self.r.before(self.a0), self.r.before(self.a1)
        self.completion = self.f.n + self.r.n
        self.answer = before_a1 - before_a0
        self.reasoning = self.completion - self.answer
        self._before_a0, self._before_a1 = before_a0, before_a1

    def pieces(self) -> list[str]:
        return [p for p in (self.field, self.text[:self.a0], self.text[self.a1:]) if p]

    def reasoning_prefix(self, chars: int) -> int:
        """Reasoning tokens in the first ``chars`` characters of the reasoning text (the field,
        then the response's thinking, then any thinking reopened after the answer)."""
        if chars <= len(self.field):
            return self.f.before(chars)
        chars -= len(self.field)
        if chars <= self.a0:
            return self.f.n + self.r.before(chars)
        return self.f.n + self._before_a0 + self.r.before(self.a1 + chars - self.a0) - self._before_a1


def count_tokens(record: SampleRecord, tokenizer: Any, starts_thinking: bool = False) -> tuple[int, int, int]:
    """``(completion_tokens, reasoning_tokens, answer_tokens)`` of a journaled sample, counted
    by ``tokenizer`` (a :class:`lmgauge.tokenizers.Tokenizer`, or anything with
    ``count(text) -> int``) on its texts as stored: completion = tokens of the reasoning field +
    tokens of the response; each text is tokenized once, and a response token counts as
    reasoning or answer by where its first character lies (see the module doc)."""
    c = _Counted(tokenizer, record.response, record.reasoning, starts_thinking)
    return c.completion, c.reasoning, c.answer


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
    c, r, a = count_tokens(rec, counter.tokenizer, starts_thinking)
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
_REFLECTION = re.compile(r"\b(?:" + "|".join(REFLECTION_MARKERS) + r")\b")  # on lower-cased text


def count_reflections(text: str | None) -> int:
    """How many reflection markers (:data:`REFLECTION_MARKERS`) ``text`` holds."""
    if not text:
        return 0
    return sum(1 for _ in _REFLECTION.finditer(text.lower()))  # 2.5x faster than re.I

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


def first_correct(bench: Any, sample: Any, response: str | None, reasoning: str | None = None, *,
                  tokenizer: Any = None, starts_thinking: bool = False,
                  max_candidates: int = MAX_CANDIDATES) -> dict[str, Any] | None:
    """Where the gold answer first appears in the reasoning of a completion (see
    :func:`locate_first_correct`); ``None`` when there is no reasoning. Without a tokenizer
    only the character position is given."""
    counted = _Counted(tokenizer, response, reasoning, starts_thinking) if tokenizer is not None else None
    text = "".join(counted.pieces() if counted else split_parts(response, reasoning, starts_thinking)[0])
    return locate_first_correct(bench, sample, text, counted, max_candidates)


def locate_first_correct(bench: Any, sample: Any, text: str, counted: "_Counted | None" = None,
                         max_candidates: int = MAX_CANDIDATES) -> dict[str, Any] | None:
    """The first candidate (:func:`answer_candidates`) of the reasoning ``text`` that
    ``bench.score(sample, Completion(text=candidate.graded))`` scores as correct (a full mark):

    ``{"chars": END, "tokens": T, "share_after": S, "candidates": K}`` — END is the character
    offset just past that candidate in the reasoning text, T the reasoning tokens up to there,
    S the share of the sample's reasoning tokens after it (T and S None without counts), K the
    number of candidates the reasoning holds. When none is correct, ``chars``, ``tokens`` and
    ``share_after`` are None: the gold never appears. The grader runs at most
    ``max_candidates`` times (identical candidates are graded once; it stops at the first
    correct one). ``None`` for an empty reasoning."""
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
            if counted is not None:
                total = counted.reasoning
                tokens = counted.reasoning_prefix(cand.end)
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
    """Token counts, reflections and first-correct of one completion; each text is tokenized
    once. ``response``/``reasoning``: the texts as journaled (not the grading pool's
    ``as_graded`` copy: ``starts_thinking`` says how to read them). ``tokenizer``: the run's
    (None: no counts), or its :attr:`TokenCounter.spec` (a worker process loads it once,
    :func:`worker_tokenizer`); ``source``: its :attr:`TokenCounter.source`; ``usage_tokens``:
    the server's per-sample completion count, when there is one; ``bench``/``sample``: the
    benchmark and question (None: no first-correct). Call it in the grading worker right
    after ``bench.score``."""
    if isinstance(tokenizer, str):
        tokenizer = worker_tokenizer(tokenizer)
    counted = _Counted(tokenizer, response, reasoning, starts_thinking) if tokenizer is not None else None
    pieces = counted.pieces() if counted is not None else split_parts(response, reasoning, starts_thinking)[0]
    text = "".join(pieces)
    out = SampleAnalytics(reflections=count_reflections(text))
    if counted is not None:
        c, r, a = counted.completion, counted.reasoning, counted.answer
        if usage_tokens is not None:
            out.completion_tokens, out.reasoning_tokens, out.answer_tokens = _with_usage(int(usage_tokens), r, a)
            out.token_source = USAGE
        else:
            out.completion_tokens, out.reasoning_tokens, out.answer_tokens = c, r, a
            out.token_source = source
    if bench is not None and text:
        out.first_correct = locate_first_correct(bench, sample, text, counted)
    return out

# ---------------------------------------------------------------------------- per run


def _stored(rec: SampleRecord, name: str) -> Any:
    """A per-sample figure: the record's field, else a value left in ``extra`` (a record built
    by hand, or by a writer that kept the figure there)."""
    value = getattr(rec, name, None)
    return rec.extra.get(name) if value is None else value


def _distribution(values: list[int]) -> dict[str, float | int] | None:
    from ..runfolder.perf import percentile

    if not values:
        return None
    values.sort()
    return {"mean": round(sum(values) / len(values), 1), "p50": round(percentile(values, 50), 1),
            "p90": round(percentile(values, 90), 1), "max": values[-1]}


def _ratio(a: float, b: float, digits: int = 6) -> float | None:
    return round(a / b, digits) if b else None


# a graded sample's numbers, as LengthAnalytics keeps them (no texts)
_SCORE, _CORRECT, _TRUNC, _COMP, _REAS, _ANS, _SRC, _REFL, _FC = range(9)


def _mean(values: Sequence[float], digits: int = 6) -> float | None:
    return round(sum(values) / len(values), digits) if values else None


def _group_stats(rows: Sequence[tuple]) -> dict[str, Any]:
    """The length statistics of one benchmark or subset from its samples' number rows."""
    n = len(rows)
    counted = [r for r in rows if r[_COMP] is not None]
    truncated = [r[_SCORE] for r in rows if r[_TRUNC]]
    finished = [r[_SCORE] for r in rows if not r[_TRUNC]]
    correct = [r[_COMP] for r in counted if r[_CORRECT]]
    wrong = [r[_COMP] for r in counted if not r[_CORRECT]]
    sources = Counter(r[_SRC] or USAGE for r in counted)
    reflected = [(r[_REFL], r[_REAS]) for r in rows if r[_REFL] is not None and r[_REAS] is not None]
    refl_tokens = sum(t for _, t in reflected)
    checked = [r[_FC] for r in rows if r[_FC] is not None]
    found = [fc for fc in checked if fc.get("chars") is not None]
    shares = [float(fc["share_after"]) for fc in found if fc.get("share_after") is not None]
    fc_tokens = [int(fc["tokens"]) for fc in found if fc.get("tokens") is not None]
    correct_score = sum(r[_SCORE] for r in counted)
    return {
        "samples": n,
        "counted": len(counted),
        "token_source": (next(iter(sources)) if len(sources) == 1 else ("mixed" if sources else None)),
        "completion_tokens": _distribution([r[_COMP] for r in counted]),
        "reasoning_tokens": _distribution([r[_REAS] for r in rows if r[_REAS] is not None]),
        "answer_tokens": _distribution([r[_ANS] for r in rows if r[_ANS] is not None]),
        "mean_tokens_correct": _mean(correct, 1),
        "mean_tokens_wrong": _mean(wrong, 1),
        "truncated": len(truncated),
        "truncation_rate": round(len(truncated) / n, 6) if n else 0.0,
        "score_finished": _mean(finished),
        "score_truncated": _mean(truncated),
        "tokens_per_correct": _ratio(sum(r[_COMP] for r in counted), correct_score, 1),
        "reflections_per_1k": _ratio(1000.0 * sum(k for k, _ in reflected), refl_tokens, 3),
        "reflections_per_sample": _mean([k for k, _ in reflected], 3),
        "first_correct": None if not checked else {
            "checked": len(checked),
            "found": len(found),
            "found_rate": round(len(found) / len(checked), 6),
            "mean_tokens": _mean(fc_tokens, 1),
            "mean_share_after": _mean(shares),
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
    report reads them). ``add`` keeps one tuple of numbers per graded sample (score, verdict,
    truncation, token counts, reflections, the first-correct figures), listed under its
    benchmark and each of its subsets, and the question it belongs to for the budget curve;
    never a text. Failed requests and grader failures are left out, as in the report. A graded
    record without token counts (an old run not yet filled in) counts in ``samples``, the
    truncation rate and the finished/truncated scores, but in nothing measured in tokens
    (``counted`` says how many had counts), and is left out of the budget curve."""

    def __init__(self) -> None:
        self._rows: dict[str, dict[str, list[tuple]]] = {}
        # per benchmark: question index, completion tokens, score, extracted answer (counted samples)
        self._curve: dict[str, tuple[dict[str, int], list[int], list[int], list[float], list[str | None]]] = {}

    def add(self, rec: SampleRecord) -> None:
        if rec.error or rec.score is None or rec.grader_failed:
            return
        score = float(rec.score)
        comp = rec.completion_tokens
        fc = _stored(rec, "first_correct")
        row = (score, rec.correct if rec.correct is not None else score >= 1.0, rec.truncated, comp,
               rec.reasoning_tokens, rec.answer_tokens, rec.token_source, _stored(rec, "reflections"),
               fc if isinstance(fc, dict) else None)
        groups = self._rows.get(rec.benchmark)
        if groups is None:
            groups = self._rows[rec.benchmark] = {"OVERALL": []}
        groups["OVERALL"].append(row)
        for name in rec.subsets:
            rows = groups.get(name)
            if rows is None:
                rows = groups[name] = []
            rows.append(row)
        if comp is not None:
            curve = self._curve.get(rec.benchmark)
            if curve is None:
                curve = self._curve[rec.benchmark] = ({}, [], [], [], [])
            index = curve[0].setdefault(rec.sample_id, len(curve[0]))
            curve[1].append(index)
            curve[2].append(int(comp))
            curve[3].append(score)
            curve[4].append(rec.extracted)

    def feed(self, records: Iterable[SampleRecord]) -> Iterable[SampleRecord]:
        """``records`` passed through, each added on the way (one read of the journal for the
        report and the analytics: ``build_results(analytics.feed(records), ...)``)."""
        add = self.add
        for rec in records:
            add(rec)
            yield rec

    def benchmarks(self) -> list[str]:
        return list(self._rows)

    def lengths(self, benchmark: str) -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]]]:
        """(the benchmark's length statistics over all its samples, the same per subset)."""
        groups = self._rows.get(benchmark)
        if not groups:
            return None, {}
        return _group_stats(groups["OVERALL"]), {n: _group_stats(rows) for n, rows in groups.items() if n != "OVERALL"}

    def budget_curve(self, benchmark: str, max_tokens: int | None, metric: Any = None,
                     repeats: int = 1) -> list[dict[str, Any]]:
        """The score the benchmark would have had at each smaller ``max_tokens`` B
        (:func:`budget_points`): a sample with ``completion_tokens > B`` counts as unanswered
        (score 0, no extracted answer); at B ≥ the run's ``max_tokens`` every sample keeps its
        score. Per question ``metric.per_question`` over its repeats (default AveragePass@1:
        their mean), then the mean over questions with the report's 95% CI."""
        import numpy as np

        from .metrics import AveragePass1, confidence_interval

        metric = metric or AveragePass1()
        ids, qidx, comps, scores, extracted = self._curve.get(benchmark) or ({}, [], [], [], [])
        q, comp, score = np.asarray(qidx, dtype=np.int64), np.asarray(comps), np.asarray(scores, dtype=float)
        per_q_n = np.bincount(q, minlength=len(ids)) if len(ids) else None
        mean_only = type(metric) is AveragePass1
        out = []
        for b in budget_points(max_tokens, max(comps, default=0)):
            fits = np.ones(len(comp), dtype=bool) if max_tokens is not None and b >= max_tokens else comp <= b
            if not len(ids):
                values: list[float] = []
            elif mean_only:  # the mean over a question's repeats, vectorized
                values = (np.bincount(q, np.where(fits, score, 0.0), minlength=len(ids)) / per_q_n).tolist()
            else:
                vals: list[list[float]] = [[] for _ in ids]
                xs: list[list[str | None]] = [[] for _ in ids]
                for i, ok, s, x in zip(qidx, fits.tolist(), scores, extracted):
                    vals[i].append(s if ok else 0.0)
                    xs[i].append(x if ok else None)
                values = [float(metric.per_question(v, x, repeats)) for v, x in zip(vals, xs)]
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
           "split_parts", "reasoning_text", "TokenCounter", "choose_tokenizer", "worker_tokenizer", "worker_spec",
           "needs_analysis", "usage_of", "count_tokens",
           "fill_token_counts", "count_reflections", "Candidate", "all_boxed", "answer_candidates", "first_correct",
           "locate_first_correct", "SampleAnalytics", "analyze", "LengthAnalytics", "length_stats", "budget_curve",
           "budget_points"]
