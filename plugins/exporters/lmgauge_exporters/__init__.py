"""lmgauge-exporters: the built-in exporters (json, sqlite, swanlab) and the ``lmgauge export``
command, installed and discovered through entry points exactly like a third-party plugin."""
from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path

__all__ = ["now_iso", "atomic_write_bytes"]


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def atomic_write_bytes(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` through a temporary file in the same folder: a failure
    (disk full, no permission) leaves neither a half-written file nor a stray temp file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=str(target.parent))
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
