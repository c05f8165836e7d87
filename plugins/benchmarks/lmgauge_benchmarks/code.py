"""What the code benchmarks share (humaneval, livecodebench, custom_code): the code of an answer,
running tests in the run's sandbox, verdicts, the journaled outcome of every test, the sample view.

- **The answer's code** is the last fenced block after the thinking (``answer_part``: blocks inside
  ``<think>…</think>`` never count); a block tagged with another language than Python is used only
  when there is no Python (or untagged) block; an answer without any fence is taken whole.
- **Tests run in the sandbox** (``self.sandbox``, set by lmgauge: ``needs_sandbox = True``). Every
  test has a timeout (``--code-test-timeout``) and every sample a total budget
  (``--code-sample-timeout``); a sample stops at its first failing test.
- **Verdicts.** All tests passed: 1. A wrong answer, a timeout, a memory kill, a crash or an
  exception of the program: 0, with its reason (``Score.detail``) and every test's outcome
  (``Score.info``), status ``decided``. The sandbox itself failing is ``Score.grader_error`` (no
  verdict; ``lmgauge regrade`` grades it again).
- **Journal.** ``Score.info`` (``grade_info``): ``tests`` (one ``[label, outcome, seconds]`` per
  test run; outcomes passed, failed, timeout, memory, error), ``total``, ``passed``, ``failure``
  (the first failing test: reason, input, expected, got, stderr, each capped) and ``sandbox``.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Any, Sequence

import click

from lmgauge.plugin import Benchmark, Completion, Execution, ExecutionRequest, Limits, Sample, Score, answer_part

PASSED, FAILED, TIMEOUT, MEMORY, ERROR = "passed", "failed", "timeout", "memory", "error"
CAP = 2000  # characters of input/expected/got/stderr journaled for a failing test
MAX_LISTED = 500  # tests listed one by one in grade_info

CODE_OPTIONS = [
    click.Option(["--code-test-timeout", "code_test_timeout"], type=click.FloatRange(min=0.1), default=None,
                 help="code benchmarks: seconds each test may run (default: humaneval 10, livecodebench and "
                      "custom_code 6)"),
    click.Option(["--code-sample-timeout", "code_sample_timeout"], type=click.FloatRange(min=0.1), default=120.0,
                 show_default=True, help="code benchmarks: seconds all tests of one answer may take together"),
    click.Option(["--code-memory-mb", "code_memory_mb"], type=click.IntRange(min=64), default=4096, show_default=True,
                 help="code benchmarks: memory a program may use (MiB)"),
]

_FENCE = re.compile(r"^[ \t]*(```+|~~~+)[ \t]*([^\s`]*)[^\n]*\n(.*?)(?:^[ \t]*\1[ \t]*$|\Z)", re.M | re.S)
_PYTHON_TAGS = ("", "python", "py", "python3", "py3")


def extract_code(text: str | None) -> str | None:
    """The code of an answer (see the module docstring), or None when there is nothing after the
    thinking."""
    answer = answer_part(text)
    if not answer.strip():
        return None
    blocks = [(m.group(2).strip().lower(), m.group(3)) for m in _FENCE.finditer(answer)]
    python = [body for tag, body in blocks if tag in _PYTHON_TAGS]
    chosen = python[-1] if python else (blocks[-1][1] if blocks else answer)
    chosen = chosen.strip("\n")
    return chosen if chosen.strip() else None


def cap(text: Any, limit: int = CAP) -> str:
    text = text if isinstance(text, str) else json.dumps(text, ensure_ascii=False, default=str)
    if len(text) <= limit:
        return text
    return text[: limit // 2] + f"\n… [{len(text) - limit} characters cut] …\n" + text[-limit // 2:]


@dataclass
class Outcome:
    """One test's result."""

    label: str
    status: str
    time_s: float | None = None
    reason: str = ""
    input: Any = None
    expected: Any = None
    got: Any = None
    stderr: str = ""


class SandboxFailure(Exception):
    """The sandbox could not run a test: the sample has no verdict."""


def outcome_of(ex: Execution, label: str) -> Outcome | None:
    """The outcome an execution decides by itself (None: it ran to the end and its output is to
    be compared). Raises :class:`SandboxFailure` when the sandbox failed."""
    if ex.sandbox_failed:
        raise SandboxFailure(ex.reason or "the sandbox failed")
    if ex.status == "ok":
        return None
    status = {"timeout": TIMEOUT, "memory": MEMORY, "output": FAILED}.get(ex.status, ERROR)
    reason = ex.reason or ex.status
    if ex.status == "exit":
        last = [l for l in ex.stderr.strip().splitlines() if l.strip()]
        reason = last[-1].strip()[:300] if last else reason
    return Outcome(label, status, ex.wall_s, reason, stderr=cap(ex.stderr))


def compare_stdout(got: str, expected: str) -> str | None:
    """Why a program's output is not the expected one (None: it is), as LiveCodeBench judges:
    surrounding whitespace dropped, then line by line (each stripped), a line matching exactly or
    as the same numbers (decimal, so 1e18 and 10**18 + 1 differ)."""
    from decimal import Decimal, InvalidOperation

    g = [line.strip() for line in got.strip().split("\n")]
    e = [line.strip() for line in expected.strip().split("\n")]
    if len(g) != len(e):
        return f"wrong answer: {len(g)} lines of output, {len(e)} expected"
    for i, (a, b) in enumerate(zip(g, e), 1):
        if a == b:
            continue
        try:
            if [Decimal(x) for x in a.split()] == [Decimal(x) for x in b.split()]:
                continue
        except (InvalidOperation, ValueError):
            pass
        return f"wrong answer on line {i}"
    return None


class CodeBenchmark(Benchmark):
    """A benchmark whose answers are programs. Subclasses implement ``load`` and ``tests(sample,
    code, limits, budget) -> list[Outcome]`` (running them in ``self.sandbox``)."""

    needs_sandbox = True
    judge_kind = None
    options = CODE_OPTIONS
    default_test_timeout = 6.0

    # -- settings ------------------------------------------------------------------------------
    def _opt(self, key: str, default: Any) -> Any:
        values = getattr(self, "options", None)
        got = values.get(key) if isinstance(values, dict) else None
        return default if got is None else got

    def limits(self) -> Limits:
        return Limits(timeout_s=float(self._opt("code_test_timeout", self.default_test_timeout)),
                      memory_mb=int(self._opt("code_memory_mb", 4096)))

    def budget(self) -> float:
        return float(self._opt("code_sample_timeout", 120.0))

    # -- grading -------------------------------------------------------------------------------
    def score(self, sample: Sample, completion: Completion) -> Score:
        code = extract_code(completion.text)
        if code is None:
            return Score(0.0, None, "no code: nothing after the thinking", info={"tests": [], "total": 0, "passed": 0})
        sandbox = self.sandbox
        if sandbox is None:
            return Score.grader_error("no sandbox: this benchmark object was not set up by lmgauge (needs_sandbox)")
        try:
            outcomes, total = self.tests(sample, code, self.limits(), self.budget())
        except SandboxFailure as exc:
            return Score.grader_error(f"sandbox error: {exc}")
        except TestsUnavailable as exc:
            return Score.grader_error(f"tests unavailable: {exc}")
        return verdict(code, outcomes, total, sandbox.describe())

    def tests(self, sample: Sample, code: str, limits: Limits, budget: float) -> tuple[list[Outcome], int]:
        raise NotImplementedError

    # -- the report page and the app -----------------------------------------------------------
    def sample_view(self, record: Any) -> list[dict[str, Any]]:
        return code_view(getattr(record, "grade_info", None))


class TestsUnavailable(Exception):
    """The tests of a sample cannot be had (a regrade whose data file is gone)."""


def verdict(code: str, outcomes: list[Outcome], total: int, sandbox: str) -> Score:
    passed = sum(1 for o in outcomes if o.status == PASSED)
    failure = next((o for o in outcomes if o.status != PASSED), None)
    info: dict[str, Any] = {
        "tests": [[o.label, o.status, round(o.time_s, 3) if o.time_s is not None else None]
                  for o in outcomes[:MAX_LISTED]],
        "total": total, "passed": passed, "sandbox": sandbox,
    }
    if len(outcomes) > MAX_LISTED:
        info["tests_cut"] = len(outcomes) - MAX_LISTED
    if failure is not None:
        info["failure"] = {k: v for k, v in {
            "test": failure.label, "status": failure.status, "reason": failure.reason,
            "input": cap(failure.input) if failure.input is not None else None,
            "expected": cap(failure.expected) if failure.expected is not None else None,
            "got": cap(failure.got) if failure.got is not None else None,
            "stderr": failure.stderr or None}.items() if v is not None}
    if failure is None and passed == total and total > 0:
        return Score(1.0, code, f"passed {passed}/{total} tests", info=info)
    if failure is None:  # the sample budget ran out before every test ran
        detail = f"passed {passed}/{total} tests; the {total - passed} others did not run (sample time budget)"
        info["failure"] = {"test": f"test {passed + 1}", "status": TIMEOUT, "reason": "sample time budget exhausted"}
        return Score(0.0, code, detail, info=info)
    return Score(0.0, code, f"{failure.status} on {failure.label} ({passed}/{total} passed): {failure.reason}"[:300],
                 info=info)


_VIEW_STATUS = {PASSED: "pass", FAILED: "fail", ERROR: "fail", TIMEOUT: "warn", MEMORY: "warn"}


def code_view(info: Any) -> list[dict[str, Any]]:
    """The blocks of a code sample: every test's outcome, the first failure's details."""
    if not isinstance(info, dict):
        return []
    tests = info.get("tests") or []
    blocks: list[dict[str, Any]] = [{
        "kind": "fields", "title": "Tests",
        "items": [["passed", f"{info.get('passed', 0)} of {info.get('total', len(tests))}"],
                  ["sandbox", str(info.get("sandbox") or "")]]}]
    rows = []
    for t in tests:
        if not isinstance(t, (list, tuple)) or len(t) < 2:
            continue
        label, status = str(t[0]), str(t[1])
        secs = t[2] if len(t) > 2 else None
        rows.append([label, {"text": status, "status": _VIEW_STATUS.get(status, "warn")},
                     f"{secs:.3f}" if isinstance(secs, (int, float)) else ""])
    if info.get("tests_cut"):
        rows.append([f"… {info['tests_cut']} more", "", ""])
    if rows:
        blocks.append({"kind": "table", "title": "Test outcomes", "columns": ["test", "outcome", "seconds"],
                       "rows": rows})
    failure = info.get("failure")
    if isinstance(failure, dict):
        blocks.append({"kind": "fields", "title": f"First failure: {failure.get('test', '')}",
                       "items": [["outcome", str(failure.get("status", ""))], ["reason", str(failure.get("reason", ""))]]})
        for key, title in (("input", "Input"), ("expected", "Expected output"), ("got", "Program output"),
                           ("stderr", "stderr")):
            if failure.get(key):
                blocks.append({"kind": "text", "title": title, "text": str(failure[key])})
    return blocks


# ------------------------------------------------------------------------- test harnesses

#: names a LiveCodeBench program may use without importing them (its grader offers the same)
PRELUDE = """\
import bisect, collections, copy, datetime, functools, heapq, io, itertools, json, math, operator, random, re
import statistics, string, sys
from bisect import *
from collections import *
from copy import *
from datetime import *
from functools import *
from heapq import *
from io import *
from itertools import *
from json import *
from math import *
from operator import *
from random import *
from re import *
from statistics import *
from string import *
from sys import *
from typing import *
from builtins import *
"""

#: runs solution.py as a program with the prelude's names (stdin/stdout tests)
STDIO_HARNESS = """\
import sys
sys.setrecursionlimit(50000)
if hasattr(sys, "set_int_max_str_digits"):
    sys.set_int_max_str_digits(0)
_g = {"__name__": "__main__", "__file__": "solution.py", "__builtins__": __builtins__}
exec(open("prelude.py").read(), _g)
with open("solution.py", "rb") as _fh:
    _code = compile(_fh.read(), "solution.py", "exec", dont_inherit=True)
del _fh
exec(_code, _g)
"""

#: calls the solution's method on every input of tests.json; one JSON line per test on the saved
#: stdout (the program's own prints go nowhere), a per-test timer raising inside the program
FUNCTIONAL_HARNESS = """\
import io, json, os, signal, sys, time
sys.setrecursionlimit(50000)
if hasattr(sys, "set_int_max_str_digits"):
    sys.set_int_max_str_digits(0)
_out = os.fdopen(os.dup(1), "w")
sys.stdout = io.StringIO()
_tests = json.load(open("tests.json"))
_fn_name, _timeout = _tests["fn_name"], float(_tests["timeout"])

def _emit(**kw):
    _out.write(json.dumps(kw) + "\\n")
    _out.flush()

class _TestTimeout(BaseException):
    pass

def _alarm(signum, frame):
    raise _TestTimeout()

_g = {"__name__": "solution", "__builtins__": __builtins__}
try:
    exec(open("prelude.py").read(), _g)
    exec(compile(open("solution.py", "rb").read(), "solution.py", "exec", dont_inherit=True), _g)
    _target = _g["Solution"]() if "Solution" in _g else None
    _fn = getattr(_target, _fn_name, None) if _target is not None else _g.get(_fn_name)
    if _fn is None:
        raise NameError(f"the code defines no {_fn_name}" + (" in class Solution" if _target is not None else ""))
except BaseException as exc:
    _emit(setup=f"{type(exc).__name__}: {exc}"[:500])
    raise SystemExit(0)
signal.signal(signal.SIGALRM, _alarm)
for _i, _args in enumerate(_tests["inputs"]):
    _t = time.perf_counter()
    try:
        signal.setitimer(signal.ITIMER_REAL, _timeout)
        _value = _fn(*_args)
        signal.setitimer(signal.ITIMER_REAL, 0)
    except _TestTimeout:
        _emit(i=_i, timeout=True, s=time.perf_counter() - _t)
        break
    except MemoryError:
        signal.setitimer(signal.ITIMER_REAL, 0)
        _emit(i=_i, memory=True, s=time.perf_counter() - _t)
        break
    except BaseException as exc:
        signal.setitimer(signal.ITIMER_REAL, 0)
        _emit(i=_i, error=f"{type(exc).__name__}: {exc}"[:500], s=time.perf_counter() - _t)
        break
    if isinstance(_value, tuple):
        _value = list(_value)
    try:
        _text = json.dumps(_value)
    except (TypeError, ValueError) as exc:
        _emit(i=_i, error=f"the return value is not JSON data ({type(_value).__name__})", s=time.perf_counter() - _t)
        break
    _emit(i=_i, value=_text, s=time.perf_counter() - _t)
"""


@dataclass
class Test:
    """One input/output test (LiveCodeBench format): ``input``/``output`` texts; for functional
    tests the input is one JSON value per line (the arguments) and the output a JSON value."""

    input: str
    output: str
    label: str


def run_stdio(sandbox: Any, code: str, tests: Sequence[Test], limits: Limits, budget: float) -> list[Outcome]:
    """One execution per test, its stdin the test's input, its stdout compared (LiveCodeBench's
    rule); stops at the first failure."""
    files = {"solution.py": code, "prelude.py": PRELUDE, "run.py": STDIO_HARNESS}
    outcomes: list[Outcome] = []
    requests = []
    for t in tests:
        lim = replace(limits, stdout_bytes=max(limits.stdout_bytes, 2 * len(t.output) + 65536))
        requests.append(ExecutionRequest(files, ["python", "run.py"], t.input, lim))

    def judge(ex: Execution, t: Test) -> Outcome:
        decided = outcome_of(ex, t.label)
        if decided is not None:
            decided.input, decided.expected = t.input, t.output
            return decided
        why = compare_stdout(ex.stdout, t.output)
        if why is None:
            return Outcome(t.label, PASSED, ex.wall_s)
        return Outcome(t.label, FAILED, ex.wall_s, why, input=t.input, expected=t.output, got=ex.stdout,
                       stderr=cap(ex.stderr))

    it = iter(tests)

    def stop(ex: Execution) -> bool:
        o = judge(ex, next(it))
        outcomes.append(o)
        return o.status != PASSED

    executions = sandbox.run_many(requests, stop=stop, budget_s=budget)
    if executions and executions[-1].sandbox_failed:
        raise SandboxFailure(executions[-1].reason or "the sandbox failed")
    return outcomes


def run_functional(sandbox: Any, code: str, fn_name: str, tests: Sequence[Test], limits: Limits,
                   budget: float) -> list[Outcome]:
    """All tests in one execution: the harness calls ``fn_name`` (a method of ``class Solution``
    when the code defines one) with each test's arguments; the returned values are compared here
    with the expected ones (the program never sees them)."""
    try:
        inputs = [[json.loads(line) for line in t.input.split("\n") if line.strip()] for t in tests]
        expected = [json.loads(t.output) for t in tests]
    except ValueError as exc:
        raise TestsUnavailable(f"a functional test is not JSON ({exc})") from None
    files = {"solution.py": code, "prelude.py": PRELUDE, "run.py": FUNCTIONAL_HARNESS,
             "tests.json": json.dumps({"fn_name": fn_name, "timeout": limits.timeout_s, "inputs": inputs})}
    total_limit = min(budget, limits.timeout_s * len(tests) + 5.0)
    lim = replace(limits, timeout_s=total_limit,
                  stdout_bytes=max(limits.stdout_bytes, 4 * sum(len(t.output) for t in tests) + 65536))
    ex = sandbox.run(files, ["python", "run.py"], None, lim)
    if ex.sandbox_failed:
        raise SandboxFailure(ex.reason or "the sandbox failed")
    results: dict[int, dict[str, Any]] = {}
    setup = None
    for line in ex.stdout.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict):
            if "setup" in item:
                setup = str(item["setup"])
            elif isinstance(item.get("i"), int):
                results.setdefault(item["i"], item)
    outcomes: list[Outcome] = []
    if setup is not None:
        return [Outcome(tests[0].label if tests else "setup", ERROR, ex.wall_s, setup, stderr=cap(ex.stderr))]
    for i, t in enumerate(tests):
        r = results.get(i)
        if r is None:  # the program ended (or was stopped) before this test
            decided = outcome_of(ex, t.label) if ex.status != "ok" else None
            if decided is None:
                decided = Outcome(t.label, ERROR, None, "the program exited before this test ran", stderr=cap(ex.stderr))
            decided.input, decided.expected = t.input, t.output
            outcomes.append(decided)
            break
        secs = float(r.get("s") or 0.0)
        if r.get("timeout"):
            outcomes.append(Outcome(t.label, TIMEOUT, secs, f"took more than {limits.timeout_s:g} s", t.input, t.output))
            break
        if r.get("memory"):
            outcomes.append(Outcome(t.label, MEMORY, secs, "ran out of memory", t.input, t.output))
            break
        if "error" in r:
            outcomes.append(Outcome(t.label, ERROR, secs, str(r["error"]), t.input, t.output, stderr=cap(ex.stderr)))
            break
        try:
            value = json.loads(r.get("value", "null"))
        except ValueError:
            value = r.get("value")
        if value == expected[i]:
            outcomes.append(Outcome(t.label, PASSED, secs))
        else:
            outcomes.append(Outcome(t.label, FAILED, secs, "wrong answer", t.input, t.output, r.get("value")))
            break
    return outcomes
