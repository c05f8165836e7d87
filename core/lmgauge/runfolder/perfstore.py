"""``perf.sqlite`` of a perf run folder: a row per level (``runs``) and per request
(``requests``: :class:`RequestRow`).

The ``requests`` table has the fixed columns of every request (identity, times, tokens,
outcome) and one column per perf metric that stores its per-request value (``column`` of its
declaration: ``ttft_s``, ``tpot_s``, ``itl_json`` …; a plugin metric adds its own). A folder of
an older run lacks the newer columns: readers get ``None`` there.

Times (``*_s``) count from the level's start (``PerfLevel.clock_origin``).
"""
from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence
from urllib.parse import quote

import orjson

#: the fixed columns of ``requests`` (schema 1 order first), with their SQL types
BASE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("run_id", "INTEGER"), ("idx", "INTEGER"), ("scheduled_s", "REAL"), ("sent_s", "REAL"),
    ("prompt_tokens", "INTEGER"), ("completion_tokens", "INTEGER"), ("usage_source", "TEXT"), ("success", "INTEGER"),
    ("error", "TEXT"), ("chunks", "INTEGER"), ("session", "INTEGER"), ("turn", "INTEGER"), ("cached_tokens", "INTEGER"),
    ("inputs", "INTEGER"), ("embedding_dim", "INTEGER"), ("images", "INTEGER"), ("image_sizes", "TEXT"),
    ("endpoint", "TEXT"), ("failure_kind", "TEXT"), ("failure_group", "TEXT"), ("trial", "INTEGER"))
#: what perf.sqlite files without a ``metric_columns`` table (schema 1) store per request
V1_METRIC_COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("ttft_s", "ttft_s", False), ("ttfc_s", "ttfc_s", False), ("latency_s", "latency_s", False),
    ("queue_delay_s", "queue_delay_s", False), ("tpot_s", "tpot_s", False), ("itl_s", "itl_json", True))
RUNS_SCHEMA = """CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY, concurrency INTEGER, rate REAL, requests INTEGER, succeeded INTEGER,
    failed INTEGER, duration_s REAL, request_throughput REAL, output_token_throughput REAL,
    total_token_throughput REAL, summary_json TEXT)"""


@dataclass
class MetricColumn:
    """A perf.sqlite column holding a metric's per-request value: ``name`` and whether it is a
    list (stored as JSON text: ITL)."""

    key: str
    name: str
    is_list: bool = False

    @property
    def sql(self) -> str:
        return f"{self.name} {'TEXT' if self.is_list else 'REAL'}"


@dataclass
class RequestRow:
    """One request of a level, as perf.sqlite stores it. ``values`` holds the per-request
    value of each stored metric by its key (``ttft_s``, ``itl_s`` as a list …).
    ``failure_kind`` is the backend's typed kind of a failure (``http``, ``timeout``,
    ``connection``, ``protocol``, ``empty``, ``client`` …; lmgauge.types.FAILURE_KINDS) and
    ``failure_group`` the name its failures are counted under (e.g. ``HTTP 500``)."""

    run_id: int
    idx: int
    scheduled_s: float | None = None
    sent_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    usage_source: str | None = None
    success: bool = False
    error: str | None = None
    chunks: int | None = None
    session: int | None = None
    turn: int | None = None
    cached_tokens: int | None = None
    inputs: int | None = None
    embedding_dim: int | None = None
    images: int | None = None
    image_sizes: str | None = None
    endpoint: str | None = None
    failure_kind: str | None = None
    failure_group: str | None = None
    trial: int | None = None
    values: dict[str, Any] = field(default_factory=dict)
    level: int | None = None  # index of its level in summary.json runs (set by readers)
    chunk_tokens: list[int] = field(default_factory=list, repr=False)  # tokens per chunk (not stored)

    def value(self, key: str) -> Any:
        return self.values.get(key)

    def to_dict(self) -> dict[str, Any]:
        """A flat mapping: the fixed columns, every metric value by its key, ``level``."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("values", "level", "chunk_tokens")}
        out.update(self.values)
        out["level"] = self.level
        return out


def connect_ro(path: Path) -> sqlite3.Connection:
    """A read-only connection (never writes into the folder, not even a WAL)."""
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    try:
        con = sqlite3.connect(uri, uri=True, timeout=10)
        con.execute("SELECT 1 FROM sqlite_master LIMIT 1")
        return con
    except sqlite3.Error:
        return sqlite3.connect(uri.replace("mode=ro", "immutable=1"), uri=True, timeout=10)


class PerfStore:
    """Writes perf.sqlite: ``columns`` are the metric columns of the run's perf metrics."""

    def __init__(self, path: str | os.PathLike, columns: Sequence[MetricColumn]):
        self.path = Path(path)
        self.columns = list(columns)
        self.db = sqlite3.connect(self.path)
        self.db.execute(RUNS_SCHEMA)
        cols = [f"{n} {t}" for n, t in BASE_COLUMNS] + [c.sql for c in self.columns]
        self.db.execute(f"CREATE TABLE IF NOT EXISTS requests ({', '.join(cols)})")
        have = {r[1] for r in self.db.execute("PRAGMA table_info(requests)")}
        for spec in [f"{n} {t}" for n, t in BASE_COLUMNS if n not in have] + [c.sql for c in self.columns
                                                                                if c.name not in have]:
            self.db.execute(f"ALTER TABLE requests ADD COLUMN {spec}")
        # which columns hold which metric's values: readers need no plugin to read the file
        self.db.execute("CREATE TABLE IF NOT EXISTS metric_columns (name TEXT PRIMARY KEY, key TEXT, is_list INTEGER)")
        self.db.executemany("INSERT OR REPLACE INTO metric_columns VALUES (?, ?, ?)",
                            [(c.name, c.key, int(c.is_list)) for c in self.columns])
        self.db.commit()
        self._names = [n for n, _ in BASE_COLUMNS] + [c.name for c in self.columns]

    def add_level(self, run_id: int, level: Any, rows: Iterable[RequestRow]) -> None:
        """Replace level ``run_id`` (a :class:`PerfLevel`) and its requests."""
        lv = level.to_dict()
        base = [n for n, _ in BASE_COLUMNS]
        with self.db:
            self.db.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
            self.db.execute("DELETE FROM requests WHERE run_id = ?", (run_id,))
            self.db.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                            (run_id, level.concurrency, level.rate, level.requests, level.succeeded, level.failed,
                             level.duration_s, lv.get("request_throughput"), lv.get("output_token_throughput"),
                             lv.get("total_token_throughput"), orjson.dumps(lv).decode()))
            self.db.executemany(
                f"INSERT INTO requests ({', '.join(self._names)}) VALUES ({', '.join('?' * len(self._names))})",
                [tuple(int(getattr(r, n)) if n == "success" else getattr(r, n) for n in base)
                 + tuple(_cell(r.values.get(c.key), c.is_list) for c in self.columns) for r in rows])

    def close(self) -> None:
        self.db.close()


def _cell(value: Any, is_list: bool) -> Any:
    if is_list:
        return orjson.dumps(value if value is not None else []).decode()
    return value


def query(db: Path, table: str, sql: str, params: tuple = ()) -> list[tuple[Any, ...]]:
    """Rows of one read-only query on perf.sqlite; none when the file or table is missing.
    A damaged file is one DataError line."""
    from ..errors import DataError

    if not db.exists():
        return []
    try:
        con = connect_ro(db)
    except sqlite3.Error as exc:
        raise DataError(f"cannot open {db}: {exc}") from None
    try:
        if not con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table,)).fetchone():
            return []
        return con.execute(sql, params).fetchall()
    except sqlite3.Error as exc:
        raise DataError(f"cannot read {db}: {exc}", "the file may be damaged; re-run the perf test") from None
    finally:
        con.close()


def stored_columns(db: Path) -> list[MetricColumn]:
    """The metric columns a perf.sqlite holds (its ``metric_columns`` table; schema 1's fixed
    set for older files)."""
    rows = query(db, "metric_columns", "SELECT name, key, is_list FROM metric_columns")
    if rows:
        return [MetricColumn(key, name, bool(is_list)) for name, key, is_list in rows]
    return [MetricColumn(key, name, is_list) for key, name, is_list in V1_METRIC_COLUMNS]


def read_rows(db: Path, columns: Sequence[MetricColumn] | None, level_of: dict[Any, int]) -> Iterator[RequestRow]:
    """Every request row, level by level, in request order, with the values of ``columns``
    (default: every metric column the file holds). Columns missing from an older file read as
    ``None``; secrets in error texts are redacted."""
    if columns is None:
        columns = stored_columns(db)
    from ..errors import DataError
    from ..redaction import redact_text

    if not db.exists():
        return
    try:
        con = connect_ro(db)
    except sqlite3.Error as exc:
        raise DataError(f"cannot open {db}: {exc}") from None
    try:
        if not con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='requests'").fetchone():
            return
        have = [r[1] for r in con.execute("PRAGMA table_info(requests)")]
        base = [n for n, _ in BASE_COLUMNS if n in have]
        metric = [c for c in columns if c.name in have]
        names = base + [c.name for c in metric]
        for raw in con.execute(f"SELECT {', '.join(names)} FROM requests ORDER BY run_id, idx"):
            data = dict(zip(base, raw[: len(base)]))
            values: dict[str, Any] = {}
            for c, cell in zip(metric, raw[len(base):]):
                if c.is_list:
                    try:
                        cell = orjson.loads(cell) if cell else []
                    except orjson.JSONDecodeError:
                        cell = []
                values[c.key] = cell
            data["success"] = bool(data.get("success"))
            if isinstance(data.get("error"), str):
                data["error"] = redact_text(data["error"])
            row = RequestRow(**data, values=values)
            row.level = level_of.get(row.run_id)
            yield row
    except sqlite3.Error as exc:
        raise DataError(f"cannot read {db}: {exc}", "the file may be damaged; re-run the perf test") from None
    finally:
        con.close()
