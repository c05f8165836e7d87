"""Answer extraction and grading shared by the benchmarks (and usable by third-party plugins).

Reasoning output: only the text after the thinking counts. ``<think>…</think>`` blocks are
removed; with an unpaired ``</think>`` everything before it is thinking; an unclosed ``<think>``
means the model never left its thinking, so there is no answer. A ``\\boxed{}`` inside thinking
never counts.

Math answers: the last ``\\boxed{…}`` (or ``\\fbox``) of the answer part, else a stated
"final answer is …". Graded by a cheap normalized string comparison first, then math-verify with
the gold parsed first. math-verify uses SIGALRM for its timeouts, so call these functions in a
process's main thread (the core grades in worker processes).
"""
from __future__ import annotations

import re
from functools import lru_cache

from lmgauge.types import Score

THINK_OPEN = re.compile(r"<think(?:ing)?>", re.I)
THINK_CLOSE = re.compile(r"</think(?:ing)?>", re.I)
TIMEOUT_S = 5


def split_thinking(text: str | None) -> tuple[str, str]:
    """Return (thinking, answer_part) of a response."""
    text = text or ""
    closes = list(THINK_CLOSE.finditer(text))
    if closes:
        last = closes[-1]
        return text[: last.start()], text[last.end():]
    opened = THINK_OPEN.search(text)
    if opened:
        return text[opened.end():], text[: opened.start()]
    return "", text


def _brace_content(text: str, start: int) -> str | None:
    """Content of the brace group opening at text[start] == '{'."""
    depth = 0
    for i in range(start, len(text)):
        c = text[i]
        if c == "\\":
            continue
        if c == "{" and (i == 0 or text[i - 1] != "\\"):
            depth += 1
        elif c == "}" and (i == 0 or text[i - 1] != "\\"):
            depth -= 1
            if depth == 0:
                return text[start + 1: i]
    return None


BOXED = re.compile(r"\\(?:boxed|fbox)\s*(\{)|\\boxed\s+([^\s$]+)")


def last_boxed(text: str) -> str | None:
    """Content of the last complete ``\\boxed{...}`` in ``text`` (nested braces allowed)."""
    found = None
    for m in BOXED.finditer(text):
        if m.group(1) is not None:
            content = _brace_content(text, m.start(1))
            if content is not None:
                found = content
        else:
            found = m.group(2).rstrip(".,;:")
    return found.strip() if found is not None else None


FINAL = re.compile(r"(?:final answer|the answer)\s*(?:is|:)\s*[:\s]*\$*([^\n$]+?)\$*\s*(?:\.|$)", re.I | re.M)


def extract_math_answer(response: str | None) -> str | None:
    """The answer a math response gives, from its answer part only."""
    _thinking, answer = split_thinking(response)
    boxed = last_boxed(answer)
    if boxed is not None:
        return boxed
    matches = FINAL.findall(answer)
    if matches:
        return matches[-1].strip()
    return None


_TEXT = re.compile(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}")
_UNITS = re.compile(r"\s*(?:degrees?|cm|km|m|units?|inches|inch|feet|ft|meters?|dollars?|cents?|hours?|minutes?|seconds?|mph|square units)\b\.?$", re.I)


def normalize_math(s: str) -> str:
    """A conservative canonical form for the exact-match fast path."""
    s = s.strip().strip("$").strip()
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = s.replace("\\left", "").replace("\\right", "").replace("\\!", "").replace("\\,", "").replace("\\;", "")
    s = s.replace("^\\circ", "").replace("^{\\circ}", "").replace("°", "").replace("\\%", "").replace("%", "")
    s = _TEXT.sub(r"\1", s)
    s = _UNITS.sub("", s)
    s = s.replace("\\$", "").replace("$", "")
    s = re.sub(r"\s+", "", s)
    s = s.rstrip(".")
    if re.fullmatch(r"-?[\d,]+(?:\.\d+)?", s) and "," in s and re.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?", s):
        s = s.replace(",", "")
    if re.fullmatch(r"-?\d+\.\d*?0+", s):
        s = s.rstrip("0").rstrip(".")
    return s


@lru_cache(maxsize=4096)
def _parse_gold(gold: str):
    from math_verify import parse

    return parse(f"${gold}$", parsing_timeout=TIMEOUT_S)


def math_equal(pred: str, gold: str) -> tuple[bool, str | None]:
    """(equal?, detail). Fast normalized comparison, then math-verify (gold parsed first)."""
    if normalize_math(pred) == normalize_math(gold):
        return True, None
    from math_verify import parse, verify

    try:
        gold_parsed = _parse_gold(gold)
        pred_parsed = parse(f"${pred}$", parsing_timeout=TIMEOUT_S, raise_on_error=True)
        if not gold_parsed or not pred_parsed:
            return False, None
        return bool(verify(gold_parsed, pred_parsed, timeout_seconds=TIMEOUT_S, raise_on_error=True)), None
    except TimeoutError:
        return False, "math-verify timeout"
    except Exception as exc:  # noqa: BLE001 - an unparsable answer is wrong, not a crash
        return False, f"math-verify: {exc.__class__.__name__}"


def grade_math(response: str | None, gold: str) -> Score:
    pred = extract_math_answer(response)
    if pred is None:
        return Score(0.0, None, "no answer found")
    ok, detail = math_equal(pred, str(gold))
    return Score(1.0 if ok else 0.0, pred, detail)


_INT = re.compile(r"^[+-]?\d[\d,]*$")


def to_integer(text: str) -> int | None:
    s = normalize_math(text)
    s = s.replace("{", "").replace("}", "")
    if _INT.match(s):
        return int(s.replace(",", ""))
    return None


def grade_integer(response: str | None, gold: str | int) -> Score:
    """AIME-style: integer answers compared as integers ("025" == 25)."""
    pred = extract_math_answer(response)
    if pred is None:
        return Score(0.0, None, "no answer found")
    gold_int = to_integer(str(gold))
    pred_int = to_integer(pred)
    if gold_int is not None and pred_int is not None:
        return Score(1.0 if gold_int == pred_int else 0.0, pred)
    ok, detail = math_equal(pred, str(gold))
    return Score(1.0 if ok else 0.0, pred, detail)


def _choice_patterns(letters: str) -> list[re.Pattern]:
    L = f"[{letters}{letters.lower()}]"
    return [
        re.compile(rf"answer\s*(?:is)?\s*[:：]\s*\**\s*\(?({L})\)?(?![A-Za-z])", re.I),
        re.compile(rf"\\boxed\{{\s*(?:\\text\{{)?\(?({L})\)?\}}?\s*\}}", re.I),
        re.compile(rf"answer\s+is\s*\**\s*\(?({L})\)?(?![A-Za-z])", re.I),
        re.compile(rf"\(({L})\)\s*\**\.?\s*$", re.I),
        re.compile(rf"^\s*\**\s*({L})\s*\**\.?\s*$", re.I),
    ]


@lru_cache(maxsize=16)
def _patterns(letters: str) -> list[re.Pattern]:
    return _choice_patterns(letters)


def extract_choice(response: str | None, letters: str = "ABCD") -> str | None:
    """The chosen letter from the answer part: ``ANSWER: X``, ``Answer: X``, ``**Answer: X**``,
    ``\\boxed{X}``, "the answer is (X)", or ``(X)`` / a lone letter at the end. The last such
    statement wins; letters in the thinking part never count."""
    _thinking, answer = split_thinking(response)
    answer = answer.strip()
    if not answer:
        return None
    best: tuple[int, str] | None = None
    for pat in _patterns(letters)[:3]:
        for m in pat.finditer(answer):
            if best is None or m.start() >= best[0]:
                best = (m.start(), m.group(1).upper())
    if best is not None:
        return best[1]
    for pat in _patterns(letters)[3:]:
        m = pat.search(answer)
        if m:
            return m.group(1).upper()
    return None


def grade_choice(response: str | None, gold: str, letters: str = "ABCD") -> Score:
    pred = extract_choice(response, letters)
    if pred is None:
        return Score(0.0, None, "no answer found")
    return Score(1.0 if pred == gold.upper() else 0.0, pred)
