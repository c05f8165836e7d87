"""``--export sqlite``: one SQLite database with tables ``runs``, ``scores``,
``eval_benchmarks``, ``eval_samples``, ``perf_levels``, ``perf_requests``.

Default file: ``DIR/export.sqlite``; ``--export-path results.sqlite`` appends to a shared
database, so several runs (two models, two backends) can be compared with SQL (docs/outputs.md).
Each run is written in one ``BEGIN IMMEDIATE`` transaction, so two processes appending at the
same time wait for each other and lose nothing. Exporting the same run again replaces its rows.
"""
from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import orjson

from lmgauge import __version__, hookimpl
from lmgauge.errors import LmgaugeError
from lmgauge.eval.journal import JOURNAL_FIELDS
from lmgauge.export import export_target, read_run
from lmgauge.interfaces import Exporter

from . import now_iso

SCHEMA_VERSION = 1
PCTS = ("mean", "p50", "p90", "p95", "p99")
PERF_METRICS = ("ttft", "tpot", "itl", "latency")

#: eval_samples columns: one per journal field (JSON text for lists/objects), then extra_json for
#: anything a newer lmgauge or a plugin added to a journal line
JSON_FIELDS = {"subsets": "subsets_json", "prompt": "prompt_json"}
BOOL_FIELDS = ("truncated", "correct")
SAMPLE_COLS = tuple(JSON_FIELDS.get(f, f) for f in JOURNAL_FIELDS) + ("extra_json",)
SQL_TYPES = {"repeat": "INTEGER", "truncated": "INTEGER", "score": "REAL", "correct": "INTEGER",
             "prompt_tokens": "INTEGER", "completion_tokens": "INTEGER", "latency_s": "REAL", "attempts": "INTEGER"}
SAMPLE_DDL = ", ".join(f"{c} {SQL_TYPES.get(c, 'TEXT')}" for c in SAMPLE_COLS)
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs(
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    name TEXT, run_dir TEXT, model TEXT, backend TEXT, url TEXT, created TEXT, exported_at TEXT,
    elapsed_s REAL, repeats INTEGER, complete INTEGER, lmgauge_version TEXT,
    config_json TEXT, report_json TEXT);
CREATE TABLE IF NOT EXISTS scores(
    run_id INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    benchmark TEXT, subset TEXT, metric TEXT, score REAL, count INTEGER, ci_low REAL, ci_high REAL);
CREATE TABLE IF NOT EXISTS eval_benchmarks(
    run_id INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    benchmark TEXT, questions INTEGER, samples INTEGER, graded INTEGER, errors INTEGER, truncated INTEGER,
    truncated_rate REAL, warnings_json TEXT);
CREATE TABLE IF NOT EXISTS eval_samples(
    run_id INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE, {SAMPLE_DDL});
CREATE TABLE IF NOT EXISTS perf_levels(
    run_id INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    level INTEGER, concurrency INTEGER, rate REAL, requests INTEGER, succeeded INTEGER, failed INTEGER,
    duration_s REAL, request_throughput REAL, output_token_throughput REAL, total_token_throughput REAL,
    {", ".join(f"{m}_{p} REAL" for m in PERF_METRICS for p in PCTS)},
    failures_json TEXT, level_json TEXT);
CREATE TABLE IF NOT EXISTS perf_requests(
    run_id INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    level INTEGER, idx INTEGER, scheduled_s REAL, sent_s REAL, ttft_s REAL, ttfc_s REAL, latency_s REAL,
    prompt_tokens INTEGER, completion_tokens INTEGER, usage_source TEXT, itl_json TEXT, success INTEGER,
    error TEXT, extra_json TEXT);
CREATE INDEX IF NOT EXISTS scores_run ON scores(run_id);
CREATE INDEX IF NOT EXISTS eval_benchmarks_run ON eval_benchmarks(run_id);
CREATE INDEX IF NOT EXISTS eval_samples_run ON eval_samples(run_id, benchmark, sample_id);
CREATE INDEX IF NOT EXISTS perf_levels_run ON perf_levels(run_id);
CREATE INDEX IF NOT EXISTS perf_requests_run ON perf_requests(run_id, level);
"""
TABLES = ("scores", "eval_benchmarks", "eval_samples", "perf_levels", "perf_requests")

REQUEST_COLS = ("level", "idx", "scheduled_s", "sent_s", "ttft_s", "ttfc_s", "latency_s", "prompt_tokens",
                "completion_tokens", "usage_source", "itl_json", "success", "error", "extra_json")


def _json(v: Any) -> str | None:
    return None if v is None else orjson.dumps(v).decode("utf-8")


def _text(v: Any) -> str | None:
    """Strings as they are; anything else as JSON text."""
    if v is None or isinstance(v, str):
        return v
    return _json(v)


def _bool(v: Any) -> int | None:
    return None if v is None else int(bool(v))


def run_key(run_dir: str, created: str) -> str:
    return hashlib.sha256(f"{Path(run_dir).resolve()}|{created}".encode()).hexdigest()[:32]


def _sample_row(rec: dict[str, Any]) -> tuple:
    row: list[Any] = []
    for f in JOURNAL_FIELDS:
        v = rec.get(f)
        if f in JSON_FIELDS:
            row.append(_json(v if v is not None else ([] if f == "subsets" else None)))
        elif f in BOOL_FIELDS:
            row.append(_bool(v))
        elif f == "sample_id":
            row.append(str(v))
        elif isinstance(v, (dict, list)):
            row.append(_json(v))
        else:
            row.append(_text(v) if f in ("question", "gold", "extracted", "grade_detail") else v)
    extra = {k: v for k, v in rec.items() if k not in JOURNAL_FIELDS}
    return (*row, _json(extra) if extra else None)


def _request_row(rec: dict[str, Any]) -> tuple:
    known = set(REQUEST_COLS) | {"run_id", "itl_s"}
    extra = {k: v for k, v in rec.items() if k not in known}
    return (rec.get("level"), rec.get("idx"), rec.get("scheduled_s"), rec.get("sent_s"), rec.get("ttft_s"),
            rec.get("ttfc_s"), rec.get("latency_s"), rec.get("prompt_tokens"), rec.get("completion_tokens"),
            rec.get("usage_source"), _json(rec.get("itl_s") or []), _bool(rec.get("success")), rec.get("error"),
            _json(extra) if extra else None)


def _level_row(i: int, lv: dict[str, Any]) -> tuple:
    stats = []
    for m in PERF_METRICS:
        d = lv.get(f"{m}_s") if isinstance(lv.get(f"{m}_s"), dict) else {}
        stats.extend(d.get(p) for p in PCTS)
    return (i, lv.get("concurrency"), lv.get("rate"), lv.get("requests"), lv.get("succeeded"), lv.get("failed"),
            lv.get("duration_s"), lv.get("request_throughput"), lv.get("output_token_throughput"),
            lv.get("total_token_throughput"), *stats, _json(lv.get("failures") or {}), _json(lv))


def _check_schema(con: sqlite3.Connection, path: Path) -> None:
    cols = {r[1] for r in con.execute("PRAGMA table_info(runs)")}
    if cols and "run_key" not in cols:
        raise LmgaugeError(f"{path} is not an lmgauge export database (its runs table has another schema)",
                           "a run's own perf.sqlite is not an export target; choose a new file with --export-path")
    row = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() if cols else None
    if row is not None and int(row[0]) > SCHEMA_VERSION:
        raise LmgaugeError(f"{path} was written by a newer lmgauge (export schema {row[0]} > {SCHEMA_VERSION})",
                           "upgrade lmgauge-exporters or use another --export-path")


def write_run(db_path: Path, run_dir: str) -> tuple[int, bool, dict[str, int]]:
    """Append (or replace) one run; returns (run_id, replaced, row counts)."""
    run = read_run(run_dir)
    samples = run.samples()
    requests = run.requests()
    key = run_key(run_dir, run.created)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(str(db_path), timeout=120, isolation_level=None)
    try:
        con.execute("PRAGMA foreign_keys=ON")
        con.execute("BEGIN IMMEDIATE")
        try:
            _check_schema(con, db_path)
            for stmt in SCHEMA.split(";"):
                if stmt.strip():
                    con.execute(stmt)
            con.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            have = {r[1] for r in con.execute("PRAGMA table_info(eval_samples)")}
            for col in SAMPLE_COLS:  # a database written before the journal gained a field
                if col not in have:
                    con.execute(f"ALTER TABLE eval_samples ADD COLUMN {col} {SQL_TYPES.get(col, 'TEXT')}")
            old = con.execute("SELECT run_id FROM runs WHERE run_key=?", (key,)).fetchone()
            if old is not None:
                for t in TABLES:
                    con.execute(f"DELETE FROM {t} WHERE run_id=?", (old[0],))
                con.execute("DELETE FROM runs WHERE run_id=?", (old[0],))
            rep = run.report
            cur = con.execute(
                "INSERT INTO runs(run_key, kind, name, run_dir, model, backend, url, created, exported_at, elapsed_s,"
                " repeats, complete, lmgauge_version, config_json, report_json) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (key, run.kind, run.name, str(Path(run_dir).resolve()), run.model, run.backend, run.url, run.created,
                 now_iso(), rep.get("elapsed_s"), rep.get("repeats"), _bool(rep.get("complete")), __version__,
                 _json(run.config), _json(rep)))
            rid = cur.lastrowid
            counts = {"scores": 0, "samples": 0, "levels": 0, "requests": 0}
            if run.kind == "eval":
                rows = [(rid, r.get("benchmark"), r.get("subset"), r.get("metric"), r.get("score"), r.get("count"),
                         r.get("ci_low"), r.get("ci_high")) for r in run.results]
                con.executemany("INSERT INTO scores VALUES (?,?,?,?,?,?,?,?)", rows)
                counts["scores"] = len(rows)
                con.executemany("INSERT INTO eval_benchmarks VALUES (?,?,?,?,?,?,?,?,?)",
                                [(rid, b.get("benchmark"), b.get("questions"), b.get("samples"), b.get("graded"),
                                  b.get("errors"), b.get("truncated"), b.get("truncated_rate"),
                                  _json(b.get("warnings") or [])) for b in run.benchmarks])
                con.executemany(f"INSERT INTO eval_samples(run_id, {', '.join(SAMPLE_COLS)}) "
                                f"VALUES (?{', ?' * len(SAMPLE_COLS)})", ((rid, *_sample_row(s)) for s in samples))
                counts["samples"] = len(samples)
            else:
                levels = [(rid, *_level_row(i, lv)) for i, lv in enumerate(run.levels)]
                if levels:
                    con.executemany(f"INSERT INTO perf_levels VALUES ({', '.join('?' * len(levels[0]))})", levels)
                counts["levels"] = len(levels)
                con.executemany(f"INSERT INTO perf_requests(run_id, {', '.join(REQUEST_COLS)}) "
                                f"VALUES (?{', ?' * len(REQUEST_COLS)})", ((rid, *_request_row(r)) for r in requests))
                counts["requests"] = len(requests)
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
    except sqlite3.OperationalError as exc:
        raise LmgaugeError(f"cannot write SQLite database {db_path}: {exc}",
                           "check the path is writable and the disk has space, or choose another --export-path") from None
    except sqlite3.DatabaseError as exc:
        raise LmgaugeError(f"{db_path} is not a usable SQLite database: {exc}",
                           "choose a new file with --export-path") from None
    finally:
        con.close()
    return rid, old is not None, counts


class SqliteExporter(Exporter):
    name = "sqlite"
    description = "SQLite database (runs, scores, eval samples, perf levels and requests); --export-path appends"

    def export(self, run_dir: str, options: dict[str, Any]) -> str:
        target = export_target(run_dir, options, suffixes=(".sqlite", ".sqlite3", ".db"),
                               default_file="export.sqlite", file_in_folder="lmgauge.sqlite", key="sqlite_path")
        rid, replaced, counts = write_run(target, run_dir)
        what = (f"{counts['scores']} scores, {counts['samples']} samples" if counts["scores"] or counts["samples"]
                else f"{counts['levels']} levels, {counts['requests']} requests")
        return f"{'replaced' if replaced else 'added'} run {rid} in {target} ({what})"


@hookimpl
def register_exporters(register):
    register(SqliteExporter)
