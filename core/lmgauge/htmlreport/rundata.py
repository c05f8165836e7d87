"""Reading run folders (eval and perf) into one plain shape, for the HTML report, the terminal
tables and the exporters.

Nothing here ever writes into a run folder: ``perf.sqlite`` is opened read-only, JSON/YAML
files are only read. Every config that leaves this module is passed through :func:`redact`.

Eval folder: ``report.json`` (kind ``eval``), ``samples.jsonl``, ``config.yaml``.
Perf folder: ``summary.json`` (kind ``perf``), ``perf.sqlite``, ``config.yaml``.
See docs/outputs.md for the schemas.
"""
from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

from ..errors import DataError

from ..redaction import REDACTED, is_secret_key, redact, redact_strings, redact_text  # noqa: F401


# --------------------------------------------------------------------------------------
# reading helpers
def _read_json(path: Path) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise DataError(f"cannot read {path}: not valid JSON ({exc})",
                        "the run may have been interrupted while writing it; re-run or restore the file") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        import yaml

        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - a broken config.yaml must not stop a report
        return {}
    return data if isinstance(data, dict) else {}


def saved_settings(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The settings a run was made with (DIR/config.yaml), without the redacted secrets: for
    commands that act on a finished run with the same plugin options (``lmgauge export``)."""
    data = _read_yaml(Path(run_dir) / "config.yaml")
    return {k: v for k, v in data.items() if v != REDACTED}


def read_samples(path: Path) -> list[dict[str, Any]]:
    """The eval journal: latest record per (benchmark, sample_id, repeat), first-seen order."""
    from ..eval.journal import read_records

    return read_records(path)


def sample_status(rec: dict[str, Any]) -> str:
    """One of ``error``, ``truncated``, ``correct``, ``wrong`` (``truncated`` wins over the
    verdict; the verdict is still in ``correct``)."""
    if rec.get("error"):
        return "error"
    if rec.get("truncated"):
        return "truncated"
    if rec.get("correct") is True or (rec.get("correct") is None and (rec.get("score") or 0) >= 1.0):
        return "correct"
    return "wrong"


def _sqlite_ro(path: Path) -> sqlite3.Connection:
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    try:
        con = sqlite3.connect(uri, uri=True, timeout=10)
        con.execute("SELECT 1 FROM sqlite_master LIMIT 1")
        return con
    except sqlite3.Error:
        # a read-only folder holding a WAL database: read it as immutable
        return sqlite3.connect(uri.replace("mode=ro", "immutable=1"), uri=True, timeout=10)


# --------------------------------------------------------------------------------------
@dataclass
class RunFolder:
    """One run folder, read. ``report`` is report.json (eval) or summary.json (perf) with its
    config redacted; ``config`` is the redacted run config."""

    path: Path
    kind: str
    report: dict[str, Any]
    config: dict[str, Any]
    _samples: list[dict[str, Any]] | None = field(default=None, repr=False)
    _requests: list[dict[str, Any]] | None = field(default=None, repr=False)
    _level_map: dict[Any, int] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def model(self) -> str:
        return str(self.report.get("model") or self.config.get("model") or "?")

    @property
    def backend(self) -> str:
        return str(self.report.get("backend") or self.config.get("backend") or "")

    @property
    def url(self) -> str:
        return redact_text(str(self.report.get("url") or self.config.get("base_url") or self.config.get("url") or ""))

    @property
    def created(self) -> str:
        return str(self.report.get("created") or "")

    # -- eval ------------------------------------------------------------------------
    @property
    def results(self) -> list[dict[str, Any]]:
        return list(self.report.get("results") or [])

    @property
    def benchmarks(self) -> list[dict[str, Any]]:
        return list(self.report.get("benchmarks") or [])

    def samples(self) -> list[dict[str, Any]]:
        """Per-sample eval records (latest per key); empty for perf runs."""
        if self._samples is None:
            self._samples = read_samples(self.path / "samples.jsonl") if self.kind == "eval" else []
        return self._samples

    # -- perf ------------------------------------------------------------------------
    @property
    def levels(self) -> list[dict[str, Any]]:
        """summary.json ``runs``: one entry per concurrency level / request rate."""
        return [lv for lv in (self.report.get("runs") or []) if isinstance(lv, dict)]

    def axis(self) -> str:
        """``"rate"`` when any level is open-loop, else ``"concurrency"``."""
        return "rate" if any(lv.get("rate") is not None for lv in self.levels) else "concurrency"

    def requests(self) -> list[dict[str, Any]]:
        """Per-request perf records from perf.sqlite (read-only), each with ``level`` = the
        index of its level in :attr:`levels`; ``itl_json`` decoded into ``itl_s``."""
        if self._requests is None:
            self._requests = self._read_requests() if self.kind == "perf" else []
        return self._requests

    def request_times(self) -> dict[int, list[tuple[float, float | None, float | None, bool]]]:
        """Per level index: (sent_s, ttft_s, latency_s, success) of each request, seconds from
        the level's start (perf.sqlite ``requests``; only these columns are read)."""
        out: dict[int, list[tuple[float, float | None, float | None, bool]]] = {}
        rows = self._query("requests", "SELECT run_id, sent_s, ttft_s, latency_s, success FROM requests "
                                       "WHERE sent_s IS NOT NULL ORDER BY run_id, sent_s")
        level_of = self._level_of()
        for run_id, sent, ttft, lat, ok in rows:
            lv = level_of.get(run_id)
            if lv is not None:
                out.setdefault(lv, []).append((sent, ttft, lat, bool(ok)))
        return out

    def server_series(self) -> dict[int, dict[str, list[tuple[float, float]]]]:
        """Per level index: the server's normalised series (``--server-metrics``: perf.sqlite
        ``server_series``), each a list of (t_s, value) from the level's start; empty when the
        run scraped nothing."""
        out: dict[int, dict[str, list[tuple[float, float]]]] = {}
        rows = self._query("server_series", "SELECT run_id, series, t_s, value FROM server_series "
                                            "ORDER BY run_id, series, t_s")
        level_of = self._level_of()
        for run_id, series, t, value in rows:
            lv = level_of.get(run_id)
            if lv is not None and t is not None and value is not None:
                out.setdefault(lv, {}).setdefault(str(series), []).append((float(t), float(value)))
        return out

    def _query(self, table: str, sql: str) -> list[tuple[Any, ...]]:
        """Rows of one query on perf.sqlite; none when the file or the table is missing."""
        db = self.path / "perf.sqlite"
        if self.kind != "perf" or not db.exists():
            return []
        try:
            con = _sqlite_ro(db)
        except sqlite3.Error as exc:
            raise DataError(f"cannot open {db}: {exc}") from None
        try:
            if not con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table,)).fetchone():
                return []
            return con.execute(sql).fetchall()
        except sqlite3.Error as exc:
            raise DataError(f"cannot read {db}: {exc}", "the file may be damaged; re-run the perf test") from None
        finally:
            con.close()

    def _level_of(self) -> dict[Any, int]:
        """perf.sqlite ``run_id`` → index of its level in :attr:`levels` (by order when the
        counts agree, else by concurrency and rate)."""
        if self._level_map is None:
            db_runs = self._query("runs", "SELECT run_id, concurrency, rate FROM runs ORDER BY run_id")
            levels = self.levels
            if len(db_runs) == len(levels):
                self._level_map = {r[0]: i for i, r in enumerate(db_runs)}
            else:
                self._level_map = {}
                for run_id, conc, rate in db_runs:
                    for i, lv in enumerate(levels):
                        if (lv.get("concurrency"), lv.get("rate")) == (conc, rate):
                            self._level_map[run_id] = i
                            break
        return self._level_map

    def _read_requests(self) -> list[dict[str, Any]]:
        db = self.path / "perf.sqlite"
        if not db.exists():
            return []
        level_of = self._level_of()
        try:
            con = _sqlite_ro(db)
        except sqlite3.Error as exc:
            raise DataError(f"cannot open {db}: {exc}") from None
        try:
            con.row_factory = sqlite3.Row
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if "requests" not in tables:
                return []
            out = []
            for row in con.execute("SELECT * FROM requests ORDER BY run_id, idx"):
                rec = dict(row)
                rec["level"] = level_of.get(rec.get("run_id"))
                itl = rec.pop("itl_json", None)
                try:
                    rec["itl_s"] = orjson.loads(itl) if itl else []
                except orjson.JSONDecodeError:
                    rec["itl_s"] = []
                if "success" in rec and rec["success"] is not None:
                    rec["success"] = bool(rec["success"])
                if isinstance(rec.get("error"), str):
                    rec["error"] = redact_text(rec["error"])
                out.append(rec)
            return out
        except sqlite3.Error as exc:
            raise DataError(f"cannot read {db}: {exc}", "the file may be damaged; re-run the perf test") from None
        finally:
            con.close()


def load_run(run_dir: str | os.PathLike) -> RunFolder:
    """Read one run folder; a missing or unreadable folder is one clear DataError."""
    path = Path(run_dir)
    if not path.exists():
        raise DataError(f"run folder {str(path)!r} does not exist", "pass a folder written by lmgauge eval or perf")
    if not path.is_dir():
        raise DataError(f"{str(path)!r} is not a folder", "pass the run folder, not a file inside it")
    summary, report = path / "summary.json", path / "report.json"
    if summary.exists():
        data = _read_json(summary)
        kind = "perf"
    elif report.exists():
        data = _read_json(report)
        kind = str(data.get("kind") or "eval") if isinstance(data, dict) else "eval"
    else:
        raise DataError(f"{str(path)!r} is not an lmgauge run folder: it has no report.json (eval) or summary.json (perf)",
                        "pass a folder written by lmgauge eval or lmgauge perf")
    if not isinstance(data, dict):
        raise DataError(f"{summary if kind == 'perf' else report} does not hold a JSON object")
    if kind not in ("eval", "perf"):
        raise DataError(f"{path}: unknown run kind {kind!r}", "expected eval or perf")
    config = data.get("config") if isinstance(data.get("config"), dict) else None
    if not config:
        config = _read_yaml(path / "config.yaml")
    config = redact(config)
    data = redact_strings({k: (REDACTED if is_secret_key(str(k)) and v else v) for k, v in data.items()})
    data["config"] = config
    return RunFolder(path=path, kind=kind, report=data, config=config)


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
