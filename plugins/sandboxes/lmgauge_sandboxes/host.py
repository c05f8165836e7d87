"""What the local sandbox takes from this machine: execution slots, user ids, a pids cgroup.

- **Slots.** At most ``parallel`` executions run at once on the machine, across processes and
  runs: slot ``i`` is an exclusive ``flock`` on ``slot-i.lock`` in a folder private to the user
  (``$TMPDIR/lmgauge-sandbox-UID``). A lock dies with its process, so a killed run never leaves
  a slot taken.
- **User ids.** Run as root, slot ``i`` runs its program as the unprivileged user id
  ``UID_BASE + i``: ``RLIMIT_NPROC`` binds it (it does not bind root), it cannot signal or
  ptrace lmgauge, read root's files or ``/proc/PID/environ``, and ``kill(-1)`` under that id
  ends every process the slot left behind. As another user, programs run under your own id
  (bubblewrap's user namespace then keeps the process count per sandbox).
- **pids cgroup.** Where a pids controller is writable (cgroup v1 ``/sys/fs/cgroup/pids``, or
  a cgroup v2 tree with ``pids`` delegated), each slot has its own cgroup: ``pids.max`` bounds
  processes and threads of the whole execution (root included), its process list feeds the
  memory watchdog and the final sweep that kills whatever is left.
"""
from __future__ import annotations

import errno
import fcntl
import os
import random
import signal
import stat
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

UID_BASE = 1_600_000_000  # far above ids a system hands out; slot i runs as UID_BASE + i

_spawn_lock = threading.Lock()


def cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def slot_folder() -> Path:
    """The user's private folder of slot lock files (created 0700; refused if another user
    owns it or it is a symlink)."""
    folder = Path(tempfile.gettempdir()) / f"lmgauge-sandbox-{os.geteuid()}"
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        pass
    st = os.lstat(folder)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise OSError(f"{folder} is not a private folder of this user")
    return folder


class Slot:
    """One held execution slot (``index``); :meth:`release` frees it."""

    def __init__(self, index: int, fd: int):
        self.index = index
        self._fd = fd

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing drops the flock
            self._fd = -1


def acquire_slot(parallel: int, stop_at: float | None = None) -> Slot:
    """Wait for a free slot among ``parallel`` (polling every few ms; slots are tried in random
    order so waiting processes spread out)."""
    folder = slot_folder()
    delay = 0.002
    while True:
        order = list(range(parallel))
        random.shuffle(order)
        for i in order:
            fd = os.open(folder / f"slot-{i}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                continue
            return Slot(i, fd)
        if stop_at is not None and time.monotonic() > stop_at:
            raise TimeoutError("no sandbox slot became free")
        time.sleep(delay)
        delay = min(0.02, delay * 1.5)


# ------------------------------------------------------------------------------ user ids


def kill_uid(uid: int) -> None:
    """SIGKILL every process of ``uid`` (root only): a short-lived helper takes that id and
    calls ``kill(-1)``, which reaches exactly the processes of that id."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child only makes system calls
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            os.kill(-1, signal.SIGKILL)
        except BaseException:  # noqa: BLE001
            pass
        os._exit(0)
    os.waitpid(pid, 0)


# ------------------------------------------------------------------------------ cgroups


@dataclass
class PidsCgroup:
    """A writable pids controller: ``base`` is where slot cgroups are made, ``home`` the cgroup
    this process belongs to (it moves itself back there after spawning)."""

    base: Path
    home: Path
    version: int

    def slot(self, index: int) -> Path:
        path = self.base / f"slot-{index}"
        if not path.is_dir():
            try:
                path.mkdir()
            except FileExistsError:
                pass
        return path

    @staticmethod
    def procs(cgroup: Path) -> list[int]:
        try:
            return [int(x) for x in (cgroup / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return []

    def spawn(self, cgroup: Path, pids_max: int, start):
        """``start()`` (which forks the execution) with this process inside ``cgroup`` so the
        child is born there (no window in which it could fork outside), then back home."""
        with _spawn_lock:
            if self.procs(cgroup):  # an earlier holder of the slot died before its sweep
                self.sweep(cgroup)
            # dead tasks of the last execution are uncharged only when the kernel frees them
            # (a pid namespace takes a moment or two): they count, so they are added
            (cgroup / "pids.max").write_text(str(pids_max + self.current(cgroup)))
            (cgroup / "cgroup.procs").write_text(str(os.getpid()))
            try:
                return start()
            finally:
                (self.home / "cgroup.procs").write_text(str(os.getpid()))

    @staticmethod
    def current(cgroup: Path) -> int:
        try:
            return int((cgroup / "pids.current").read_text())
        except (OSError, ValueError):
            return 0

    def sweep(self, cgroup: Path, deadline_s: float = 3.0) -> list[int]:
        """SIGKILL everything left in ``cgroup`` until it is empty (or ``deadline_s`` passes);
        returns what was still there after the deadline."""
        end = time.monotonic() + deadline_s
        left = self.procs(cgroup)
        while left and time.monotonic() < end:
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.002)
            left = self.procs(cgroup)
        return left


def _mounts() -> list[tuple[str, str, list[str]]]:
    out = []
    try:
        for line in Path("/proc/self/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 4:
                out.append((parts[1], parts[2], parts[3].split(",")))
    except OSError:
        pass
    return out


def _own_cgroups() -> dict[str, str]:
    """controller (or "" for v2) → this process's cgroup path."""
    out = {}
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for c in (controllers.split(",") if controllers else [""]):
                out[c] = path
    except (OSError, ValueError):
        pass
    return out


def _writable(path: Path) -> bool:
    probe = path / f"lmgauge-probe-{os.getpid()}-{random.randrange(1 << 30)}"
    try:
        probe.mkdir()
    except OSError:
        return False
    try:
        probe.rmdir()
    except OSError:
        pass
    return True


def find_pids_cgroup() -> PidsCgroup | None:
    """The writable pids controller of this machine, or None (see the module docstring)."""
    own = _own_cgroups()
    for mountpoint, fstype, opts in _mounts():
        if fstype == "cgroup" and "pids" in opts and "pids" in own:
            home = Path(mountpoint) / own["pids"].lstrip("/")
            if (home / "cgroup.procs").exists() and _writable(home):
                base = home / "lmgauge-sandbox"
                try:
                    base.mkdir(exist_ok=True)
                except OSError:
                    continue
                return PidsCgroup(base, home, 1)
    for mountpoint, fstype, _opts in _mounts():
        if fstype == "cgroup2" and "" in own:
            home = Path(mountpoint) / own[""].lstrip("/")
            try:
                delegated = "pids" in (home / "cgroup.subtree_control").read_text().split()
            except OSError:
                continue
            # v2 allows no processes in a cgroup whose children have controllers, so the
            # slots live beside this process only when pids is already delegated below it
            if delegated and _writable(home):
                base = home / "lmgauge-sandbox"
                try:
                    base.mkdir(exist_ok=True)
                    if "pids" not in (base / "cgroup.subtree_control").read_text().split():
                        (base / "cgroup.subtree_control").write_text("+pids")
                except OSError:
                    continue
                return PidsCgroup(base, home, 2)
    return None


def rss_bytes(pids: list[int]) -> int:
    """Resident memory of ``pids`` together (from /proc/PID/statm)."""
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm", "rb") as fh:
                total += int(fh.read().split()[1]) * page
        except (OSError, ValueError, IndexError):
            pass
    return total
