"""Answer extraction and grading shared by the benchmarks (and usable by third-party plugins).

Public API (stable)::

    split_thinking(text) -> (thinking, answer_part)
    answer_part(text) -> str
    last_boxed(text) -> str | None
    extract_math_answer(response) -> str | None
    normalize_math(answer) -> str
    math_equal(pred, gold, timeout_s=TIMEOUT_S) -> (bool, detail | None)
    grade_math(response, gold, timeout_s=TIMEOUT_S) -> Score
    to_integer(answer) -> int | None
    grade_integer(response, gold, timeout_s=TIMEOUT_S) -> Score
    extract_choice(response, letters="ABCD") -> str | None
    grade_choice(response, gold, letters="ABCD") -> Score

Reasoning output: only the text after the thinking counts. ``<think>…</think>`` blocks are
removed; with an unpaired ``</think>`` everything before it is thinking; an unclosed ``<think>``
means the model never left its thinking, so there is no answer. A ``\\boxed{}`` (or an
``ANSWER:`` line) inside thinking never counts.

Math answers: the last complete ``\\boxed{…}`` (or ``\\fbox{…}``) of the answer part, else a
stated "final answer is …". Graded by a cheap normalized string comparison first (and an exact
comparison when both sides are plain numbers), then math-verify with the gold parsed first,
each parse/verify under math-verify's own timeout. math-verify's timeouts use SIGALRM, so grade
in a process's main thread (the lmgauge core grades in worker processes); from any other thread
the graders still work but run math-verify without a timeout.
"""
from __future__ import annotations

import re
import threading
from fractions import Fraction
from functools import lru_cache

from .types import DECIDED, UNDECIDED, Score

TIMEOUT_S = 5
"""Seconds allowed for each math-verify parse and each verify (math-verify's own timeout)."""

NO_ANSWER = "no answer found"
UNCLOSED_THINK = "no answer: thinking never closed (<think> without </think>)"
MV_TIMEOUT = "math-verify timeout"

# ---------------------------------------------------------------------------- thinking

_THINK_OPEN = re.compile(r"<think(?:ing)?>", re.I)
_THINK_CLOSE = re.compile(r"</think(?:ing)?>", re.I)


def split_thinking(text: str | None) -> tuple[str, str]:
    """Return ``(thinking, answer_part)`` of a response.

    - ``<think>a</think>b`` → ``("<think>a", "b")``: everything up to the last closing tag is
      thinking (several blocks, or an unpaired ``</think>`` whose opening tag the chat template
      put in the prompt).
    - ``<think>never closed`` → ``("<think>never closed", "")``: no answer part at all.
    - A ``<think>`` opened again after the last ``</think>`` and never closed: the answer part
      stops there.
    - No tags: ``("", text)``.
    """
    text = text or ""
    last_close = None
    for last_close in _THINK_CLOSE.finditer(text):
        pass
    if last_close is not None:
        thinking, answer = text[: last_close.start()], text[last_close.end():]
    else:
        thinking, answer = "", text
    reopened = _THINK_OPEN.search(answer)
    if reopened:
        thinking = thinking + answer[reopened.start():] if thinking else answer
        answer = answer[: reopened.start()] if last_close is not None else ""
    return thinking, answer


def answer_part(text: str | None) -> str:
    """The part of a response after its thinking (``""`` if the thinking never closed)."""
    return split_thinking(text)[1]


def _unclosed(text: str | None) -> bool:
    return bool(text) and _THINK_OPEN.search(text) is not None and _THINK_CLOSE.search(text) is None

# ---------------------------------------------------------------------------- extraction


def _group(text: str, start: int) -> tuple[str, int] | None:
    """(content, end index) of the brace group opening at ``text[start] == "{"``; a backslash
    escapes the next character (so ``\\{`` and ``\\}`` are literal, ``\\\\`` is a line break)."""
    depth = 0
    i, n = start, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1: i], i + 1
        i += 1
    return None


_BOXED = re.compile(r"\\(?:boxed|fbox)\s*(?:(\{)|\s([^\s${}]+))")


def last_boxed(text: str | None) -> str | None:
    """Content of the last complete ``\\boxed{...}`` / ``\\fbox{...}`` in ``text`` (nested
    braces allowed), or of ``\\boxed 5``; ``None`` if there is none."""
    if not text or "box" not in text:
        return None
    found = None
    for m in _BOXED.finditer(text):
        if m.group(1) is not None:
            got = _group(text, m.start(1))
            if got is not None and got[0].strip():
                found = got[0]
        else:
            found = m.group(2).rstrip(".,;:")
    if found is None:
        return None
    found = found.strip()
    while found.startswith("{") and _group(found, 0) == (found[1:-1], len(found)):
        found = found[1:-1].strip()  # \boxed{{5}} -> 5
    return found or None


_FINAL = re.compile(r"(?:final answer|the answer)\s*(?:is|:)\s*:?\s*(.+?)\s*(?:$|\.\s)", re.I | re.M)
_DOLLARS = re.compile(r"^\$+|\$+$|^\\\(|\\\)$|^\\\[|\\\]$")
_WORD = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z]{2,}")
_LATEX_WORDS = re.compile(r"\\[a-zA-Z]+|\\text\s*\{[^{}]*\}")


def extract_math_answer(response: str | None) -> str | None:
    """The answer a math response gives, from its answer part only: the last ``\\boxed{}``, else
    the last "final answer is X" / "the answer is X" statement whose X is a formula or number
    rather than prose (``$`` delimiters removed)."""
    answer = answer_part(response)
    boxed = last_boxed(answer)
    if boxed is not None:
        return boxed
    for stated in reversed(_FINAL.findall(answer)):
        got = _DOLLARS.sub("", stated.strip().rstrip(".")).strip()
        # Only a formula or number counts, not prose ("the answer is not 5", "is 5 apples").
        if got and not _WORD.search(_LATEX_WORDS.sub(" ", got)):
            return got
    return None

# ---------------------------------------------------------------------------- normalization


_TEXT = re.compile(r"\\(?:text|textbf|textrm|mathrm|mbox|operatorname)\s*\{([^{}]*)\}")
_UNIT_WORDS = (r"(?:degrees?|cm|centimeters?|mm|km|kilometers?|m|meters?|units?|sq(?:uare)?\s*units?|"
               r"inch(?:es)?|in|feet|foot|ft|yards?|miles?|mph|dollars?|cents?|hours?|hrs?|minutes?|mins?|"
               r"seconds?|secs?|days?|weeks?|years?|pounds?|lbs?|ounces?|oz|grams?|kg|liters?|gallons?)")
_TEXT_UNIT = re.compile(rf"\\(?:text|mbox|mathrm)\s*\{{\s*{_UNIT_WORDS}\s*\}}(?:\^\{{?[23]\}}?|\^[23])?\s*$", re.I)
_PLAIN_UNIT = re.compile(rf"(?<=[\d}}])\s+{_UNIT_WORDS}(?:\^\{{?[23]\}}?|\^[23])?\s*$", re.I)
_SPACES = re.compile(r"\s+")
_THOUSANDS = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_DECIMAL_ZEROS = re.compile(r"(-?\d+\.\d*?)0+$")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)")


def normalize_math(s: str) -> str:
    """A conservative canonical form for the exact-match fast path: two answers with equal
    normal forms are the same answer. Removes ``$``, spacing commands and whitespace,
    ``\\left``/``\\right``, ``\\dfrac``/``\\tfrac`` → ``\\frac``, ``^\\circ``, ``\\%``, a
    trailing unit (``\\text{ cm}``, `` inches``), ``\\text{}`` wrappers, a trailing ``.``,
    thousands separators and trailing decimal zeros."""
    s = s.strip()
    s = _DOLLARS.sub("", s).strip()
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = re.sub(r"\\left(?![a-zA-Z])|\\right(?![a-zA-Z])", "", s)
    for junk in ("\\!", "\\,", "\\;", "\\:", "\\ ", "~"):
        s = s.replace(junk, " ")
    s = s.replace("^{\\circ}", "").replace("^\\circ", "").replace("°", "")
    s = s.replace("\\%", "").replace("%", "").replace("\\$", "").replace("$", "")
    s = _TEXT_UNIT.sub("", s)
    s = _PLAIN_UNIT.sub("", s.strip())
    s = _TEXT.sub(r"\1", s)
    s = _SPACES.sub("", s).replace("{,}", ",")
    s = s.rstrip(".")
    if _THOUSANDS.fullmatch(s):
        s = s.replace(",", "")
    if "." in s and _NUMBER.fullmatch(s):
        s = _DECIMAL_ZEROS.sub(r"\1", s).rstrip(".")
    return s


_RATIO = re.compile(r"([+-]?)(?:\\frac\{([+-]?\d+)\}\{([+-]?\d+)\}|\\frac(\d)(\d)|(\d+)/(\d+))")


def _as_number(s: str) -> tuple[Fraction, bool] | None:
    """``(value, exact)`` of a normalized answer that is a plain number or a fraction of
    integers (``-\\frac{3}{4}``, ``\\frac34``, ``3/4``); ``exact`` is False for decimals."""
    try:
        if _NUMBER.fullmatch(s):
            return Fraction(s), "." not in s
        m = _RATIO.fullmatch(s)
        if m:
            sign, a, b, c, d, e, f = m.groups()
            num, den = (a, b) if a is not None else (c, d) if c is not None else (e, f)
            value = Fraction(int(num), int(den))
            return (-value if sign == "-" else value), True
    except (ValueError, ZeroDivisionError):
        return None
    return None

# ---------------------------------------------------------------------------- math-verify


def _timeout_arg(timeout_s: int) -> int | None:
    # SIGALRM only works in the main thread; elsewhere run math-verify without its timeout.
    return timeout_s if threading.current_thread() is threading.main_thread() else None


@lru_cache(maxsize=8192)
def _parse(latex: str, timeout: int | None):
    from math_verify import parse

    return parse(f"${latex}$", parsing_timeout=timeout, raise_on_error=True)


@lru_cache(maxsize=65536)
def _verify(pred: str, gold: str, timeout: int | None) -> tuple[bool, str | None]:
    from math_verify import verify
    from math_verify.errors import TimeoutException

    try:
        gold_parsed = _parse(gold, timeout)  # gold first: it decides how the answer is read
        pred_parsed = _parse(pred, timeout)
        if not gold_parsed or not pred_parsed:
            return False, "math-verify could not parse the answer" if gold_parsed else "math-verify could not parse the gold"
        return bool(verify(gold_parsed, pred_parsed, timeout_seconds=timeout, raise_on_error=True)), None
    except TimeoutException:  # a BaseException in math-verify
        return False, MV_TIMEOUT
    except Exception as exc:  # noqa: BLE001 - an unparsable answer is wrong, not a crash
        return False, f"math-verify: {exc.__class__.__name__}"


def math_equal(pred: str, gold: str, timeout_s: int = TIMEOUT_S) -> tuple[bool, str | None]:
    """``(equal, detail)``: the normalized fast path, exact comparison when both sides are plain
    numbers or fractions of integers, then
    math-verify (gold parsed first, each step limited to ``timeout_s`` seconds; a timeout gives
    ``(False, "math-verify timeout")``). Results are cached per process."""
    a, b = normalize_math(pred), normalize_math(gold)
    if a == b and a:
        return True, None
    x, y = _as_number(a), _as_number(b)
    if x is not None and y is not None:
        if x[0] == y[0]:
            return True, None
        if x[1] and y[1]:  # two different rationals, no decimals (math-verify rounds those)
            return False, None
    return _verify(pred, gold, _timeout_arg(timeout_s))


def _no_answer(response: str | None) -> Score:
    """No answer found: a response whose thinking never closed has no answer part at all, a
    wrong answer (decided); one whose answer part holds nothing extractable is undecided (a
    judge may read it)."""
    if _unclosed(response):
        return Score(0.0, None, UNCLOSED_THINK)
    return Score(0.0, None, NO_ANSWER, UNDECIDED if answer_part(response).strip() else DECIDED)


def _compared(ok: bool, pred: str, detail: str | None) -> Score:
    """A comparison's score: math-verify failing to parse or timing out leaves a wrong
    comparison undecided."""
    return Score(1.0 if ok else 0.0, pred, detail, UNDECIDED if detail and not ok else DECIDED)


def grade_math(response: str | None, gold: str, timeout_s: int = TIMEOUT_S) -> Score:
    """Grade a free-form math response against a LaTeX gold answer."""
    pred = extract_math_answer(response)
    if pred is None:
        return _no_answer(response)
    ok, detail = math_equal(pred, str(gold), timeout_s)
    return _compared(ok, pred, detail)

# ---------------------------------------------------------------------------- integers


_INT = re.compile(r"[+-]?\d+")


def to_integer(text: str) -> int | None:
    """The integer an answer states (``"025"``, ``"1{,}000"``, ``"\\text{70}"``, ``"73.0"``),
    or ``None`` if it is not a plain integer."""
    s = normalize_math(str(text)).replace("{", "").replace("}", "")
    if _INT.fullmatch(s):
        return int(s)
    return None


def grade_integer(response: str | None, gold: str | int, timeout_s: int = TIMEOUT_S) -> Score:
    """AIME-style: answers compared as integers (``"025"`` == 25); a non-integer answer is
    still checked with math-verify (``\\frac{50}{2}`` == 25)."""
    pred = extract_math_answer(response)
    if pred is None:
        return _no_answer(response)
    gold_int, pred_int = to_integer(str(gold)), to_integer(pred)
    if gold_int is not None and pred_int is not None:
        return Score(1.0 if gold_int == pred_int else 0.0, pred)
    ok, detail = math_equal(pred, str(gold), timeout_s)
    return _compared(ok, pred, detail)

# ---------------------------------------------------------------------------- multiple choice


@lru_cache(maxsize=16)
def _choice_patterns(letters: str) -> tuple[list[re.Pattern], list[re.Pattern]]:
    up, low = letters.upper(), letters.lower()
    # An upper-case letter may be followed by its text ("ANSWER: B) 4 eV"); a lower-case one
    # must end the statement, so "Answer: a mass of 5 kg" is not read as A.
    # "A" followed by a lower-case word is the English article ("Answer: A mass of ...").
    article = r"(?!(?<=A)\)?\s+[a-z])"
    letter = (rf"(?:\(?([{up}])\)?(?![A-Za-z0-9]){article}|\(?([{low}])\)?(?=\s*\**\s*[.!]?\s*\**\s*$))")
    lead = r"(?i:answer)\s*(?:(?i:is)\s*)?[:：]\s*\**\s*\$?\s*(?:\\text(?:bf)?\{)?\s*"
    explicit = [
        re.compile(lead + letter, re.M),
        re.compile(r"(?i:answer\s+is)\s*\**\s*\$?\s*(?:\\text(?:bf)?\{)?\s*" + letter, re.M),
        re.compile(rf"\\boxed\s*\{{\s*(?:\\text(?:bf)?\s*\{{)?\s*\(?([{up}{low}])\)?\s*\}}?\s*\}}"),
    ]
    at_end = [
        re.compile(rf"\(([{up}{low}])\)\s*\**\s*[.!]?\s*\**\s*$"),
        re.compile(rf"^\s*\**\s*([{up}{low}])\s*\**\s*\.?\s*$"),
    ]
    return explicit, at_end


def extract_choice(response: str | None, letters: str = "ABCD") -> str | None:
    """The chosen letter (upper case) from the answer part: the last of ``ANSWER: X``,
    ``Answer: X``, ``**Answer: X**``, ``**Answer:** X``, "the answer is (X)", ``\\boxed{X}``;
    else ``(X)`` at the very end, or a response that is just the letter. Case-insensitive;
    letters inside the thinking never count."""
    answer = answer_part(response).strip()
    if not answer:
        return None
    explicit, at_end = _choice_patterns(letters)
    best: tuple[int, str] | None = None
    for pat in explicit:
        for m in pat.finditer(answer):
            letter = next(g for g in m.groups() if g)
            if best is None or m.start() >= best[0]:
                best = (m.start(), letter.upper())
    if best is not None:
        return best[1]
    for pat in at_end:
        m = pat.search(answer)
        if m:
            return m.group(1).upper()
    return None


def grade_choice(response: str | None, gold: str, letters: str = "ABCD") -> Score:
    """Grade a multiple-choice response against the gold letter."""
    pred = extract_choice(response, letters)
    if pred is None:
        return _no_answer(response)
    return Score(1.0 if pred == str(gold).strip().upper() else 0.0, pred)


__all__ = ["TIMEOUT_S", "split_thinking", "answer_part", "last_boxed", "extract_math_answer",
           "normalize_math", "math_equal", "grade_math", "to_integer", "grade_integer",
           "extract_choice", "grade_choice"]
