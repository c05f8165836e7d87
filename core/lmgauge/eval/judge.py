"""The LLM judge: a second model that decides answers the rule graders cannot (or all of them).

- :class:`JudgeSettings` names the judge (any installed backend, a model, a URL, a key that is
  never written) and its mode: ``fallback`` asks only about samples the rule grader left
  undecided (:func:`rule_undecided`), ``always`` asks about every graded sample that has an
  answer, and its verdict becomes the score.
- One prompt per benchmark shape (:func:`judge_kind`): ``math`` (is the final answer equivalent
  to the reference?) and ``mcq`` (is the chosen option the right letter?). The judge must end
  with the line ``VERDICT: CORRECT`` or ``VERDICT: INCORRECT`` (:func:`parse_verdict`);
  anything else is the verdict ``unparsable``, counted, never a crash.
- Verdicts are cached in ``DIR/judge.jsonl`` (:class:`VerdictCache`: append + flush per
  verdict, torn lines skipped), keyed by benchmark, sample id, repeat, SHA-256 of the response,
  judge model and :data:`PROMPT_VERSION`, so a resumed or re-graded run never asks twice.
- :func:`apply_judge` asks (bounded concurrency, retries on retryable backend errors),
  :func:`judged_record` applies the score policy to one journal record, :func:`judge_section`
  gives report.json its ``"judge"`` part (verdict counts and judge/rule agreement with Cohen's
  kappa), :func:`judge_run` is the eval-time phase (a judge failure is one warning line and the
  rule scores stand).
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import random
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, TextIO

import orjson

from ..errors import BackendError, ConfigError, LmgaugeError
from ..grading import answer_part
from ..redaction import redact_text
from ..runfolder import JournalWriter, Key, SampleRecord, read_samples
from ..runfolder.samples import JsonlWriter
from ..types import GenerationParams, GenerationRequest

PROMPT_VERSION = "1"
"""Bump when a prompt template changes: cached verdicts of the old prompt no longer apply."""

MODES = ("fallback", "always")
ANSWER_CHARS = 6000    # the end of a long answer part is kept (the final answer is there)
QUESTION_CHARS = 8000  # the start of a long question is kept
ABORT_AFTER = 8        # this many failed judge requests in a row, none answered, stop asking

MATH_PROMPT = """You are checking one answer to a math problem. Decide whether the final answer \
the RESPONSE commits to is mathematically equivalent to the REFERENCE ANSWER: the same number, \
expression, set, interval or tuple, however it is written (equivalent forms, exact fractions vs \
their decimal values, the order of a set's elements, units and surrounding words do not matter). \
Judge only that final answer: do not solve the problem again, give no credit for a right method \
with a wrong or missing final answer, and count a response that gives several different final \
answers as incorrect.

PROBLEM:
{question}

REFERENCE ANSWER:
{gold}

RESPONSE (its final part):
{answer}

Explain in a few sentences, then end with one line that is exactly `VERDICT: CORRECT` or \
`VERDICT: INCORRECT`."""

MCQ_PROMPT = """You are checking one answer to a multiple-choice question whose correct option \
is {gold}. Decide which single option the RESPONSE finally chooses (by its letter or by \
repeating the option's text) and whether that option is {gold}. A response that chooses no \
option, or several, is incorrect.

QUESTION AND OPTIONS:
{question}

RESPONSE (its final part):
{answer}

Explain in a few sentences, then end with one line that is exactly `VERDICT: CORRECT` or \
`VERDICT: INCORRECT`."""

PROMPTS = {"math": MATH_PROMPT, "mcq": MCQ_PROMPT}


# ---------------------------------------------------------------------------- settings
@dataclass
class JudgeSettings:
    """Who judges and how. ``api_key`` is a secret: :meth:`public` leaves it out."""

    backend: str
    model: str
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    mode: str = "fallback"
    concurrency: int = 16
    max_tokens: int | None = None
    temperature: float = 0.0
    retries: int = 5
    retry_backoff: float = 1.0
    timeout: float = 600.0
    options: dict[str, Any] = field(default_factory=dict)  # the backend's own option values

    def validate(self) -> None:
        if not self.model:
            raise ConfigError("the judge has no model", "pass --judge-model NAME")
        if self.mode not in MODES:
            raise ConfigError(f"--judge-mode must be fallback or always, got {self.mode!r}")
        if not isinstance(self.concurrency, int) or self.concurrency < 1:
            raise ConfigError(f"--judge-concurrency must be an integer ≥ 1, got {self.concurrency!r}")

    def public(self) -> dict[str, Any]:
        return {"backend": self.backend, "model": self.model,
                "base_url": redact_text(self.base_url) if self.base_url else None,
                "mode": self.mode, "prompt_version": PROMPT_VERSION}


def settings_from_config(config: Any) -> JudgeSettings | None:
    """The judge of an eval config (``None`` without ``judge_model``). The backend defaults to
    the run's; with no ``judge_base_url`` the judge is the run's own server and gets the run's
    key, otherwise only ``judge_api_key`` / ``$LMGAUGE_JUDGE_API_KEY``."""
    model = getattr(config, "judge_model", None)
    if not model:
        return None
    base_url = getattr(config, "judge_base_url", None)
    key = getattr(config, "judge_api_key", None) or os.environ.get("LMGAUGE_JUDGE_API_KEY") or None
    backend = getattr(config, "judge_backend", None) or config.backend
    options: dict[str, Any] = {}
    if not base_url:  # the run's own server: its key and (same backend) its backend options
        run_url = config.base_url
        base_url = run_url[0] if isinstance(run_url, (list, tuple)) and run_url else run_url or None
        key = key or config.api_key
        if backend == config.backend:
            options = dict(getattr(config, "options", None) or {})
    settings = JudgeSettings(
        backend=backend, model=model, base_url=base_url, api_key=key,
        mode=getattr(config, "judge_mode", None) or "fallback",
        concurrency=getattr(config, "judge_concurrency", None) or 16,
        retries=config.retries, retry_backoff=config.retry_backoff, timeout=config.timeout, options=options)
    settings.validate()
    return settings


def check_judge(config: Any, pm: Any) -> None:
    """Fail before any request when the judge settings are wrong (bad mode, unknown backend)."""
    settings = settings_from_config(config)
    if settings is not None:
        pm.get("backends", settings.backend)


# ---------------------------------------------------------------------------- prompts
def judge_kind(benchmark: Any, gold: Any) -> str:
    """``math`` or ``mcq``: the benchmark's ``judge_kind`` attribute, else guessed from the
    gold (a single letter is a choice)."""
    kind = getattr(benchmark, "judge_kind", None)
    if kind in PROMPTS:
        return kind
    return "mcq" if isinstance(gold, str) and re.fullmatch(r"\s*[A-Za-z]\s*", gold) else "math"


def _tail(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"[... {len(text) - limit} earlier characters omitted ...]\n" + text[-limit:]


def _head(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... {len(text) - limit} more characters omitted ...]"


def _prompt_text(prompt: Any) -> str:
    if isinstance(prompt, list):
        users = [m.get("content", "") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        return str(users[-1]) if users else ""
    return str(prompt or "")


def build_prompt(kind: str, record: SampleRecord) -> str:
    """The judge prompt for one journal record (question, gold, the response's answer part)."""
    answer = _tail(answer_part(record.response).strip(), ANSWER_CHARS)
    gold = str(record.gold).strip()
    question = str(record.question or "").strip()
    if kind == "mcq":
        # the question must show the options; the prompt always does
        if not re.search(rf"(?m)^\s*\(?{re.escape(gold[:1])}\s*[).:]", question):
            question = _prompt_text(record.prompt).strip()
    elif not question:
        question = _prompt_text(record.prompt).strip()
    return PROMPTS[kind].format(question=_head(question, QUESTION_CHARS), gold=gold, answer=answer)


_VERDICT = re.compile(r"[\s*_`#>]*verdict\s*[:：]\s*[*_`]*\s*(correct|incorrect)\s*[*_`.]*\s*", re.I)


def parse_verdict(text: str | None) -> str:
    """``correct``/``incorrect`` from the judge's last non-empty line after any thinking, which
    must be ``VERDICT: CORRECT`` or ``VERDICT: INCORRECT`` (markdown emphasis allowed); else
    ``unparsable``."""
    lines = [ln for ln in answer_part(text).splitlines() if ln.strip()]
    if not lines:
        return "unparsable"
    m = _VERDICT.fullmatch(lines[-1])
    return m.group(1).lower() if m else "unparsable"


# ---------------------------------------------------------------------------- which samples
def rule_undecided(record: SampleRecord) -> bool:
    """True when the rule grader gave no verdict it stands by (its score's status is
    ``undecided``, or the grader failed) on an answer that is not a full mark and has an
    answer part (a response whose thinking never closed has none: it is wrong, decided)."""
    return record.rule_undecided() and bool(answer_part(record.response).strip())


def needs_judge(record: SampleRecord, mode: str) -> bool:
    if not record.answered or not answer_part(record.response).strip():
        return False
    return mode == "always" or rule_undecided(record)


# ---------------------------------------------------------------------------- the cache
def response_sha(record: SampleRecord) -> str:
    return hashlib.sha256(str(record.response or "").encode("utf-8")).hexdigest()


CacheKey = tuple[str, str, int, str, str, str]


def cache_key(record: SampleRecord, model: str) -> CacheKey:
    return (record.benchmark, record.sample_id, record.repeat, response_sha(record), model, PROMPT_VERSION)


def _entry_key(e: dict[str, Any]) -> CacheKey:
    return (e["benchmark"], str(e["sample_id"]), int(e["repeat"]), e["response_sha256"], e["judge_model"],
            e["prompt_version"])


@dataclass
class Verdict:
    verdict: str  # correct | incorrect | unparsable | error
    text: str


class VerdictCache:
    """``path`` (judge.jsonl) read and appended to; ``extra`` files only read (e.g. the judged
    run a regrade starts from). Errors are never cached: a later run asks again."""

    def __init__(self, path: Path, extra: Iterable[Path] = ()):
        self.path = path
        self.entries: dict[CacheKey, dict[str, Any]] = {}
        self.own: set[CacheKey] = set()
        for p in extra:
            self._read(p, own=False)
        self._read(path, own=True)
        self._journal: JsonlWriter | None = None

    def _read(self, path: Path, own: bool) -> None:
        if not path.is_file():
            return
        with path.open("rb") as fh:
            for line in fh:
                try:
                    e = orjson.loads(line)
                    key = _entry_key(e)
                    if e["verdict"] not in ("correct", "incorrect", "unparsable"):
                        continue
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                    continue  # torn line
                self.entries[key] = e
                if own:
                    self.own.add(key)

    def get(self, key: CacheKey) -> Verdict | None:
        e = self.entries.get(key)
        if e is None:
            return None
        if key not in self.own:  # found in a read-only source: copy it, so this folder holds it
            self._append(e)
        return Verdict(e["verdict"], e.get("text") or "")

    def put(self, key: CacheKey, verdict: Verdict, backend: str) -> None:
        b, sid, rep, sha, model, version = key
        e = {"benchmark": b, "sample_id": sid, "repeat": rep, "response_sha256": sha, "judge_model": model,
             "prompt_version": version, "judge_backend": backend, "verdict": verdict.verdict,
             "text": verdict.text, "time": round(time.time(), 3)}
        self.entries[key] = e
        self._append(e)

    def _append(self, e: dict[str, Any]) -> None:
        if self._journal is None:
            self._journal = JsonlWriter(self.path)
        self._journal.append(e)
        self.own.add(_entry_key(e))

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()


# ---------------------------------------------------------------------------- asking
@dataclass
class JudgeSummary:
    """What one judge pass did: per-record verdicts, requests sent, cache hits, failures."""

    verdicts: dict[Key, Verdict] = field(default_factory=dict)
    asked: int = 0
    cached: int = 0
    failed: int = 0
    elapsed_s: float = 0.0
    warning: str | None = None


async def _ask(backend: Any, prompt: str, settings: JudgeSettings, rid: str) -> str:
    params = GenerationParams(max_tokens=settings.max_tokens, temperature=settings.temperature)
    req = GenerationRequest(messages=[{"role": "user", "content": prompt}], prompt=prompt, params=params, id=rid)
    attempt = 0
    while True:
        attempt += 1
        try:
            comps = await backend.generate(req)
            return comps[0].text or ""
        except BackendError as exc:
            if not exc.retryable or attempt > settings.retries:
                raise
            delay = min(60.0, settings.retry_backoff * 2 ** (attempt - 1)) * (0.5 + random.random())
            await asyncio.sleep(delay)


async def apply_judge(out_dir: str | os.PathLike, records: Iterable[SampleRecord], benchmarks: dict[str, Any],
                      settings: JudgeSettings, pm: Any, extra_caches: Iterable[Path] = ()) -> JudgeSummary:
    """Ask the judge about the records ``settings.mode`` selects, from the cache where it can;
    return a verdict per record key. Never raises for a judge that fails: the records it could
    not judge get the verdict ``error`` and ``summary.warning`` says why."""
    started = time.perf_counter()
    summary = JudgeSummary()
    cache = VerdictCache(Path(out_dir) / "judge.jsonl", extra_caches)
    todo: list[tuple[SampleRecord, CacheKey]] = []
    try:
        for rec in records:
            if not needs_judge(rec, settings.mode):
                continue
            key = cache_key(rec, settings.model)
            hit = cache.get(key)
            if hit is not None:
                summary.verdicts[rec.key] = hit
                summary.cached += 1
            else:
                todo.append((rec, key))
        if todo:
            await _ask_all(todo, benchmarks, settings, pm, cache, summary)
    finally:
        cache.close()
    summary.elapsed_s = time.perf_counter() - started
    return summary


async def _ask_all(todo: list[tuple[SampleRecord, CacheKey]], benchmarks: dict[str, Any],
                   settings: JudgeSettings, pm: Any, cache: VerdictCache, summary: JudgeSummary) -> None:
    def fail_rest(line: str) -> None:
        for rec, _ in todo:
            summary.verdicts.setdefault(rec.key, Verdict("error", line))
        summary.failed = sum(v.verdict == "error" for v in summary.verdicts.values())
        summary.warning = (f"judge {settings.model}: {line}; {summary.failed} samples not judged, their rule "
                           "scores stand (run again to ask about them)")

    try:
        from ..runsetup import make_backend

        backend = make_backend(pm, settings.backend, model=settings.model,
                               urls=[settings.base_url] if settings.base_url else [], api_key=settings.api_key,
                               api=None, read_timeout=settings.timeout, options=settings.options)
    except LmgaugeError as exc:
        fail_rest(exc.line())
        return
    queue: asyncio.Queue = asyncio.Queue()
    for item in todo:
        queue.put_nowait(item)
    state = {"streak": 0, "answered": 0, "stop": None}

    async def worker() -> None:
        while state["stop"] is None:
            try:
                rec, key = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            kind = judge_kind(benchmarks.get(rec.benchmark), rec.gold)
            rid = f"judge/{rec.benchmark}/{rec.sample_id}/{rec.repeat}"
            summary.asked += 1
            try:
                text = await _ask(backend, build_prompt(kind, rec), settings, rid)
            except BackendError as exc:
                summary.verdicts[rec.key] = Verdict("error", exc.line())
                state["streak"] += 1
                if state["answered"] == 0 and state["streak"] >= ABORT_AFTER:
                    state["stop"] = f"every request failed: {exc.line()}"
                continue
            state["streak"] = 0
            state["answered"] += 1
            verdict = Verdict(parse_verdict(text), text)
            cache.put(key, verdict, settings.backend)
            summary.verdicts[rec.key] = verdict

    try:
        await backend.start()
        workers = [asyncio.ensure_future(worker()) for _ in range(min(settings.concurrency, len(todo)))]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
    except LmgaugeError as exc:
        fail_rest(exc.line())
        return
    finally:
        await backend.close()
    if state["stop"] is not None:
        fail_rest(state["stop"])
    else:
        summary.failed = sum(v.verdict == "error" for v in summary.verdicts.values())
        if summary.failed:
            first = next(v.text for v in summary.verdicts.values() if v.verdict == "error")
            summary.warning = (f"judge {settings.model}: {summary.failed} requests failed after retries "
                               f"(first: {first}); their rule scores stand (run again to ask about them)")


# ---------------------------------------------------------------------------- the score policy
SCORE_POLICY = ("the rule grader's score counts, except where the judge gave a verdict (correct or incorrect) and, "
                "in fallback mode, the rule grader was undecided (or failed); in always mode every verdict counts. "
                "An unparsable or failed verdict leaves the rule's score.")


def judged_record(record: SampleRecord, verdict: Verdict | None, settings: JudgeSettings) -> SampleRecord:
    """The record with the judge's verdict beside the rule grader's score, applied by
    :data:`SCORE_POLICY`: ``score``/``correct`` are what counts, ``rule_score``/``rule_correct``
    the rule's own, ``score_source`` which of the two counts."""
    rec = record.without_judge()
    if verdict is None:
        return rec
    counts = verdict.verdict in ("correct", "incorrect") and (settings.mode == "always" or rule_undecided(rec))
    rec.judge_verdict, rec.judge_text, rec.judge_model = verdict.verdict, verdict.text, settings.model
    rec.rule_score, rec.rule_correct = rec.score, rec.correct
    rec.score_source = "judge" if counts else "rule"
    if counts:
        ok = verdict.verdict == "correct"
        rec.score, rec.correct = (1.0 if ok else 0.0), ok
    return rec


# ---------------------------------------------------------------------------- the report
def _kappa(a: int, b: int, c: int, d: int) -> float | None:
    """Cohen's kappa of a 2×2 table (a: both correct, d: both incorrect, b/c: disagreements);
    ``None`` when it is undefined (both raters constant and equal)."""
    n = a + b + c + d
    if n == 0:
        return None
    po = (a + d) / n
    pe = ((a + b) * (a + c) + (c + d) * (b + d)) / (n * n)
    return None if pe >= 1.0 else round((po - pe) / (1.0 - pe), 6)


_TABLE = {(True, True): "both_correct", (True, False): "rule_correct_judge_incorrect",
          (False, True): "rule_incorrect_judge_correct", (False, False): "both_incorrect"}


@dataclass
class _Tally:
    verdicts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(("correct", "incorrect", "unparsable", "error"), 0))
    table: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_TABLE.values(), 0))
    undecided: int = 0
    changed: int = 0

    def add(self, rec: SampleRecord) -> None:
        if not rec.answered:
            return
        undecided = rule_undecided(rec)
        self.undecided += undecided
        v = rec.judge_verdict
        if v is None:
            return
        self.verdicts[v] = self.verdicts.get(v, 0) + 1
        rule = rec.rule().value
        self.changed += rule != float(rec.score or 0.0)
        if v in ("correct", "incorrect") and not undecided:
            self.table[_TABLE[(rule >= 1.0, v == "correct")]] += 1

    def section(self) -> dict[str, Any]:
        t = self.table
        n = sum(t.values())
        agree = t["both_correct"] + t["both_incorrect"]
        return {"judged": sum(self.verdicts.values()), "verdicts": self.verdicts, "rule_undecided": self.undecided,
                "score_changed": self.changed,
                "agreement": {"samples": n, **t, "agreement": round(agree / n, 6) if n else None,
                              "kappa": _kappa(t["both_correct"], t["rule_correct_judge_incorrect"],
                                              t["rule_incorrect_judge_correct"], t["both_incorrect"])}}


def judge_section(records: Iterable[SampleRecord], settings: JudgeSettings,
                  summary: JudgeSummary | None = None) -> dict[str, Any]:
    """report.json's ``"judge"``: settings (no key), the score policy, this pass's requests
    and cache hits, and per benchmark and overall: verdict counts, samples the rule grader
    left undecided, scores the judge changed, and agreement with the rule grader where both
    decided (counts, agreement rate, Cohen's kappa; in fallback mode the judge sees no decided
    sample, so there is nothing to compare). Records are read once."""
    overall = _Tally()
    by_bench: dict[str, _Tally] = {}
    for rec in records:
        overall.add(rec)
        by_bench.setdefault(rec.benchmark, _Tally()).add(rec)
    out = dict(settings.public())
    out["policy"] = SCORE_POLICY
    if summary is not None:
        out.update(asked=summary.asked, cached=summary.cached, failed=summary.failed,
                   elapsed_s=round(summary.elapsed_s, 3))
    out["overall"] = overall.section()
    out["benchmarks"] = {b: t.section() for b, t in sorted(by_bench.items())}
    return out


def report_section(records: Iterable[SampleRecord], config: Any,
                   summary: JudgeSummary | None) -> dict[str, Any] | None:
    """report.json's ``"judge"`` for an eval config, or ``None`` when the run has no judge."""
    try:
        settings = settings_from_config(config)
    except LmgaugeError:
        return None
    return None if settings is None else judge_section(records, settings, summary)


def agreement_line(section: dict[str, Any]) -> str:
    """One terminal line about the judge pass."""
    o = section["overall"]
    v = o["verdicts"]
    ag = o["agreement"]
    text = (f"judge {section['model']} ({section['mode']}): {o['judged']} judged "
            f"({v['correct']} correct, {v['incorrect']} incorrect, {v['unparsable']} unparsable, "
            f"{v['error']} failed), {o['score_changed']} scores changed")
    if "asked" in section:
        text += f"; {section['asked']} asked, {section['cached']} from cache"
    if ag["samples"]:
        kappa = "n/a" if ag["kappa"] is None else f"{ag['kappa']:.3f}"
        text += f"; agreement with the rule grader {ag['agreement']:.1%} on {ag['samples']} samples (kappa {kappa})"
    return text


# ---------------------------------------------------------------------------- eval time
async def judge_run(out: Path, config: Any, benchmarks: dict[str, Any], pm: Any,
                    stream: TextIO | None = None) -> JudgeSummary | None:
    """The judge phase of ``lmgauge eval``: judge the run's journal records and append every
    record whose judged state changed to the journal (a later line supersedes an earlier one).
    A failure is one warning line; the rule scores stand."""
    stream = stream or sys.stderr
    started = time.perf_counter()
    try:
        settings = settings_from_config(config)
    except LmgaugeError as exc:
        stream.write(f"lmgauge: warning: judge not run: {exc.line()}\n")
        return None
    if settings is None:
        return None
    path = out / "samples.jsonl"
    records = [r for r in read_samples(path) if r.benchmark in benchmarks and r.repeat < config.repeats
               and (needs_judge(r, settings.mode) or r.judged)]
    summary = await apply_judge(out, records, benchmarks, settings, pm)
    changed = []
    for rec in records:
        new = judged_record(rec, summary.verdicts.get(rec.key), settings)
        if new != rec:
            changed.append(new)
    if changed:
        journal = JournalWriter(path)
        try:
            for rec in changed:
                journal.append(rec)
        finally:
            journal.close()
    summary.elapsed_s = time.perf_counter() - started  # the whole phase: journal read and append too
    if summary.warning:
        stream.write(f"lmgauge: warning: {summary.warning}\n")
    return summary
