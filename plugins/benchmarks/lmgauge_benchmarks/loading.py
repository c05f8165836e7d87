"""Reading benchmark data: local files (``--dataset-path BENCH=PATH``) and the Hugging Face hub.

Local files may be JSONL, JSON (a list of rows, or an object holding one under ``data``/
``rows``/``test``/``train``/``questions``), CSV or Parquet (needs pyarrow or pandas). Hub
datasets are downloaded with huggingface_hub into its usual cache and read from there on later
runs (also offline). Every failure is a single :class:`lmgauge.errors.DataError` line that
says what went wrong and names ``--dataset-path`` as the way out.
"""
from __future__ import annotations

import csv
import json
import logging
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from lmgauge.plugin import DataError, hub_endpoint, hub_offline, hub_reachable

FORMATS = (".jsonl", ".json", ".csv", ".parquet")
_JSON_KEYS = ("data", "rows", "test", "train", "questions")


def _where(path: Any, bench: str) -> str:
    return f"--dataset-path {bench}={path}" if bench else str(path)


def read_rows(path: str | os.PathLike, bench: str = "") -> list[dict[str, Any]]:
    """Rows of a local data file as dicts; a :class:`DataError` line for anything unreadable."""
    p = Path(path).expanduser()
    where = _where(path, bench)
    if p.is_dir():
        raise DataError(f"{where}: is a directory", f"give one data file ({', '.join(FORMATS)})")
    if not p.is_file():
        raise DataError(f"{where}: no such file", "check the path")
    suffix = p.suffix.lower()
    if suffix not in FORMATS:
        raise DataError(f"{where}: unknown file format {suffix or '(no extension)'}",
                        f"use one of {', '.join(FORMATS)}")
    try:
        if suffix == ".jsonl":
            rows = _read_jsonl(p, where)
        elif suffix == ".json":
            rows = _read_json(p, where)
        elif suffix == ".csv":
            rows = _read_csv(p)
        else:
            rows = _read_parquet(p, where)
    except DataError:
        raise
    except (OSError, UnicodeDecodeError, csv.Error, ValueError) as exc:
        raise DataError(f"{where}: cannot read it ({exc.__class__.__name__}: {exc})",
                        "check that the file is complete and in the format its extension says") from None
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise DataError(f"{where}: row {n} is a {type(row).__name__}, not an object with named fields",
                            "each row needs fields such as problem/answer")
    if not rows:
        raise DataError(f"{where}: the file holds no rows", "check the file")
    return rows


def _read_jsonl(p: Path, where: str) -> list[Any]:
    rows = []
    with p.open(encoding="utf-8-sig") as fh:  # a BOM (Windows editors) is read as CSV files are
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DataError(f"{where}: line {n} is not valid JSON ({exc.msg})",
                                    "fix or remove that line") from None
    return rows


def _read_json(p: Path, where: str) -> list[Any]:
    try:
        data = json.loads(p.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: not valid JSON ({exc.msg} at line {exc.lineno})",
                        "fix the file, or use JSONL with one row per line") from None
    if isinstance(data, dict):
        for key in _JSON_KEYS:
            if isinstance(data.get(key), list):
                data = data[key]
                break
    if not isinstance(data, list):
        raise DataError(f"{where}: JSON must hold a list of rows (or an object with one under "
                        f"{'/'.join(_JSON_KEYS)})", "or use JSONL, one row per line")
    return data


def _read_csv(p: Path) -> list[dict[str, Any]]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with p.open(encoding="utf-8-sig", newline="") as fh:
        return [dict(r) for r in csv.DictReader(fh)]


def _read_parquet(p: Path, where: str) -> list[dict[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        pq = None
    if pq is not None:
        return pq.read_table(p).to_pylist()
    try:
        import pandas as pd
    except ImportError:
        raise DataError(f"{where}: reading Parquet needs pyarrow or pandas, and neither is installed",
                        "pip install pyarrow, or convert the file to JSONL/CSV") from None
    try:
        return pd.read_parquet(p).to_dict("records")
    except ImportError as exc:  # pandas without a parquet engine
        raise DataError(f"{where}: pandas cannot read Parquet here ({exc})",
                        "pip install pyarrow, or convert the file to JSONL/CSV") from None


# ------------------------------------------------------------------------------------ hub


@dataclass(frozen=True)
class HubSource:
    """Where a benchmark's default data lives on the Hugging Face hub.

    ``files`` are glob patterns of the data files to fetch (``allow_patterns``); rows of all
    matching files are concatenated in name order. ``token_env`` names the environment variable
    holding an access token (gated datasets); ``path_hint`` is what the error message suggests
    for ``--dataset-path BENCH=...``.
    """

    repo_id: str
    files: tuple[str, ...]
    token_env: str | None = None
    gated: bool = False
    path_hint: str = "PATH"


@contextmanager
def _quiet_hub() -> Iterator[None]:
    """huggingface_hub logs every retry; the user gets one line from us instead."""
    log = logging.getLogger("huggingface_hub")
    old = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(old)


def _files_in(folder: str, patterns: tuple[str, ...]) -> list[Path]:
    root = Path(folder)
    found = {f for pat in patterns for f in root.glob(pat) if f.is_file() and f.suffix.lower() in FORMATS}
    return sorted(found)


def rows_from_hub(bench: str, source: HubSource) -> list[dict[str, Any]]:
    """Rows of a hub dataset: from the local huggingface_hub cache if present, else downloaded
    (token from ``source.token_env``). Offline, unreachable, gated or missing libraries each
    give one :class:`DataError` line naming ``--dataset-path``."""
    repo = source.repo_id
    hint = f"or pass a local copy: --dataset-path {bench}={source.path_hint} (jsonl/json/csv/parquet)"
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise DataError(f"{bench}: the default source is the Hugging Face dataset {repo}, which needs "
                        "huggingface_hub (pip install 'lmgauge-benchmarks[hub]')", hint) from None
    token = os.environ.get(source.token_env) if source.token_env else None
    patterns = list(source.files)
    folder = None
    with _quiet_hub():
        try:  # the cache first: datasets do not change, and it works offline
            folder = snapshot_download(repo, repo_type="dataset", allow_patterns=patterns,
                                       local_files_only=True, token=token)
        except Exception:  # noqa: BLE001 - not cached (any flavour of "not found locally")
            folder = None
        if folder is None or not _files_in(folder, source.files):
            if hub_offline():
                raise DataError(f"{bench}: the Hugging Face hub is switched off (HF_HUB_OFFLINE) and "
                                f"{repo} is not in the local cache", hint)
            host, port = hub_endpoint()
            if not hub_reachable(host, port):
                what = f"the gated dataset {repo} (needs {source.token_env})" if source.gated else f"the dataset {repo}"
                raise DataError(f"{bench}: cannot reach the Hugging Face hub ({host}:{port}) to download {what}", hint)
            try:
                folder = snapshot_download(repo, repo_type="dataset", allow_patterns=patterns, token=token)
            except Exception as exc:  # noqa: BLE001 - network, auth, gating: all end in one line
                raise _hub_error(bench, source, exc, token is not None, hint) from None
    files = _files_in(folder, source.files)
    if not files:
        raise DataError(f"{bench}: the hub dataset {repo} has no file matching {', '.join(source.files)}", hint)
    rows: list[dict[str, Any]] = []
    for f in files:
        rows.extend(read_rows(f))
    return rows


def _hub_error(bench: str, source: HubSource, exc: Exception, have_token: bool, hint: str) -> DataError:
    kind = exc.__class__.__name__
    text = str(exc).lower()
    repo = source.repo_id
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if source.gated and (kind in ("GatedRepoError", "RepositoryNotFoundError") or status in (401, 403)
                         or "gated" in text):
        if not have_token:
            why = f"is gated: accept its terms at https://huggingface.co/datasets/{repo} and set {source.token_env}"
        else:
            why = (f"refused the token in {source.token_env} (HTTP {status or '401/403'}): accept the terms at "
                   f"https://huggingface.co/datasets/{repo} with that account")
        return DataError(f"{bench}: the hub dataset {repo} {why}", hint)
    if kind == "RepositoryNotFoundError" or status == 404:
        return DataError(f"{bench}: the hub dataset {repo} was not found", hint)
    first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
    return DataError(f"{bench}: downloading the hub dataset {repo} failed ({kind}{': ' + first if first else ''})", hint)


def row_where(bench: str, path: str | None, index: int, default_source: str = "the default source") -> str:
    """How an error names row ``index`` (0-based) of a benchmark's data."""
    return f"{_where(path, bench) if path else bench + ' ' + default_source}, row {index + 1}"


def field(row: dict[str, Any], *names: str, bench: str = "", where: str = "") -> Any:
    """The first present, non-empty field of ``names`` (matched case-insensitively, surrounding
    spaces ignored), or a one-line :class:`DataError` listing the columns found. ``where``
    names the row (see :func:`row_where`); ``bench`` prefixes the message when ``where`` is
    not given."""
    lower = {str(k).strip().lower(): v for k, v in row.items()}
    for n in names:
        v = lower.get(n.lower())
        if v is not None and not (isinstance(v, str) and not v.strip()) and v == v:  # v == v: not NaN
            return v
    raise DataError(f"{where or (bench + ': a row')} has none of the fields {', '.join(names)}",
                    f"columns found: {', '.join(map(str, row)) or 'none'}")


def optional(row: dict[str, Any], *names: str) -> Any:
    """Like :func:`field` but ``None`` when absent."""
    try:
        return field(row, *names)
    except DataError:
        return None
