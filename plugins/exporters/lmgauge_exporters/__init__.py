"""lmgauge-exporters: the built-in exporters (json, sqlite, swanlab) and the ``lmgauge export``
command, installed and discovered through entry points exactly like a third-party plugin."""
from __future__ import annotations

import datetime as dt

__all__ = ["now_iso"]


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
