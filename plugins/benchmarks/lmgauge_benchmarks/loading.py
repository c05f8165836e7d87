"""Reading benchmark data: local files (``--dataset-path``) and the Hugging Face hub.

Local files may be JSONL, JSON (a list, or an object with a list under ``data``/``rows``/
``train``/``test``), CSV or Parquet (needs pyarrow). Hub downloads are cached by
huggingface_hub; when the hub cannot be reached (offline, gated without a token) the error is
one line that names ``--dataset-path``.
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from lmgauge.errors import DataError

FORMATS = (".jsonl", ".json", ".csv", ".parquet")


def read_rows(path: str | os.PathLike, bench: str = "") -> list[dict[str, Any]]:
    """Rows of a local data file as dicts."""
    p = Path(path).expanduser()
    where = f"--dataset-path {bench}={path}" if bench else str(path)
    if not p.is_file():
        raise DataError(f"{where}: no such file", "check the path")
    suffix = p.suffix.lower()
    try:
        if suffix == ".jsonl":
            rows = []
            with p.open(encoding="utf-8") as fh:
                for n, line in enumerate(fh, 1):
                    if line.strip():
                        try:
                            rows.append(json.loads(line))
                        except json.JSONDecodeError as exc:
                            raise DataError(f"{where}: line {n} is not valid JSON ({exc.msg})",
                                            "fix or remove that line") from None
            return rows
        if suffix == ".json":
            data = json.loads(p.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                for key in ("data", "rows", "test", "train", "questions"):
                    if isinstance(data.get(key), list):
                        data = data[key]
                        break
            if not isinstance(data, list):
                raise DataError(f"{where}: JSON must hold a list of rows", "or use JSONL, one row per line")
            return data
        if suffix == ".csv":
            with p.open(encoding="utf-8-sig", newline="") as fh:
                return list(csv.DictReader(fh))
        if suffix == ".parquet":
            try:
                import pyarrow.parquet as pq
            except ImportError:
                raise DataError(f"{where}: reading Parquet needs pyarrow", "pip install pyarrow, or convert to JSONL/CSV") from None
            return pq.read_table(p).to_pylist()
    except DataError:
        raise
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error) as exc:
        raise DataError(f"{where}: cannot read ({exc.__class__.__name__}: {exc})", "check the file") from None
    raise DataError(f"{where}: unknown file format {suffix or '(none)'}", f"use one of {', '.join(FORMATS)}")


def rows_from_hub(bench: str, repo_id: str, filename: str | None = None, token_env: str | None = None,
                  patterns: tuple[str, ...] = ("*.jsonl", "*.parquet", "*.json", "*.csv")) -> list[dict[str, Any]]:
    """Download (cached) and read a hub dataset file; offline → one line naming --dataset-path."""
    hint = f"pass a local copy with --dataset-path {bench}=FILE (jsonl/json/csv/parquet)"
    if os.environ.get("HF_HUB_OFFLINE") == "1" and not _cached(repo_id):
        raise DataError(f"{bench} is not bundled and the Hugging Face hub is offline (HF_HUB_OFFLINE=1)", hint)
    try:
        from huggingface_hub import hf_hub_download, snapshot_download
    except ImportError:
        raise DataError(f"{bench} loads from the Hugging Face hub, which needs huggingface_hub", hint) from None
    token = os.environ.get(token_env) if token_env else None
    try:
        if filename:
            files = [hf_hub_download(repo_id, filename, repo_type="dataset", token=token)]
        else:
            folder = snapshot_download(repo_id, repo_type="dataset", allow_patterns=list(patterns), token=token)
            files = sorted(str(f) for f in Path(folder).rglob("*") if f.suffix in FORMATS)
    except Exception as exc:  # noqa: BLE001 - network, auth, gating: all end in one line
        kind = exc.__class__.__name__
        gated = "gated" in str(exc).lower() or "401" in str(exc) or "403" in str(exc)
        why = "is gated: accept its terms on the hub and set " + token_env if gated and token_env else f"could not be downloaded ({kind})"
        raise DataError(f"{bench}: hub dataset {repo_id} {why}", hint) from None
    rows: list[dict[str, Any]] = []
    for f in files:
        rows.extend(read_rows(f, bench))
    if not rows:
        raise DataError(f"{bench}: hub dataset {repo_id} has no readable rows", hint)
    return rows


def _cached(repo_id: str) -> bool:
    try:
        from huggingface_hub import scan_cache_dir

        return any(r.repo_id == repo_id for r in scan_cache_dir().repos)
    except Exception:  # noqa: BLE001
        return False


def field(row: dict[str, Any], *names: str, bench: str = "", where: str = "") -> Any:
    """The first present field of ``names`` (case-insensitive), or a one-line DataError."""
    lower = {str(k).strip().lower(): v for k, v in row.items()}
    for n in names:
        if n.lower() in lower and lower[n.lower()] not in (None, ""):
            return lower[n.lower()]
    raise DataError(f"{bench}: {where or 'a row'} has none of the fields {', '.join(names)}",
                    f"columns found: {', '.join(map(str, row))}")
