"""Everything a plugin may use, in one module: ``from lmgauge.plugin import ...``.

docs/plugins.md documents this module only; what is not here is lmgauge's own business and may
change between releases.

- ``hookimpl``: decorates the hook functions of a plugin module (hookspecs.py lists them).
- Base classes (``abc.ABC``; register a subclass): :class:`Benchmark`, :class:`Backend`
  (constructed with a :class:`BackendConfig`), :class:`PerfDataset` (with its options, the
  run's :class:`RequestSettings` and tokenizer), :class:`Exporter`, :class:`Metric`.
- Plain data: :class:`Sample`, :class:`Score`, :class:`Completion`,
  :class:`GenerationRequest`, :class:`GenerationParams`, :class:`Session` (multi-turn perf),
  :class:`PerfRecord`.
- Errors printed as one line: :class:`LmgaugeError` and its kinds :class:`ConfigError`,
  :class:`DataError`, :class:`BackendError`, :class:`PluginError`.
- Grading helpers (thinking split, answer extraction, math-verify, integer and letter
  grading): :func:`grade_math`, :func:`grade_integer`, :func:`grade_choice`, ...
- Run folders: :func:`load_run` (read any run folder), :func:`read_records` (an eval journal),
  :data:`JOURNAL_FIELDS` (what a journal line holds), :func:`atomic_write`,
  :func:`export_target` (where a file-writing exporter writes), :func:`redact`.
- Perf: :func:`load_tokenizer` / :class:`Tokenizer`, :func:`make_request`.
- :class:`PluginCommand`: a click command (for ``register_commands``) that takes the options
  plugins declare for the families it names.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

from .hookspecs import hookimpl

#: where each public name lives; imported on first use (PEP 562), so that a plugin importing a
#: base class does not pull the grading, report or tokenizer modules into `lmgauge --help`
_WHERE = {
    **dict.fromkeys(("BackendError", "ConfigError", "DataError", "LmgaugeError", "PluginError"), "errors"),
    **dict.fromkeys(("JOURNAL_FIELDS", "read_records"), "eval.journal"),
    "export_target": "export",
    "atomic_write": "files",
    **dict.fromkeys(("answer_part", "extract_choice", "extract_math_answer", "grade_choice", "grade_integer",
                     "grade_math", "last_boxed", "math_equal", "normalize_math", "split_thinking", "to_integer"),
                    "grading"),
    **dict.fromkeys(("RunFolder", "load_run"), "htmlreport.rundata"),
    **dict.fromkeys(("Backend", "BackendConfig", "Benchmark", "Exporter", "Metric", "PerfDataset", "RequestSettings"),
                    "interfaces"),
    "PluginCommand": "options",
    "make_request": "perf.requests",
    "redact": "redaction",
    **dict.fromkeys(("Tokenizer", "load_tokenizer"), "tokenizers"),
    **dict.fromkeys(("Completion", "GenerationParams", "GenerationRequest", "PerfRecord", "Sample", "Score", "Session"),
                    "types"),
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'lmgauge.plugin' has no attribute {name!r}")
    value = getattr(import_module(f"lmgauge.{where}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "hookimpl",
    "Benchmark", "Backend", "BackendConfig", "PerfDataset", "RequestSettings", "Exporter", "Metric",
    "Sample", "Score", "Completion", "GenerationRequest", "GenerationParams", "PerfRecord", "Session",
    "LmgaugeError", "ConfigError", "DataError", "BackendError", "PluginError",
    "split_thinking", "answer_part", "last_boxed", "extract_math_answer", "normalize_math", "math_equal",
    "grade_math", "to_integer", "grade_integer", "extract_choice", "grade_choice",
    "load_run", "RunFolder", "read_records", "JOURNAL_FIELDS", "atomic_write", "export_target", "redact",
    "load_tokenizer", "Tokenizer", "make_request", "PluginCommand",
]
