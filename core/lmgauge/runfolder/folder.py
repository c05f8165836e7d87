"""Reading a run folder: :func:`load_run` → :class:`RunFolder`.

Nothing here writes into a run folder: perf.sqlite is opened read-only, JSON and YAML files
are only read. Every config and report that leaves this module has its secrets redacted.

Folders of every schema version are read (schema.py): version 1 has no run.json, its kind
comes from summary.json (perf) or report.json (eval).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import orjson

from ..errors import DataError
from ..redaction import REDACTED, is_secret_key, redact, redact_strings, redact_text
from .config import RunConfig
from .evalreport import EvalReport, RegradeChange
from .perf import PerfSummary
from .perfstore import MetricColumn, RequestRow, query, read_rows
from .samples import SampleJournal, SampleRecord
from .schema import Manifest, read_manifest

REPORT, SUMMARY, SAMPLES, CONFIG, PERF_DB, CHANGES, SWEEP, COLLECTION = (
    "report.json", "summary.json", "samples.jsonl", "config.yaml", "perf.sqlite", "changes.jsonl", "sweep.json",
    "collection.json")


def read_json(path: Path) -> Any:
    """A JSON file; an unreadable one is one DataError line."""
    try:
        return orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise DataError(f"cannot read {path}: not valid JSON ({exc})",
                        "the run may have been interrupted while writing it; re-run or restore the file") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None


def read_config(folder: str | os.PathLike) -> dict[str, Any]:
    """DIR/config.yaml as written (not redacted: for commands that reuse a run's settings);
    ``{}`` when missing or unreadable."""
    return RunConfig.read(folder).values


def saved_settings(folder: str | os.PathLike) -> dict[str, Any]:
    """The settings a run was made with, without the redacted secrets (``lmgauge export``
    reuses a run's plugin options)."""
    return {k: v for k, v in read_config(folder).items() if v != REDACTED}


def _clean(data: dict[str, Any]) -> dict[str, Any]:
    return redact_strings({k: (REDACTED if is_secret_key(str(k)) and v else v) for k, v in data.items()})


@dataclass
class RunFolder:
    """One run folder, read. ``kind`` is ``eval`` (a regrade folder too: :attr:`regrade`
    says so), ``perf`` or ``sweep``. ``report`` (eval) and ``summary`` (perf) are the typed
    report.json and summary.json, secrets redacted; an eval still running before its first
    report gets an empty report with its config. ``config`` is config.yaml, redacted."""

    path: Path
    kind: str
    config: dict[str, Any]
    manifest: Manifest | None = None
    report: EvalReport | None = None
    summary: PerfSummary | None = None
    sweep: dict[str, Any] | None = None
    _journal: SampleJournal | None = field(default=None, repr=False)
    _level_map: dict[Any, int] | None = field(default=None, repr=False)

    # -- identity ------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.path.name

    @property
    def schema_version(self) -> int:
        if self.manifest is not None:
            return self.manifest.schema_version
        return 1

    @property
    def regrade(self) -> bool:
        return (self.manifest is not None and self.manifest.kind == "regrade") or bool(
            self.report is not None and self.report.regrade)

    @property
    def display_kind(self) -> str:
        """eval, regrade, perf or sweep."""
        return "regrade" if self.kind == "eval" and self.regrade else self.kind

    @property
    def model(self) -> str:
        doc = self.report or self.summary
        return str((doc.model if doc is not None else "") or self.config.get("model") or "?")

    @property
    def backend(self) -> str:
        doc = self.report or self.summary
        return str((doc.backend if doc is not None else None) or self.config.get("backend") or "")

    @property
    def url(self) -> str:
        url = self.summary.url if self.summary is not None else None
        base = self.config.get("base_url") or self.config.get("url") or ""
        if isinstance(base, list):
            base = base[0] if base else ""
        return redact_text(str(url or base))

    @property
    def created(self) -> str:
        doc = self.report or self.summary
        return str((doc.created if doc is not None else "") or (self.manifest.created if self.manifest else ""))

    # -- eval ------------------------------------------------------------------------------
    @property
    def results(self):
        return self.report.results if self.report is not None else []

    @property
    def benchmarks(self):
        return self.report.benchmarks if self.report is not None else []

    def journal(self) -> SampleJournal:
        """The journal, indexed by offset (:class:`SampleJournal`); call ``refresh()`` on it
        to follow a run that is still writing."""
        if self._journal is None:
            self._journal = SampleJournal(self.path / SAMPLES)
            self._journal.refresh()
        return self._journal

    def samples(self) -> Iterator[SampleRecord]:
        """Per-sample eval records, the latest per key, read one at a time; none for perf."""
        if self.kind != "eval":
            return iter(())
        return iter(self.journal())

    def collection(self) -> dict[str, Any] | None:
        """``collection.json`` of a ``--collection`` run: {name, sampler, seed, size,
        benchmarks: [{name, weight, dataset_path}]}; None for other runs. A running collection's
        MACRO/WEIGHTED rows need it before report.json exists."""
        path = self.path / COLLECTION
        if not path.is_file():
            return self.report.collection if self.report is not None else None
        data = read_json(path)
        return data if isinstance(data, dict) else None

    def changes(self) -> Iterator[RegradeChange]:
        """A regrade's changes.jsonl."""
        path = self.path / CHANGES
        if not path.exists():
            return
        with path.open("rb") as fh:
            for line in fh:
                try:
                    yield RegradeChange.from_dict(orjson.loads(line))
                except (orjson.JSONDecodeError, TypeError, KeyError):
                    continue

    # -- perf ------------------------------------------------------------------------------
    @property
    def levels(self):
        return self.summary.runs if self.summary is not None else []

    def axis(self) -> str:
        return self.summary.axis() if self.summary is not None else "concurrency"

    def requests(self, columns: list[MetricColumn] | None = None) -> Iterator[RequestRow]:
        """Per-request perf rows, level by level, each with ``level`` = the index of its level
        in :attr:`levels`. ``columns``: the metric columns to read (default: every one the file
        holds)."""
        if self.kind != "perf":
            return iter(())
        return read_rows(self.path / PERF_DB, columns, self._level_of())

    def request_times(self) -> dict[int, list[tuple[float, float | None, float | None, bool]]]:
        """Per level index: (sent_s, ttft_s, latency_s, success) of each request, seconds from
        the level's start (only these columns are read)."""
        out: dict[int, list[tuple[float, float | None, float | None, bool]]] = {}
        rows = query(self.path / PERF_DB, "requests", "SELECT run_id, sent_s, ttft_s, latency_s, success FROM requests "
                                                      "WHERE sent_s IS NOT NULL ORDER BY run_id, sent_s")
        level_of = self._level_of()
        for run_id, sent, ttft, lat, ok in rows:
            lv = level_of.get(run_id)
            if lv is not None:
                out.setdefault(lv, []).append((sent, ttft, lat, bool(ok)))
        return out

    def server_series(self) -> dict[int, dict[str, list[tuple[float, float]]]]:
        """Per level index: the server's normalised series (``--server-metrics``), each a list
        of (t_s, value) from the level's start; empty when the run scraped nothing."""
        out: dict[int, dict[str, list[tuple[float, float]]]] = {}
        rows = query(self.path / PERF_DB, "server_series", "SELECT run_id, series, t_s, value FROM server_series "
                                                           "ORDER BY run_id, series, t_s")
        level_of = self._level_of()
        for run_id, series, t, value in rows:
            lv = level_of.get(run_id)
            if lv is not None and t is not None and value is not None:
                out.setdefault(lv, {}).setdefault(str(series), []).append((float(t), float(value)))
        return out

    def _level_of(self) -> dict[Any, int]:
        """perf.sqlite ``run_id`` → index of its level in :attr:`levels` (by order when the
        counts agree, else by concurrency and rate)."""
        if self._level_map is None:
            db_runs = query(self.path / PERF_DB, "runs", "SELECT run_id, concurrency, rate FROM runs ORDER BY run_id")
            levels = self.levels
            if len(db_runs) == len(levels):
                self._level_map = {r[0]: i for i, r in enumerate(db_runs)}
            else:
                self._level_map = {}
                for run_id, conc, rate in db_runs:
                    for i, lv in enumerate(levels):
                        if (lv.concurrency, lv.rate) == (conc, rate):
                            self._level_map[run_id] = i
                            break
        return self._level_map


def kind_of(path: Path) -> tuple[str | None, Manifest | None]:
    """(kind, manifest) of a folder: eval, perf, sweep, or None when it is no run folder."""
    manifest = read_manifest(path)
    if manifest is not None:
        return ("eval" if manifest.kind == "regrade" else manifest.kind), manifest
    if (path / SUMMARY).is_file():
        return "perf", None
    if (path / REPORT).is_file():
        return "eval", None
    if (path / SWEEP).is_file():
        return "sweep", None
    return None, None


def load_run(run_dir: str | os.PathLike) -> RunFolder:
    """Read one run folder; a missing or unreadable folder is one clear DataError."""
    path = Path(run_dir)
    if not path.exists():
        raise DataError(f"run folder {str(path)!r} does not exist", "pass a folder written by lmgauge eval or perf")
    if not path.is_dir():
        raise DataError(f"{str(path)!r} is not a folder", "pass the run folder, not a file inside it")
    kind, manifest = kind_of(path)
    if kind is None:
        raise DataError(f"{str(path)!r} is not an lmgauge run folder: it has no report.json (eval) or summary.json (perf)",
                        "pass a folder written by lmgauge eval or lmgauge perf")
    saved = read_config(path)
    run = RunFolder(path=path, kind=kind, config={}, manifest=manifest)
    data: dict[str, Any] = {}
    if kind == "perf":
        data = _document(path / SUMMARY, "perf") if (path / SUMMARY).is_file() else {}
    elif kind == "eval":
        data = _document(path / REPORT, "eval") if (path / REPORT).is_file() else {
            "model": saved.get("model") or "", "backend": saved.get("backend"), "repeats": saved.get("repeats") or 1}
    else:
        run.sweep = _clean(read_json(path / SWEEP)) if (path / SWEEP).is_file() else {}
    # the config the report embeds, else config.yaml; redacted either way
    embedded = data.get("config") if isinstance(data.get("config"), dict) else None
    run.config = redact(embedded or saved)
    if kind == "perf":
        run.summary = PerfSummary.from_dict({**data, "config": run.config})
    elif kind == "eval":
        run.report = EvalReport.from_dict({**data, "config": run.config})
    doc = run.report or run.summary
    if doc is not None and manifest is not None and "schema_version" not in data:
        doc.schema_version = manifest.schema_version
    return run


def _document(path: Path, kind: str) -> dict[str, Any]:
    data = read_json(path)
    if not isinstance(data, dict):
        raise DataError(f"{path} does not hold a JSON object")
    got = str(data.get("kind") or kind)
    if got != kind:
        raise DataError(f"{path.parent}: unknown run kind {got!r}", "expected eval or perf")
    return _clean(data)


def run_labels(runs: list[RunFolder]) -> list[str]:
    """Short, distinct labels: the model; plus the backend when models repeat; plus the
    folder name when that is still ambiguous (two server builds, same model)."""
    labels = [r.model for r in runs]
    if len(set(labels)) < len(labels):
        labels = [f"{r.model} · {r.backend}" if r.backend else r.model for r in runs]
    if len(set(labels)) < len(labels):
        labels = [f"{lab} · {r.name}" for lab, r in zip(labels, runs)]
    if len(set(labels)) < len(labels):
        labels = [f"{lab} #{i + 1}" for i, lab in enumerate(labels)]
    return labels
