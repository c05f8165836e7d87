"""The run-folder library: one typed definition of every file a run folder holds, shared
by every writer (eval runner, regrade, judge, perf, sweeps) and every reader (report,
compare, the HTML page, ``lmgauge serve``, the exporters, plugins through lmgauge.plugin).

=====================  ==============================================================
``run.json``           :class:`Manifest`: kind and schema version (schema.py)
``config.yaml``        :class:`RunConfig`: the run's settings, flat, no secrets (config.py)
``samples.jsonl``      :class:`SampleRecord` per line; :class:`SampleJournal` reads it by
                       byte offset, :class:`JournalWriter` appends (samples.py)
``report.json``        :class:`EvalReport` (evalreport.py)
``changes.jsonl``      :class:`RegradeChange` per line (a regrade)
``summary.json``       :class:`PerfSummary` with a :class:`PerfLevel` per level (perf.py)
``perf.sqlite``        ``runs`` and ``requests`` (:class:`RequestRow`) (perfstore.py)
``.lmgauge.lock``      the writer holding the folder (lock.py)
=====================  ==============================================================

:func:`load_run` reads any folder of any schema version (schema.py says what changed).
"""
from __future__ import annotations

from .config import RunConfig
from .evalreport import MAIN_METRIC, OVERALL, BenchmarkSummary, EvalReport, RegradeChange, ResultRow
from .folder import RunFolder, kind_of, load_run, read_config, read_json, run_labels, saved_settings
from .lock import FolderLock, Holder, holder
from .perf import PERCENTILES, STATS, Distribution, PerfLevel, PerfSummary
from .perfstore import MetricColumn, PerfStore, RequestRow
from .samples import (CORRECT, ERROR, JOURNAL_FIELDS, SAMPLE_STATUSES, TRUNCATED, WRONG, JournalWriter, Key,
                      SampleJournal, SampleRecord, latest_samples, parse_line, read_samples, write_samples)
from .schema import KINDS, MANIFEST, SCHEMA_VERSION, Manifest, new_manifest, read_manifest

__all__ = ["RunConfig", "MAIN_METRIC", "OVERALL", "BenchmarkSummary", "EvalReport", "RegradeChange", "ResultRow", "RunFolder",
           "kind_of", "load_run", "read_config", "read_json", "run_labels", "saved_settings", "FolderLock", "Holder",
           "holder", "PERCENTILES", "STATS", "Distribution", "PerfLevel", "PerfSummary", "MetricColumn", "PerfStore",
           "RequestRow", "CORRECT", "ERROR", "JOURNAL_FIELDS", "SAMPLE_STATUSES", "TRUNCATED", "WRONG",
           "JournalWriter", "Key", "SampleJournal", "SampleRecord", "latest_samples", "parse_line", "read_samples", "write_samples",
           "KINDS", "MANIFEST", "SCHEMA_VERSION", "Manifest", "new_manifest", "read_manifest"]
