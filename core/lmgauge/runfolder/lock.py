"""One writer per run folder: ``DIR/.lmgauge.lock``.

A run (eval, resume, perf, regrade, sweep) holds the lock from the moment it owns the folder
until it ends. The lock file holds the owner's pid, host, process start time and command; the
owner also holds an exclusive ``flock`` on it, which the kernel drops when the process dies,
however it dies. A second writer is refused in one line naming the first (pid, host); a lock
left by a dead process (no flock held, or its pid gone) is taken over.

Readers (``lmgauge serve``, report) never take the lock: :func:`holder` reads the file and
checks that the pid still runs with the same start time (a reused pid is not the owner).
"""
from __future__ import annotations

import fcntl
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

LOCK = ".lmgauge.lock"


@dataclass
class Holder:
    pid: int
    host: str
    started: float
    command: str = ""
    pid_start: str | None = None

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}"


def _pid_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(holder: Holder) -> bool:
    if holder.host != socket.gethostname():
        return True  # cannot tell from here: assume it runs
    try:
        state = Path(f"/proc/{holder.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    if state == "Z":
        return False
    return holder.pid_start is None or _pid_start(holder.pid) == holder.pid_start


def read_holder(folder: str | os.PathLike) -> Holder | None:
    try:
        data = orjson.loads((Path(folder) / LOCK).read_bytes())
        return Holder(int(data["pid"]), str(data["host"]), float(data.get("started") or 0.0),
                      str(data.get("command") or ""), data.get("pid_start"))
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def holder(folder: str | os.PathLike) -> Holder | None:
    """The live process writing this folder, or None (no lock, or its owner is gone)."""
    h = read_holder(folder)
    return h if h is not None and _alive(h) else None


class FolderLock:
    """Held while a run writes its folder (a context manager, or :meth:`acquire` /
    :meth:`release`)."""

    def __init__(self, folder: str | os.PathLike, what: str = "run"):
        """``what`` names the writer in the lock file (e.g. ``eval``, ``perf``): never the
        command line, which may hold secrets."""
        self.folder = Path(folder)
        self.path = self.folder / LOCK
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> "FolderLock":
        from ..errors import ConfigError

        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            h = read_holder(self.folder)
            who = h.describe() if h is not None else "another process"
            since = f" since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(h.started))}" if h and h.started else ""
            raise ConfigError(f"{self.folder} is being written by {who}{since}",
                              "wait for that run to end, or pass another --output") from None
        # the flock is ours: any holder recorded in the file is gone (the kernel dropped its lock)
        me: dict[str, Any] = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                              "command": self.what, "pid_start": _pid_start(os.getpid())}
        os.ftruncate(fd, 0)
        os.pwrite(fd, orjson.dumps(me), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
