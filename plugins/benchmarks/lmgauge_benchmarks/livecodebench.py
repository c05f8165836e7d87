"""``livecodebench``: LiveCodeBench code generation (``code_generation_lite``), LeetCode, AtCoder
and Codeforces problems with their public and private tests.

Data: the hub dataset ``livecodebench/code_generation_lite`` (cached by huggingface_hub; needs
``lmgauge-benchmarks[hub]``), or ``--dataset-path livecodebench=PATH``: one of its JSONL files, or
a folder holding them (``test.jsonl`` … ``test6.jsonl``, as a clone of the dataset has).

- ``--lcb-version``: ``release_v1`` … ``release_v6`` (every problem up to that release),
  ``v1`` … ``v6`` (only the problems that release added), ``release_latest`` (all; the default).
  A release picks files (``release_vN`` = ``test.jsonl`` … ``testN.jsonl``), so it needs the hub or
  a folder.
- ``--lcb-start-date`` / ``--lcb-end-date`` (``YYYY-MM-DD``, inclusive) keep the problems whose
  ``contest_date`` falls in the window: a model's contamination window (DeepSeek-R1 reports
  2024-08-01 … 2025-01-31).

Tests: ``public_test_cases`` (JSON) and ``private_test_cases`` (JSON, or base64 of zlib of a
pickle of the JSON text, as the dataset stores them). The pickles are read by a restricted
unpickler that builds only plain strings, numbers, lists, tuples and dicts: anything asking for a
class or function is refused in one line (a dataset file is untrusted input too). Problems with a
``metadata.func_name`` are functional (LeetCode ``class Solution``: the method is called with each
test's JSON arguments and its return value compared, in one execution); the others are
stdin/stdout programs (one execution per test, the output compared line by line, numbers as
decimals: LiveCodeBench's rule). Each test may run ``--code-test-timeout`` seconds (default 6, as
LiveCodeBench); the program gets LiveCodeBench's names without importing them (typing,
collections, heapq, math, …), a recursion limit of 50000 and unlimited integer digits.

Prompt: the problem's ``question_content`` verbatim, then the format (the starter code in a Python
block, or "read stdin, write stdout"), then the instruction to answer with one Python block.
Subsets: the difficulty (easy, medium, hard) and the platform. The sample id is ``question_id``.

Journal: ``gold`` holds the test kind, the function name and the SHA-256 of the tests, with the
tests themselves when they are small (64 KiB); larger ones are found again, for ``lmgauge
regrade``, in the data they came from (``gold.source``), checked against that digest.
"""
from __future__ import annotations

import base64
import datetime as dt
import glob
import hashlib
import io
import json
import os
import pickle
import zlib
from pathlib import Path
from typing import Any, Iterator

import click

from lmgauge.plugin import ConfigError, DataError, Limits, Sample, hookimpl

from .code import CODE_OPTIONS, CodeBenchmark, Outcome, Test, TestsUnavailable, run_functional, run_stdio
from .loading import HubSource, read_rows, rows_from_hub

HUB_REPO = "livecodebench/code_generation_lite"
FILES = ("test.jsonl", "test2.jsonl", "test3.jsonl", "test4.jsonl", "test5.jsonl", "test6.jsonl")
VERSIONS: dict[str, tuple[str, ...]] = {
    **{f"release_v{n}": FILES[:n] for n in range(1, len(FILES) + 1)},
    **{f"v{n}": (FILES[n - 1],) for n in range(1, len(FILES) + 1)},
}
LATEST = "release_latest"
INLINE_BYTES = 64 << 10
MAX_DECODED = 1 << 30  # a private-test blob larger than this once inflated is refused (zip bomb)

LCB_OPTIONS = [
    click.Option(["--lcb-version", "lcb_version"], default=LATEST, show_default=True,
                 help="livecodebench: release_v1 … release_v6 (every problem up to it), v1 … v6 (what it added), "
                      "release_latest"),
    click.Option(["--lcb-start-date", "lcb_start_date"], default=None, metavar="YYYY-MM-DD",
                 help="livecodebench: only problems whose contest_date is on or after this day"),
    click.Option(["--lcb-end-date", "lcb_end_date"], default=None, metavar="YYYY-MM-DD",
                 help="livecodebench: only problems whose contest_date is on or before this day"),
]

PROMPT = """Solve the following programming problem in Python 3. Your program must be correct and fast enough \
for the problem's limits: it is run on hidden tests.

### Problem
{question}

### Format
{format}

### Answer
Think it through, then give your final program as one Python code block (```python ... ```): only the last code \
block of your answer is run."""

FORMAT_STDIN = ("Read the input from standard input and write the answer to standard output. The program is run "
                "as it is on each test: do not run it on the examples yourself.")
FORMAT_STARTER = "Complete this starter code; your code block holds the whole class with the method filled in:"


def lcb_prompt(question: str, starter_code: str | None) -> str:
    if starter_code and starter_code.strip():
        fmt = f"{FORMAT_STARTER}\n```python\n{starter_code.rstrip()}\n```"
    else:
        fmt = FORMAT_STDIN
    return PROMPT.format(question=question.strip("\n"), format=fmt)


# ------------------------------------------------------------------------- the tests' encoding


class RefusedPickle(pickle.UnpicklingError):
    """A pickle that asks for more than plain data."""


class _PlainUnpickler(pickle.Unpickler):
    """Builds plain data only: every global (class, function, reducer) is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise RefusedPickle(f"asks for {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise RefusedPickle("asks for a persistent object")


def _inflate(data: bytes) -> bytes:
    d = zlib.decompressobj()
    out = d.decompress(data, MAX_DECODED + 1)
    if len(out) > MAX_DECODED or d.unconsumed_tail:
        raise ValueError(f"it inflates to more than {MAX_DECODED >> 20} MiB")
    return out


def decode_tests(raw: Any) -> list[dict[str, Any]]:
    """A test-case field as a list of ``{"input", "output", "testtype"}``: a list already, JSON
    text, or base64 of zlib of a pickle of JSON text (the dataset's private tests). Raises
    ValueError with the reason, :class:`RefusedPickle` for a pickle asking for more than data."""
    if raw is None or raw == "":
        return []
    value: Any = raw
    if isinstance(raw, (bytes, str)):
        text = raw.decode() if isinstance(raw, bytes) else raw
        try:
            value = json.loads(text)
        except ValueError:
            try:
                blob = base64.b64decode(text.encode(), validate=False)
            except (ValueError, TypeError):
                raise ValueError("is neither JSON nor base64") from None
            try:
                inflated = _inflate(blob)
            except zlib.error:
                raise ValueError("is neither JSON nor base64 of zlib data") from None
            try:
                value = _PlainUnpickler(io.BytesIO(inflated)).load()
            except RefusedPickle:
                raise
            except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError) as exc:
                raise ValueError(f"is not a readable pickle ({exc.__class__.__name__})") from None
            if isinstance(value, (str, bytes)):
                value = json.loads(value)
    if not isinstance(value, list):
        raise ValueError(f"holds a {type(value).__name__}, not a list of tests")
    out = []
    for k, t in enumerate(value, 1):
        if not isinstance(t, dict) or "input" not in t or "output" not in t:
            raise ValueError(f"test {k} is not an object with input and output")
        out.append({"input": str(t["input"]), "output": str(t["output"]), "testtype": str(t.get("testtype") or "")})
    return out


def tests_digest(public: Any, private: Any) -> str:
    h = hashlib.sha256()
    for part in (public, private):
        text = part if isinstance(part, str) else json.dumps(part, sort_keys=True)
        h.update(text.encode() if text is not None else b"")
        h.update(b"\0")
    return h.hexdigest()


_decoded: dict[str, list[Test]] = {}  # per process: the tests of the last problems graded


def tests_of(sample: Sample) -> list[Test]:
    """The sample's tests: from the loaded data (``meta``), the journal (``gold``, small tests) or
    the data file they came from (a regrade), checked against the digest in ``gold``."""
    gold = sample.gold or {}
    digest = gold.get("sha256", "")
    got = _decoded.get(digest)
    if got is not None:
        return got
    raw = sample.meta.get("tests_raw") if isinstance(sample.meta, dict) else None
    raw = raw or gold.get("tests_raw") or _reload(gold)
    public, private = raw
    if digest and tests_digest(public, private) != digest:
        raise TestsUnavailable("the tests in the data differ from those this sample was graded with (SHA-256)")
    try:
        tests = [Test(t["input"], t["output"], f"public {k}") for k, t in enumerate(decode_tests(public), 1)]
        tests += [Test(t["input"], t["output"], f"private {k}") for k, t in enumerate(decode_tests(private), 1)]
    except (ValueError, RefusedPickle) as exc:
        raise TestsUnavailable(f"cannot read the tests ({exc})") from None
    if len(_decoded) >= 8:
        _decoded.pop(next(iter(_decoded)))
    _decoded[digest] = tests
    return tests


_reloaded: dict[str, dict[str, tuple[Any, Any]]] = {}


def _reload(gold: dict[str, Any]) -> tuple[Any, Any]:
    source = gold.get("source") or {}
    qid = str(gold.get("question_id", ""))
    key = json.dumps(source, sort_keys=True)
    table = _reloaded.get(key)
    if table is None:
        table = {}
        try:
            if source.get("kind") == "custom":
                rows: Any = read_rows(source["path"])
            else:
                rows = lcb_rows(source.get("path"), source.get("version") or LATEST, "livecodebench")
            for row in rows:
                rid = str(row.get("question_id", row.get("task_id", "")))
                table[rid] = (row.get("public_test_cases"), row.get("private_test_cases"))
        except (DataError, OSError, KeyError) as exc:
            raise TestsUnavailable(f"the data the tests came from cannot be read ({getattr(exc, 'message', exc)})") from None
        _reloaded.clear()
        _reloaded[key] = table
    if qid not in table:
        raise TestsUnavailable(f"question {qid} is not in the data the tests came from ({source})")
    return table[qid]


# ------------------------------------------------------------------------------- reading


def _jsonl_stream(path: Path, where: str) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except ValueError as exc:
                    raise DataError(f"{where}: {path.name} line {n} is not valid JSON ({exc})", "fix or remove that line") from None
                if isinstance(row, dict):
                    yield row


def lcb_rows(path: str | None, version: str, bench: str) -> Iterator[dict[str, Any]]:
    """Rows of a release: from a file, a folder of the dataset's files, or the hub."""
    if version != LATEST and version not in VERSIONS:
        raise ConfigError(f"--lcb-version {version}: unknown release",
                          f"use one of {LATEST}, {', '.join(VERSIONS)}")
    if path is None:
        files = ("test*.jsonl",) if version == LATEST else VERSIONS[version]
        yield from rows_from_hub(bench, HubSource(HUB_REPO, files, path_hint="FOLDER_OR_FILE.jsonl"))
        return
    p = Path(path).expanduser()
    where = f"--dataset-path {bench}={path}"
    if p.is_dir():
        if version == LATEST:
            files = sorted(glob.glob(str(p / "test*.jsonl")), key=lambda f: (len(os.path.basename(f)), f))
            if not files:
                raise DataError(f"{where}: the folder has no test*.jsonl files", "point it at a copy of code_generation_lite")
        else:
            files = [str(p / f) for f in VERSIONS[version]]
            missing = [os.path.basename(f) for f in files if not os.path.isfile(f)]
            if missing:
                raise DataError(f"{where}: --lcb-version {version} needs {', '.join(missing)} in that folder",
                                "copy the dataset's files there, or pick another --lcb-version")
        for f in files:
            yield from _jsonl_stream(Path(f), where)
        return
    if not p.is_file():
        raise DataError(f"{where}: no such file or folder", "check the path")
    if version != LATEST:
        raise ConfigError(f"--lcb-version {version} picks files of the dataset, but {path} is one file",
                          "pass the folder holding test.jsonl … test6.jsonl, or drop --lcb-version")
    if p.suffix.lower() == ".jsonl":
        yield from _jsonl_stream(p, where)
    else:
        yield from read_rows(p, bench)


def _day(value: Any, what: str) -> dt.date | None:
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        raise ConfigError(f"{what} {value!r} is not a date", "write it as YYYY-MM-DD") from None


class LCBTests:
    """Grading of a LiveCodeBench-format sample (``gold``: kind, fn_name, sha256, ...)."""

    def lcb_tests(self, sample: Sample, code: str, limits: Limits, budget: float) -> tuple[list[Outcome], int]:
        tests = tests_of(sample)
        if not tests:
            raise TestsUnavailable("the problem has no tests")
        gold = sample.gold or {}
        if gold.get("kind") == "functional":
            return run_functional(self.sandbox, code, gold.get("fn_name") or "", tests, limits, budget), len(tests)
        return run_stdio(self.sandbox, code, tests, limits, budget), len(tests)


def lcb_sample(bench: str, row: dict[str, Any], where: str, source: dict[str, Any],
               require: Any) -> Sample:
    """A LiveCodeBench-format row as a sample (its tests checked once here, kept raw in ``meta``)."""
    qid = str(require("question_id")).strip()
    question = str(require("question_content"))
    public = row.get("public_test_cases")
    private = row.get("private_test_cases")
    counts = []
    for column, raw in (("public_test_cases", public), ("private_test_cases", private)):
        try:
            counts.append(len(decode_tests(raw)))
        except RefusedPickle as exc:
            raise DataError(f"{where}, column {column}: holds a pickle that {exc}: refused (only plain strings, numbers, "
                            "lists and dicts are read)", "use the dataset's own file, or give the tests as JSON") from None
        except (ValueError, EOFError, TypeError) as exc:
            raise DataError(f"{where}, column {column}: {exc}",
                            'give a JSON list of {"input": ..., "output": ..., "testtype": "stdin"}') from None
    if counts[0] + counts[1] == 0:
        raise DataError(f"{where}, column public_test_cases: the problem has no tests", "give at least one test")
    meta_raw = row.get("metadata")
    try:
        metadata = json.loads(meta_raw) if isinstance(meta_raw, str) and meta_raw.strip() else (meta_raw or {})
    except ValueError:
        raise DataError(f"{where}, column metadata: not JSON", 'e.g. {"func_name": "maxSum"}') from None
    fn_name = metadata.get("func_name") if isinstance(metadata, dict) else None
    starter = row.get("starter_code") or ""
    kind = "functional" if fn_name else "stdin"
    if fn_name is None and any(t["testtype"] == "functional" for t in decode_tests(public)):
        raise DataError(f"{where}, column metadata: functional tests need metadata.func_name",
                        'e.g. {"func_name": "maxSum"}')
    digest = tests_digest(public, private)
    gold: dict[str, Any] = {"kind": kind, "fn_name": fn_name, "sha256": digest, "question_id": qid,
                            "tests": counts[0] + counts[1]}
    size = sum(len(x) if isinstance(x, str) else len(json.dumps(x)) for x in (public, private) if x is not None)
    if size <= INLINE_BYTES:
        gold["tests_raw"] = [public, private]
    else:
        gold["source"] = source
    subsets = tuple(str(row[c]).strip().lower() for c in ("difficulty", "platform") if row.get(c))
    meta = {"tests_raw": [public, private], "contest_date": row.get("contest_date"),
            "title": row.get("question_title")}
    return Sample(id=qid, benchmark=bench, prompt=lcb_prompt(question, starter), gold=gold, subsets=subsets,
                  question=question, meta=meta)


class LiveCodeBench(LCBTests, CodeBenchmark):
    name = "livecodebench"
    description = ("LiveCodeBench code generation (code_generation_lite): stdin/stdout and LeetCode-style problems, "
                   "public and private tests, --lcb-version and contest-date windows")
    options = CODE_OPTIONS + LCB_OPTIONS
    default_test_timeout = 6.0

    def load(self, path: str | None = None) -> list[Sample]:
        version = str(self._opt("lcb_version", LATEST)).strip()
        start = _day(self._opt("lcb_start_date", None), "--lcb-start-date")
        end = _day(self._opt("lcb_end_date", None), "--lcb-end-date")
        if start and end and start > end:
            raise ConfigError(f"--lcb-start-date {start} is after --lcb-end-date {end}", "swap them")
        source = ({"kind": "lcb", "path": os.path.abspath(os.path.expanduser(path)), "version": version}
                  if path else {"kind": "lcb", "hub": HUB_REPO, "version": version})
        out, seen = [], {}
        for i, row in enumerate(lcb_rows(path, version, self.name)):
            where = f"{self.name}: {path or HUB_REPO}, row {i + 1}"
            day = _day(row.get("contest_date"), f"{where}: contest_date") if row.get("contest_date") else None
            if (start and (day is None or day < start)) or (end and (day is None or day > end)):
                continue

            def require(col: str, row: dict = row, where: str = where) -> Any:
                v = row.get(col)
                if v is None or (isinstance(v, str) and not v.strip()):
                    raise DataError(f"{where}: no column {col}", f"columns found: {', '.join(map(str, row))}")
                return v

            s = lcb_sample(self.name, row, where, source, require)
            if s.id in seen:
                raise DataError(f"{where}: question_id {s.id} repeats row {seen[s.id] + 1}", "remove the duplicate")
            seen[s.id] = i
            out.append(s)
        if not out:
            window = f" between {start or 'the start'} and {end or 'the end'}" if (start or end) else ""
            raise DataError(f"{self.name}: no problem of {version}{window}", "widen --lcb-start-date/--lcb-end-date")
        return out

    def tests(self, sample: Sample, code: str, limits: Limits, budget: float) -> tuple[list[Outcome], int]:
        return self.lcb_tests(sample, code, limits, budget)


@hookimpl
def register_benchmarks(register):
    register(LiveCodeBench())
