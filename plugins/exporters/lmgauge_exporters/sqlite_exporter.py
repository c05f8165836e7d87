"""``--export sqlite``: one SQLite database with tables ``runs``, ``scores``,
``eval_benchmarks``, ``eval_samples``, ``eval_lengths`` (the reasoning-length statistics per
benchmark, ``subset`` OVERALL, and per subset), ``eval_budget_curve`` (one row per budget point),
``perf_levels``, ``perf_requests``.

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

from lmgauge.plugin import (JOURNAL_FIELDS, Exporter, LmgaugeError, export_target, hookimpl, lmgauge_version, load_run,
                            perf_metrics)

from . import now_iso

SCHEMA_VERSION = 1
#: statistics of every per-request perf metric in perf_levels (columns NAME_STAT)
PCTS = ("mean", "p50", "p90", "p95", "p99")

#: eval_samples columns: one per journal field (JSON text for lists/objects), then extra_json for
#: anything a newer lmgauge or a plugin added to a journal line
JSON_FIELDS = {"subsets": "subsets_json", "prompt": "prompt_json", "grade_info": "grade_info_json",
               "first_correct": "first_correct_json"}
BOOL_FIELDS = ("truncated", "correct", "rule_correct")
SAMPLE_COLS = tuple(JSON_FIELDS.get(f, f) for f in JOURNAL_FIELDS) + ("extra_json",)
SQL_TYPES = {"repeat": "INTEGER", "truncated": "INTEGER", "score": "REAL", "correct": "INTEGER",
             "prompt_tokens": "INTEGER", "completion_tokens": "INTEGER", "latency_s": "REAL", "attempts": "INTEGER",
             "reasoning_tokens": "INTEGER", "answer_tokens": "INTEGER", "rule_score": "REAL", "rule_correct": "INTEGER",
             "reflections": "INTEGER"}
#: eval_lengths columns: (column, SQL type, path in a report.json lengths entry)
LENGTH_COLS = (("samples", "INTEGER", ("samples",)), ("counted", "INTEGER", ("counted",)),
               ("token_source", "TEXT", ("token_source",)),
               *((f"{part}_tokens_{stat}", "REAL", (f"{part}_tokens", stat))
                 for part in ("completion", "reasoning", "answer") for stat in ("mean", "p50", "p90", "max")),
               ("mean_tokens_correct", "REAL", ("mean_tokens_correct",)),
               ("mean_tokens_wrong", "REAL", ("mean_tokens_wrong",)), ("truncated", "INTEGER", ("truncated",)),
               ("truncation_rate", "REAL", ("truncation_rate",)), ("score_finished", "REAL", ("score_finished",)),
               ("score_truncated", "REAL", ("score_truncated",)), ("tokens_per_correct", "REAL", ("tokens_per_correct",)),
               ("reflections_per_1k", "REAL", ("reflections_per_1k",)),
               ("reflections_per_sample", "REAL", ("reflections_per_sample",)),
               *((f"first_correct_{k}", "INTEGER" if k in ("checked", "found") else "REAL", ("first_correct", k))
                 for k in ("checked", "found", "found_rate", "mean_tokens", "mean_share_after")))
BUDGET_COLS = (("benchmark", "TEXT"), ("max_tokens", "INTEGER"), ("score", "REAL"), ("ci_low", "REAL"),
               ("ci_high", "REAL"))
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
CREATE INDEX IF NOT EXISTS scores_run ON scores(run_id);
CREATE INDEX IF NOT EXISTS eval_benchmarks_run ON eval_benchmarks(run_id);
CREATE INDEX IF NOT EXISTS eval_samples_run ON eval_samples(run_id, benchmark, sample_id)
"""
TABLES = ("scores", "eval_benchmarks", "eval_samples", "eval_lengths", "eval_budget_curve", "perf_levels",
          "perf_requests")

#: the fixed columns of perf_levels and perf_requests (the metric columns follow the installed
#: perf metrics' declarations)
LEVEL_BASE = (("level", "INTEGER"), ("concurrency", "INTEGER"), ("rate", "REAL"), ("requests", "INTEGER"),
              ("succeeded", "INTEGER"), ("failed", "INTEGER"), ("duration_s", "REAL"))
REQUEST_BASE = (("level", "INTEGER"), ("idx", "INTEGER"), ("scheduled_s", "REAL"), ("sent_s", "REAL"),
                ("prompt_tokens", "INTEGER"), ("completion_tokens", "INTEGER"), ("usage_source", "TEXT"),
                ("success", "INTEGER"), ("error", "TEXT"))


def perf_columns() -> tuple[list[tuple[str, str, Any]], list[tuple[str, str, Any]]]:
    """(perf_levels, perf_requests) columns after the fixed ones: ``(column, SQL type, how
    to get it)`` from the perf metric declarations."""
    level: list[tuple[str, str, Any]] = []
    request: list[tuple[str, str, Any]] = []
    metrics = perf_metrics()
    for m in metrics:
        if m.kind == "level":
            level.append((m.summary_key, "REAL", ("level", m.summary_key)))
    for m in metrics:
        if m.kind == "request":
            level += [(f"{m.name}_{p}", "REAL", ("stat", m.summary_key, p)) for p in PCTS]
            if m.stored:
                name = m.summary_key[:-2] + "_json" if m.is_list and m.summary_key.endswith("_s") else m.summary_key
                request.append((name, "TEXT" if m.is_list else "REAL", ("value", m.summary_key, m.is_list)))
    return level, request


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


def _sample_row(rec: Any) -> tuple:
    data = rec.to_dict()
    row: list[Any] = []
    for f in JOURNAL_FIELDS:
        v = data.get(f)
        if f in JSON_FIELDS:
            row.append(_json(v if v is not None else ([] if f == "subsets" else None)))
        elif f in BOOL_FIELDS:
            row.append(_bool(v))
        elif isinstance(v, (dict, list)):
            row.append(_json(v))
        else:
            row.append(_text(v) if f in ("question", "gold", "extracted", "grade_detail") else v)
    return (*row, _json(rec.extra) if rec.extra else None)


def _ensure_table(con: sqlite3.Connection, table: str, columns: list[tuple[str, str]], index: str = "level") -> None:
    con.execute(f"CREATE TABLE IF NOT EXISTS {table}(run_id INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE, "
                f"{', '.join(f'{c} {t}' for c, t in columns)})")
    have = {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
    for c, t in columns:  # a database written by an older lmgauge, or before a plugin metric was installed
        if c not in have:
            con.execute(f"ALTER TABLE {table} ADD COLUMN {c} {t}")
    con.execute(f"CREATE INDEX IF NOT EXISTS {table}_run ON {table}(run_id, {index})")


def _path(d: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(d, dict):
            return None
        d = d.get(key)
    return d if d is None or isinstance(d, (int, float, str)) and not isinstance(d, bool) else None


def _length_rows(rid: int, run: Any) -> tuple[list[tuple], list[tuple]]:
    """eval_lengths rows (a benchmark's OVERALL, then its subsets) and eval_budget_curve rows."""
    lengths, curve = [], []
    for b in run.benchmarks:
        groups = [("OVERALL", b.lengths)] + sorted((b.subset_lengths or {}).items())
        for subset, st in groups:
            if isinstance(st, dict):
                lengths.append((rid, b.benchmark, subset, *(_path(st, p) for _, _, p in LENGTH_COLS), _json(st)))
        for point in b.budget_curve or []:
            if isinstance(point, dict):
                curve.append((rid, b.benchmark, *(_path(point, (c,)) for c, _ in BUDGET_COLS[1:])))
    return lengths, curve


def _get(how: tuple, lv: Any = None, row: Any = None) -> Any:
    if how[0] == "level":
        return lv.stat(how[1])
    if how[0] == "stat":
        return lv.dist(how[1]).get(how[2])
    value = row.value(how[1])
    return _json(value if value is not None else []) if how[2] else value


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
    run = load_run(run_dir)
    key = run_key(run_dir, run.created)
    level_cols, request_cols = perf_columns()
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
            _ensure_table(con, "perf_levels", [*LEVEL_BASE, *((c, t) for c, t, _ in level_cols),
                                               ("failures_json", "TEXT"), ("level_json", "TEXT")])
            _ensure_table(con, "perf_requests", [*REQUEST_BASE, *((c, t) for c, t, _ in request_cols),
                                                 ("extra_json", "TEXT")])
            _ensure_table(con, "eval_lengths", [("benchmark", "TEXT"), ("subset", "TEXT"),
                                                *((c, t) for c, t, _ in LENGTH_COLS), ("lengths_json", "TEXT")],
                          index="benchmark")
            _ensure_table(con, "eval_budget_curve", list(BUDGET_COLS), index="benchmark")
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
            doc = run.report if run.report is not None else run.summary
            rep = run.report
            cur = con.execute(
                "INSERT INTO runs(run_key, kind, name, run_dir, model, backend, url, created, exported_at, elapsed_s,"
                " repeats, complete, lmgauge_version, config_json, report_json) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (key, run.kind, run.name, str(Path(run_dir).resolve()), run.model, run.backend, run.url, run.created,
                 now_iso(), rep.elapsed_s if rep else None, rep.repeats if rep else None,
                 _bool(rep.complete) if rep else None, lmgauge_version, _json(run.config),
                 _json(doc.to_dict() if doc is not None else {})))
            rid = cur.lastrowid
            counts = {"scores": 0, "samples": 0, "levels": 0, "requests": 0}
            if run.kind == "eval":
                rows = [(rid, r.benchmark, r.subset, r.metric, r.score, r.count, r.ci_low, r.ci_high) for r in run.results]
                con.executemany("INSERT INTO scores VALUES (?,?,?,?,?,?,?,?)", rows)
                counts["scores"] = len(rows)
                con.executemany("INSERT INTO eval_benchmarks VALUES (?,?,?,?,?,?,?,?,?)",
                                [(rid, b.benchmark, b.questions, b.samples, b.graded, b.errors, b.truncated,
                                  b.truncated_rate, _json(b.warnings)) for b in run.benchmarks])
                n = 0
                sql = f"INSERT INTO eval_samples(run_id, {', '.join(SAMPLE_COLS)}) VALUES (?{', ?' * len(SAMPLE_COLS)})"
                for s in run.samples():
                    con.execute(sql, (rid, *_sample_row(s)))
                    n += 1
                counts["samples"] = n
                lengths, curve = _length_rows(rid, run)
                names = ["benchmark", "subset", *(c for c, _, _ in LENGTH_COLS), "lengths_json"]
                con.executemany(f"INSERT INTO eval_lengths(run_id, {', '.join(names)}) VALUES "
                                f"({', '.join('?' * (len(names) + 1))})", lengths)
                con.executemany(f"INSERT INTO eval_budget_curve(run_id, {', '.join(c for c, _ in BUDGET_COLS)}) VALUES "
                                f"({', '.join('?' * (len(BUDGET_COLS) + 1))})", curve)
            else:
                names = [c for c, _ in LEVEL_BASE] + [c for c, _, _ in level_cols] + ["failures_json", "level_json"]
                levels = [(rid, i, lv.concurrency, lv.rate, lv.requests, lv.succeeded, lv.failed, lv.duration_s,
                           *(_get(how, lv=lv) for _, _, how in level_cols), _json(lv.failures), _json(lv.to_dict()))
                          for i, lv in enumerate(run.levels)]
                con.executemany(f"INSERT INTO perf_levels(run_id, {', '.join(names)}) VALUES ({', '.join('?' * (len(names) + 1))})",
                                levels)
                counts["levels"] = len(levels)
                names = [c for c, _ in REQUEST_BASE] + [c for c, _, _ in request_cols] + ["extra_json"]
                stored = {how[1] for _, _, how in request_cols}
                sql = f"INSERT INTO perf_requests(run_id, {', '.join(names)}) VALUES ({', '.join('?' * (len(names) + 1))})"
                n = 0
                for r in run.requests():
                    data = r.to_dict()
                    extra = {k: v for k, v in data.items()
                             if k not in stored and k not in {c for c, _ in REQUEST_BASE} and k != "run_id" and v is not None}
                    con.execute(sql, (rid, r.level, r.idx, r.scheduled_s, r.sent_s, r.prompt_tokens, r.completion_tokens,
                                      r.usage_source, _bool(r.success), r.error,
                                      *(_get(how, row=r) for _, _, how in request_cols), _json(extra) if extra else None))
                    n += 1
                counts["requests"] = n
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
