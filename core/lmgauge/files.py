"""Writing files so that a reader never sees half of one: write a temporary file beside the
target, fsync it, then rename it over the target (atomic on POSIX)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable


def atomic_write(path: str | os.PathLike, data: bytes | str | Iterable[bytes], mode: int = 0o644) -> Path:
    """Write ``data`` (text, bytes, or an iterable of byte chunks, streamed: never all of it in
    memory) to ``path`` so that a reader sees the old file or the whole new one."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    chunks: Iterable[bytes]
    if isinstance(data, str):
        chunks = (data.encode("utf-8"),)
    elif isinstance(data, (bytes, bytearray, memoryview)):
        chunks = (bytes(data),)
    else:
        chunks = data
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=str(target.parent))
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return target
