"""Schema versions and the manifest ``DIR/run.json``.

- Version 1: folders written before the run-folder library (lmgauge ≤ 0.1, main at e99d346):
  no run.json; the kind is read from summary.json (perf) or report.json (eval); journal lines
  have no ``score_status``.
- Version 2: ``run.json`` names the kind and the schema version from the moment the folder is
  made (so a run still going, with no report yet, is known for what it is); report.json and
  summary.json carry ``schema_version``; scores carry their status.

Every earlier version stays readable: readers convert on the way in, never in the folder.
"""
from __future__ import annotations

import datetime as dt
import os
import socket
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import orjson

SCHEMA_VERSION = 2
MANIFEST = "run.json"
#: the kinds of run folder
KINDS = ("eval", "perf", "regrade", "sweep")


def split_known(cls: type, data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``data`` split into the dataclass's fields (but ``extra``) and the rest."""
    names = {f.name for f in fields(cls)} - {"extra"}
    known = {k: v for k, v in data.items() if k in names}
    return known, {k: v for k, v in data.items() if k not in names}


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class Manifest:
    """``run.json``: what the folder is. ``source`` is the run a regrade re-graded (relative to
    the regrade folder when it lies above it); ``sweep`` the sweep a variant belongs to
    (``".."``); ``values`` a sweep variant's settings; ``planned`` an eval's questions per
    benchmark and ``repeats`` its repeats (a running eval's total, before any report)."""

    kind: str
    schema_version: int = SCHEMA_VERSION
    created: str = field(default_factory=now_iso)
    lmgauge_version: str = ""
    host: str = field(default_factory=socket.gethostname)
    source: str | None = None
    sweep: str | None = None
    values: dict[str, Any] | None = None
    planned: dict[str, int] | None = None
    repeats: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        out = {k: v for k, v in out.items() if v is not None}
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Manifest":
        known, extra = split_known(cls, data)
        return cls(**known, extra=extra)

    def write(self, folder: str | os.PathLike) -> None:
        from ..files import atomic_write

        atomic_write(Path(folder) / MANIFEST, orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2))


def new_manifest(kind: str, **values: Any) -> Manifest:
    from ..version import __version__

    return Manifest(kind=kind, lmgauge_version=__version__, **values)


def read_manifest(folder: str | os.PathLike) -> Manifest | None:
    """The folder's run.json, or None (a version-1 folder, or not a run folder)."""
    path = Path(folder) / MANIFEST
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    if not isinstance(data, dict) or data.get("kind") not in KINDS:
        return None
    return Manifest.from_dict(data)
