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
- Run folders (the typed library lmgauge.runfolder): :func:`load_run` → :class:`RunFolder`
  (any run folder, any schema version), :class:`SampleRecord` (a journal line;
  :data:`JOURNAL_FIELDS`), :func:`read_samples`, :class:`SampleJournal`, :class:`EvalReport`
  (report.json: :class:`ResultRow`, :class:`BenchmarkSummary`), :class:`RegradeChange`,
  :class:`PerfSummary` / :class:`PerfLevel` / :class:`Distribution` (summary.json),
  :class:`RequestRow` (perf.sqlite), :func:`read_config`, :func:`saved_settings`,
  :func:`run_labels`; :func:`atomic_write`, :func:`export_target` (where a file-writing
  exporter writes), :func:`redact`.
- Perf metrics: :class:`PerfMetric` (register with ``register_perf_metrics``).
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
    **dict.fromkeys(("JOURNAL_FIELDS", "SampleRecord", "SampleJournal", "read_samples", "EvalReport", "ResultRow",
                     "BenchmarkSummary", "PerfSummary", "PerfLevel", "Distribution", "RequestRow", "RunFolder",
                     "load_run", "read_config", "saved_settings", "run_labels", "RegradeChange"), "runfolder"),
    **dict.fromkeys(("export_target", "export_settings", "run_exporters"), "export"),
    "perf_metrics": "perf.registry",
    "pop_plugin_values": "options",
    **{"hub_offline": "hub:offline", "hub_endpoint": "hub:endpoint", "hub_reachable": "hub:reachable"},
    "atomic_write": "files",
    **dict.fromkeys(("answer_part", "extract_choice", "extract_math_answer", "grade_choice", "grade_integer",
                     "grade_math", "last_boxed", "math_equal", "normalize_math", "split_thinking", "to_integer"),
                    "grading"),
    **dict.fromkeys(("Backend", "BackendConfig", "Benchmark", "Exporter", "Metric", "PerfDataset", "PerfMetric",
                     "RequestSettings"), "interfaces"),
    **dict.fromkeys(("Sandbox", "Limits", "Execution", "ExecutionRequest", "EXECUTION_STATUSES"), "interfaces"),
    "PluginCommand": "options",
    "make_request": "perf.requests",
    "redact": "redaction",
    **dict.fromkeys(("Tokenizer", "load_tokenizer"), "tokenizers"),
    **dict.fromkeys(("Completion", "GenerationParams", "GenerationRequest", "PerfRecord", "Sample", "Score", "Session",
                     "DECIDED", "UNDECIDED", "GRADER_ERROR", "FAILURE_KINDS"), "types"),
}


def __getattr__(name: str) -> Any:
    if name == "lmgauge_version":
        from .version import __version__

        return __version__
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'lmgauge.plugin' has no attribute {name!r}")
    where, _, attr = where.partition(":")  # "module:attribute" when the public name differs
    value = getattr(import_module(f"lmgauge.{where}"), attr or name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "hookimpl",
    "Benchmark", "Backend", "BackendConfig", "PerfDataset", "RequestSettings", "Exporter", "Metric", "PerfMetric",
    "Sandbox", "Limits", "Execution", "ExecutionRequest", "EXECUTION_STATUSES",
    "Sample", "Score", "Completion", "GenerationRequest", "GenerationParams", "PerfRecord", "Session",
    "DECIDED", "UNDECIDED", "GRADER_ERROR", "FAILURE_KINDS",
    "LmgaugeError", "ConfigError", "DataError", "BackendError", "PluginError",
    "split_thinking", "answer_part", "last_boxed", "extract_math_answer", "normalize_math", "math_equal",
    "grade_math", "to_integer", "grade_integer", "extract_choice", "grade_choice",
    "load_run", "RunFolder", "read_config", "saved_settings", "run_labels", "SampleRecord", "SampleJournal",
    "read_samples", "JOURNAL_FIELDS", "EvalReport", "ResultRow", "BenchmarkSummary", "RegradeChange", "PerfSummary",
    "PerfLevel", "Distribution", "RequestRow", "atomic_write", "export_target", "redact",
    "load_tokenizer", "Tokenizer", "make_request", "PluginCommand", "pop_plugin_values", "export_settings",
    "run_exporters", "perf_metrics", "lmgauge_version", "hub_offline", "hub_endpoint", "hub_reachable",
]
