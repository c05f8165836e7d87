"""``local``: model-written code runs on this machine, under bubblewrap.

Every execution gets (docs/code.md has the whole picture and what was measured):

- **bubblewrap** (``bwrap``): new PID, network, IPC, UTS and cgroup namespaces,
  ``--die-with-parent`` (bwrap is started with that death signal already set, by ``setpriv
  --pdeathsig``, so the moment before bwrap sets it itself cannot orphan it), ``--new-session``;
  a root of its own with the system (``/usr`` and the ``/bin``, ``/lib`` links) and the
  interpreter's prefixes (``sys.base_prefix``, ``sys.prefix``) bound read-only, a few files of ``/etc`` (the loader's cache, time zone; a passwd naming the sandbox user),
  ``/proc`` of its own namespace, a minimal ``/dev``, and a private size-limited tmpfs as ``/tmp``
  and working folder. Nothing else of the host: no home, no run folder, no ``/sys``. When the
  program (PID 2 under bubblewrap's init: the guard, coreutils ``timeout``, which SIGKILLs the
  program a grace after its time limit even when this process died before bubblewrap armed
  ``--die-with-parent``) ends, the namespace's init ends, and the kernel kills every process left
  in it: detached children included.
- **an unprivileged user id** when lmgauge runs as root (``setpriv`` inside the sandbox, after
  the mounts): ``UID_BASE + slot`` (host.py), so ``RLIMIT_NPROC`` binds and nothing of root's
  is readable or signalable.
- **rlimits** (``prlimit``): CPU seconds, address space, file size, open files, processes, no
  core dumps. stdout and stderr are memory files under the file-size limit (a program printing a
  GB is stopped by ``SIGXFSZ`` at that size), read up to their caps after the program ends.
- **a pids cgroup** per slot where one is writable (host.py): processes and threads of the
  whole execution bounded for root too, the total resident memory of all its processes watched
  (killed past ``memory_mb``), and a final sweep.
- **an allow-listed environment** (``PATH``, ``HOME=/tmp``, ``LANG``, a few thread-count
  variables): nothing of lmgauge's environment (API keys) reaches the program.
- **a wall-clock timeout** per execution (SIGKILL of the sandbox) and at most
  ``--local-sandbox-parallel`` executions at once on the machine (default: the CPU cores).

Without bubblewrap (not installed, or ``--local-sandbox-bwrap none``) the same limits apply,
the program runs as the unprivileged id (as root), in a fresh host folder, and is swept by user
id or cgroup at the end; but it sees the host's files, network and processes, so
``isolation()`` says so (one warning line; ``--sandbox-require-isolation`` refuses it).
"""
from __future__ import annotations

import math
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import click

from lmgauge.plugin import ConfigError, Execution, Limits, Sandbox, hookimpl

from . import host

#: the environment a program gets: nothing else of lmgauge's
BASE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "PYTHONIOENCODING": "utf-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}
#: files of /etc bound read-only when present (the dynamic loader's cache, the time zone)
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "alternatives")
SHM_MB = 64
_BOOT_PATH = "/.lmgauge/boot.py"
GUARD_GRACE_S = 2.0  # the guard (coreutils timeout) kills this long after the time limit


@dataclass
class _Host:
    """What one process found out about this machine (made lazily, never pickled)."""

    bwrap: str | None
    bwrap_problem: str | None
    python: str
    prefixes: list[str]
    site_dirs: list[str]
    setpriv: str | None
    prlimit: str | None
    timeout: str | None  # coreutils timeout: the sandbox's own wall-clock bound (see _execute)
    root: bool
    drop_uid: bool  # programs run as UID_BASE + slot (root only; see host.py)
    cgroup: host.PidsCgroup | None
    parallel: int
    boot: bytes = b""
    system_binds: list[str] = field(default_factory=list)


def _is_under(path: str, roots: Sequence[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _python_facts(python: str) -> tuple[list[str], list[str], str]:
    """(prefixes, site-packages folders, real executable) of an interpreter."""
    # the same path only: a venv's python is a link to its base interpreter, with prefixes of its own
    if os.path.abspath(python) == os.path.abspath(sys.executable):
        import site

        prefixes = [sys.base_prefix, sys.prefix, sys.exec_prefix, sys.base_exec_prefix]
        dirs = [d for d in site.getsitepackages() if os.path.isdir(d)]
        return list(dict.fromkeys([*prefixes, *(os.path.realpath(p) for p in prefixes)])), dirs, python
    code = ("import sys, site, json; print(json.dumps([[sys.base_prefix, sys.prefix, sys.exec_prefix, "
            "sys.base_exec_prefix], site.getsitepackages()]))")
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=30, env=BASE_ENV)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"sandbox local: cannot run the Python interpreter {python} ({exc})",
                          "give an interpreter with --local-sandbox-python") from None
    if out.returncode != 0:
        raise ConfigError(f"sandbox local: the Python interpreter {python} failed: {out.stderr.strip()[-200:]}",
                          "give a working interpreter with --local-sandbox-python")
    import json

    prefixes, dirs = json.loads(out.stdout)
    return list(dict.fromkeys([*prefixes, *(os.path.realpath(p) for p in prefixes)])), \
        [d for d in dirs if os.path.isdir(d)], python


def _which(name: str) -> str | None:
    for d in ("/usr/bin", "/bin", "/usr/sbin", "/sbin"):
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    return shutil.which(name)


class LocalSandbox(Sandbox):
    name = "local"
    default = True
    description = ("runs model code on this machine: bubblewrap namespaces, read-only system, no network/home/"
                   "secrets, rlimits, a pids cgroup, timeouts")
    options = [
        click.Option(["--local-sandbox-bwrap", "local_sandbox_bwrap"], default="auto", show_default=True,
                     metavar="auto|none|PATH",
                     help="local sandbox: the bubblewrap binary (auto: bwrap if installed; none: limits only, "
                          "weaker isolation)"),
        click.Option(["--local-sandbox-parallel", "local_sandbox_parallel"], type=click.IntRange(min=1), default=None,
                     help="local sandbox: executions at once on this machine, across runs (default: CPU cores)"),
        click.Option(["--local-sandbox-python", "local_sandbox_python"], default=None, metavar="PATH",
                     help="local sandbox: the Python that runs model code (default: lmgauge's own; its "
                          "site-packages are importable, read-only)"),
    ]

    def __init__(self, options: dict[str, Any] | None = None):
        super().__init__(options)
        self._host: _Host | None = None

    # -- pickling: per-process facts are found again in each worker -------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_host"] = None
        return state

    # -- what the machine offers -------------------------------------------------------------
    def _facts(self) -> _Host:
        if self._host is None:
            self._host = self._discover()
        return self._host

    def _discover(self) -> _Host:
        opt = self.options
        python = opt.get("local_sandbox_python") or sys.executable
        if not os.path.isabs(python):
            python = shutil.which(python) or python
        if not os.access(python, os.X_OK):
            raise ConfigError(f"sandbox local: no Python interpreter at {python}",
                              "give one with --local-sandbox-python PATH")
        prefixes, site_dirs, python = _python_facts(python)
        root = os.geteuid() == 0
        want = (opt.get("local_sandbox_bwrap") or "auto").strip()
        bwrap = problem = None
        if want == "none":
            problem = "bubblewrap is switched off (--local-sandbox-bwrap none)"
        elif want == "auto":
            bwrap = _which("bwrap")
            if bwrap is None:
                problem = "bubblewrap is not installed (apt-get install bubblewrap)"
        else:
            if not os.access(want, os.X_OK):
                raise ConfigError(f"sandbox local: --local-sandbox-bwrap {want} is not an executable",
                                  "give the path of bwrap, auto, or none")
            bwrap = want
        setpriv = _which("setpriv")
        if root and setpriv is None:
            raise ConfigError("sandbox local: running as root needs setpriv (util-linux) to drop to an unprivileged "
                              "user for model code", "apt-get install util-linux, or run lmgauge as another user")
        prlimit = _which("prlimit")
        timeout = _which("timeout")
        cgroup = host.find_pids_cgroup() if root or os.access("/sys/fs/cgroup", os.W_OK) else None
        parallel = int(opt.get("local_sandbox_parallel") or host.cpu_count())
        boot = (Path(__file__).with_name("_boot.py").read_text()
                .replace("SITE_DIRS = []  # filled in by the sandbox", f"SITE_DIRS = {site_dirs!r}"))
        drop_uid = root
        facts = _Host(bwrap, problem, python, prefixes, site_dirs, setpriv, prlimit, timeout, root, drop_uid, cgroup,
                      parallel)
        facts.boot = boot.encode()
        facts.system_binds = self._system_binds()
        if bwrap is not None:
            probe = self._probe(facts)
            if probe is not None:
                if want != "auto":
                    raise ConfigError(f"sandbox local: bubblewrap ({bwrap}) cannot make a sandbox here: {probe}",
                                      "fix the machine (user namespaces), or --local-sandbox-bwrap none")
                facts.bwrap, facts.bwrap_problem = None, f"bubblewrap cannot make a sandbox here ({probe})"
        if facts.bwrap is None and root and not _reachable_by_all(python):
            # model code never runs as root: without bubblewrap's mounts, the unprivileged id must
            # reach the interpreter on the host itself
            raise ConfigError(f"sandbox local: {facts.bwrap_problem}, and without it model code would have to run as "
                              f"root, since {python} is not reachable by other users",
                              "apt-get install bubblewrap, or give --local-sandbox-python a Python every user can run "
                              "(e.g. /usr/bin/python3)")
        return facts

    @staticmethod
    def _system_binds() -> list[str]:
        args: list[str] = ["--ro-bind", "/usr", "/usr"]
        for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
            path = f"/{top}"
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                args += ["--ro-bind", path, path]
        for name in ETC_FILES:
            path = f"/etc/{name}"
            if os.path.exists(path):
                args += ["--ro-bind", path, path]
        return args

    def _probe(self, facts: _Host) -> str | None:
        """Why bubblewrap cannot run a trivial program here, or None."""
        slot = host.acquire_slot(facts.parallel)
        try:
            ex = self._execute(facts, {}, ["/bin/true"], None, Limits(timeout_s=20), slot_index=slot.index, probe=True)
        finally:
            slot.release()
        if ex.status == "ok":
            return None
        return (ex.reason or ex.stderr.strip()[-200:] or ex.status).splitlines()[0][:200]

    # -- the contract ----------------------------------------------------------------------------
    def check(self) -> None:
        self._facts()

    def isolation(self) -> str | None:
        facts = self._facts()
        if facts.bwrap is None:
            return f"{facts.bwrap_problem}: programs see this machine's files, network and processes"
        return None

    def describe(self) -> str:
        facts = self._facts()
        return "local (bubblewrap)" if facts.bwrap else "local (no bubblewrap: limits only)"

    def run(self, files: dict[str, str | bytes], argv: Sequence[str], stdin: str | bytes | None = None,
            limits: Limits | None = None) -> Execution:
        try:
            facts = self._facts()
        except ConfigError as exc:
            return Execution("error", reason=f"sandbox unavailable: {exc.message}")
        limits = limits or Limits()
        try:
            slot = host.acquire_slot(facts.parallel)
        except OSError as exc:
            return Execution("error", reason=f"no sandbox slot: {exc}")
        try:
            return self._execute(facts, files, argv, stdin, limits, slot.index)
        except Exception as exc:  # noqa: BLE001 - the machinery failed: no verdict
            return Execution("error", reason=f"sandbox failure: {exc.__class__.__name__}: {exc}"[:300])
        finally:
            slot.release()

    # -- one execution ---------------------------------------------------------------------------
    def _uid(self, facts: _Host, slot_index: int) -> int | None:
        return host.UID_BASE + slot_index if facts.drop_uid else None

    @staticmethod
    def _born_dying(facts: _Host) -> list[str]:
        """bubblewrap's monitor arms ``--die-with-parent`` only after it has cloned the sandbox; a
        grader killed before would orphan it, so bwrap is started with the death signal set."""
        return [facts.setpriv, "--pdeathsig=KILL"] if facts.setpriv is not None else []

    @staticmethod
    def _guard(facts: _Host, limits: Limits) -> list[str]:
        """The sandbox's PID 2 under bubblewrap: coreutils ``timeout``, which SIGKILLs the program
        GUARD_GRACE_S after its time limit and ends, taking the namespace with it. This process
        kills it at the limit itself; the guard bounds a sandbox whose grader died while
        bubblewrap was still setting it up (its init arms ``--die-with-parent`` only once the
        program is forked, so until then it can outlive its parent). ``timeout`` passes on the
        program's exit code, and a killing signal by dying of it."""
        if facts.timeout is None:
            return []
        return [facts.timeout, "--signal=KILL", f"{math.ceil(float(limits.timeout_s) + GUARD_GRACE_S)}s"]

    def _limit_args(self, facts: _Host, limits: Limits, cpu: int) -> list[str]:
        mem = int(limits.memory_mb) << 20
        fsize = max(int(limits.file_size_mb) << 20, int(limits.stdout_bytes) + 1, int(limits.stderr_bytes) + 1)
        nproc = int(limits.processes)
        if facts.prlimit is None:
            return []
        return [facts.prlimit, f"--cpu={cpu}:{cpu + 1}", f"--as={mem}:{mem}", f"--fsize={fsize}:{fsize}",
                f"--nofile={limits.open_files}:{limits.open_files}", f"--nproc={nproc}:{nproc}", "--core=0:0", "--"]

    def _execute(self, facts: _Host, files: dict[str, str | bytes], argv: Sequence[str], stdin: Any,
                 limits: Limits, slot_index: int, probe: bool = False) -> Execution:
        if not argv:
            return Execution("error", reason="nothing to run (empty argv)")
        cpu = max(1, math.ceil(limits.cpu_s if limits.cpu_s is not None else limits.timeout_s + 1))
        uid = self._uid(facts, slot_index)
        fds: list[int] = []
        workdir: str | None = None
        try:
            out_fd = os.memfd_create("lmgauge-stdout", 0)
            fds.append(out_fd)
            err_fd = os.memfd_create("lmgauge-stderr", 0)
            fds.append(err_fd)
            in_fd = os.memfd_create("lmgauge-stdin", 0)
            fds.append(in_fd)
            if stdin is not None:
                os.write(in_fd, stdin.encode() if isinstance(stdin, str) else bytes(stdin))
                os.lseek(in_fd, 0, os.SEEK_SET)
            ready_r, ready_w = os.pipe()
            fds += [ready_r, ready_w]
            status_r, status_w = os.pipe()
            fds += [status_r, status_w]
            is_python = argv[0] == "python"
            program = list(argv)
            pass_fds = [ready_w]
            if is_python:
                program = [facts.python, "-S", "-B"]
            env = dict(BASE_ENV)
            drop = []
            if uid is not None:
                drop = [facts.setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
                        "--bounding-set=-all", "--no-new-privs"]
                if facts.bwrap is None:
                    drop.append("--pdeathsig=KILL")
            limit_args = self._limit_args(facts, limits, cpu)
            if facts.bwrap is not None:
                cmd = [*self._born_dying(facts), facts.bwrap,
                       *self._bwrap_args(facts, limits, files, uid, fds, pass_fds, status_w)]
                if is_python:
                    boot_fd = self._memfile(facts.boot.replace(b"READY_FD = -1  # filled in by the sandbox",
                                                               f"READY_FD = {ready_w}".encode()))
                    fds.append(boot_fd)
                    pass_fds.append(boot_fd)
                    cmd += ["--perms", "0444", "--file", str(boot_fd), _BOOT_PATH]
                cmd += ["--chdir", "/tmp", "--", *self._guard(facts, limits), *drop, *limit_args, *program]
                if is_python:
                    cmd += [_BOOT_PATH, *argv[1:]]
                cwd = "/"
            else:
                workdir = tempfile.mkdtemp(prefix="lmgauge-sandbox-")
                self._write_files(workdir, files, uid)
                boot_file = os.path.join(workdir, ".lmgauge-boot.py")
                if is_python:
                    Path(boot_file).write_bytes(facts.boot.replace(b"READY_FD = -1  # filled in by the sandbox",
                                                                   f"READY_FD = {ready_w}".encode()))
                env.update(HOME=workdir, TMPDIR=workdir)
                cmd = [*drop, *limit_args, *program]
                if is_python:
                    cmd += [boot_file, *argv[1:]]
                cwd = workdir
                if uid is not None:
                    host.kill_uid(uid)  # anything an earlier holder of this slot left behind
            def close_write_ends() -> None:  # once the child holds them (never close an fd twice)
                for fd in (ready_w, status_w):
                    fds.remove(fd)
                    os.close(fd)

            return self._supervise(facts, cmd, cwd, env, in_fd, out_fd, err_fd, pass_fds, ready_r, close_write_ends,
                                   status_r, limits, cpu, uid, slot_index, is_python, probe)
        finally:
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
            if workdir is not None:
                shutil.rmtree(workdir, ignore_errors=True)

    @staticmethod
    def _memfile(data: bytes) -> int:
        fd = os.memfd_create("lmgauge-file", 0)
        os.write(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
        return fd

    @staticmethod
    def _write_files(workdir: str, files: dict[str, str | bytes], uid: int | None) -> None:
        if uid is not None:
            os.chown(workdir, uid, uid)
        os.chmod(workdir, 0o700)
        for rel, content in files.items():
            target = _safe_relative(rel)
            path = os.path.join(workdir, target)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as fh:
                fh.write(content.encode() if isinstance(content, str) else bytes(content))
            if uid is not None:
                os.chown(path, uid, uid)
        if uid is not None:
            for dirpath, dirnames, _ in os.walk(workdir):
                for d in dirnames:
                    os.chown(os.path.join(dirpath, d), uid, uid)

    def _bwrap_args(self, facts: _Host, limits: Limits, files: dict[str, str | bytes], uid: int | None,
                    fds: list[int], pass_fds: list[int], status_w: int) -> list[str]:
        args = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
                "--hostname", "sandbox", "--die-with-parent", "--new-session", "--json-status-fd", str(status_w)]
        if not facts.root:
            args.append("--unshare-user")
        pass_fds.append(status_w)
        args += facts.system_binds
        args += ["--proc", "/proc", "--dev", "/dev",
                 "--perms", "1777", "--size", str(SHM_MB << 20), "--tmpfs", "/dev/shm",
                 "--perms", "1777", "--size", str(int(limits.disk_mb) << 20), "--tmpfs", "/tmp",
                 "--perms", "0755", "--dir", "/.lmgauge"]
        # the interpreter's prefixes after the private /tmp: a venv or a pyenv Python under /tmp
        # (or under a home) is bound over it, read-only, instead of being hidden by it
        made = {"/usr", "/tmp", "/proc", "/dev", "/etc", "/.lmgauge"}
        for prefix in facts.prefixes:
            if not os.path.isdir(prefix) or _is_under(prefix, ["/usr"]):
                continue
            parts = Path(prefix).parts
            for i in range(2, len(parts)):
                parent = str(Path(*parts[:i]))
                if parent not in made:
                    made.add(parent)
                    args += ["--perms", "0755", "--dir", parent]
            if prefix not in made:
                made.add(prefix)
                args += ["--ro-bind", prefix, prefix]
        if uid is not None:
            passwd = self._memfile(f"root:x:0:0::/root:/bin/sh\nsandbox:x:{uid}:{uid}::/tmp:/bin/sh\n".encode())
            group = self._memfile(f"root:x:0:\nsandbox:x:{uid}:\n".encode())
            fds += [passwd, group]
            pass_fds += [passwd, group]
            args += ["--perms", "0444", "--file", str(passwd), "/etc/passwd",
                     "--perms", "0444", "--file", str(group), "/etc/group"]
        dirs: set[str] = set()
        for rel, content in files.items():
            target = "/tmp/" + _safe_relative(rel)
            parent = os.path.dirname(target)
            stack = []
            while parent not in ("/tmp", "/") and parent not in dirs:
                stack.append(parent)
                parent = os.path.dirname(parent)
            for d in reversed(stack):
                dirs.add(d)
                args += ["--perms", "1777", "--dir", d]
            fd = self._memfile(content.encode() if isinstance(content, str) else bytes(content))
            fds.append(fd)
            pass_fds.append(fd)
            args += ["--perms", "0644", "--file", str(fd), target]
        return args

    def _supervise(self, facts: _Host, cmd: list[str], cwd: str, env: dict[str, str], in_fd: int, out_fd: int,
                   err_fd: int, pass_fds: list[int], ready_r: int, close_write_ends: Any, status_r: int,
                   limits: Limits, cpu: int, uid: int | None, slot_index: int, is_python: bool,
                   probe: bool) -> Execution:
        cgroup = facts.cgroup
        cg_path = cgroup.slot(slot_index) if cgroup is not None and not probe else None
        # the execution's own processes: bubblewrap's two (its monitor and the namespace's init)
        # and the guard, plus the program's; a little room for this process while it spawns
        ours = (2 + (facts.timeout is not None)) if facts.bwrap is not None else 0
        pids_max = int(limits.processes) + ours + threads_of_self()

        def start() -> subprocess.Popen:
            return subprocess.Popen(cmd, stdin=in_fd, stdout=out_fd, stderr=err_fd, cwd=cwd, env=env,
                                    pass_fds=tuple(pass_fds), close_fds=True, start_new_session=True)

        t0 = time.monotonic()
        proc = cgroup.spawn(cg_path, pids_max, start) if cg_path is not None else start()
        close_write_ends()
        deadline = t0 + float(limits.timeout_s)
        killed: str | None = None
        mem_limit = int(limits.memory_mb) << 20
        try:
            pidfd = os.pidfd_open(proc.pid)
        except OSError:
            pidfd = None
        status = rusage = None
        try:
            while True:
                got = os.wait4(proc.pid, os.WNOHANG)
                if got[0] == proc.pid:
                    status, rusage = got[1], got[2]
                    break
                now = time.monotonic()
                if now >= deadline:
                    killed = "timeout"
                    self._kill(proc, cgroup, cg_path, uid, facts)
                    continue
                watch = cg_path is not None and len(host.PidsCgroup.procs(cg_path)) > ours + 1
                if watch and host.rss_bytes(host.PidsCgroup.procs(cg_path)) > mem_limit:
                    killed = "memory"
                    self._kill(proc, cgroup, cg_path, uid, facts)
                    continue
                wait = min(deadline - now, 0.05 if watch else 0.5)
                if pidfd is not None:
                    select.select([pidfd], [], [], max(0.0, wait))
                else:
                    time.sleep(min(max(0.0, wait), 0.01))
        finally:
            if pidfd is not None:
                os.close(pidfd)
            proc.returncode = os.waitstatus_to_exitcode(status) if status is not None else -9
        wall = time.monotonic() - t0
        left = self._sweep(facts, cgroup, cg_path, uid, proc)
        ready = _read_all(ready_r)
        bw_status = _read_all(status_r).decode(errors="replace")
        stdout, out_size = _read_capped(out_fd, limits.stdout_bytes)
        stderr, err_size = _read_capped(err_fd, limits.stderr_bytes)
        cpu_used = (rusage.ru_utime + rusage.ru_stime) if rusage is not None else None
        rss = (rusage.ru_maxrss / 1024.0) if rusage is not None else None
        ex = Execution("ok", stdout=stdout, stderr=stderr, stdout_truncated=out_size > limits.stdout_bytes,
                       stderr_truncated=err_size > limits.stderr_bytes, wall_s=round(wall, 4),
                       cpu_s=round(cpu_used, 4) if cpu_used is not None else None,
                       max_rss_mb=round(rss, 1) if rss is not None else None)
        code = proc.returncode
        if facts.bwrap is not None and code is not None and code > 128 and '"exit-code"' in bw_status:
            sig = code - 128  # bubblewrap reports a program killed by signal N as exit code 128 + N
        elif code is not None and code < 0:
            sig = -code
        else:
            sig = None
        ex.exit_code = code if sig is None else None
        ex.signal = sig
        started = '"child-pid"' in bw_status if facts.bwrap is not None else True
        if left:
            ex.status, ex.reason = "error", f"{len(left)} processes of the execution could not be killed"
        elif killed == "timeout":
            ex.status, ex.reason = "timeout", f"killed after the {limits.timeout_s:g} s time limit"
        elif killed == "memory":
            ex.status, ex.reason = "memory", f"killed: its processes used more than {limits.memory_mb} MiB together"
        elif facts.bwrap is not None and (not started or '"exit-code"' not in bw_status) and code == 1:
            ex.status = "error"
            ex.reason = "bubblewrap could not start the program: " + (_last_line(stderr) or "no message")
        elif is_python and not ready and (code != 0 or sig is not None):
            ex.status = "error"
            ex.reason = "the Python interpreter did not start: " + (_last_line(stderr) or f"exit code {code}")
        elif out_size > limits.stdout_bytes or (sig == signal.SIGXFSZ and out_size >= limits.stdout_bytes):
            ex.status, ex.reason = "output", f"wrote more than {limits.stdout_bytes} bytes to stdout"
        elif sig in (signal.SIGXCPU,) or (sig == signal.SIGKILL and cpu_used is not None and cpu_used >= cpu - 0.05):
            ex.status, ex.reason = "timeout", f"used its {cpu} s of CPU time"
        elif sig == signal.SIGXFSZ:
            ex.status, ex.reason = "exit", f"wrote a file beyond the {limits.file_size_mb} MiB file size limit"
        elif sig is not None:
            ex.status = "signal"
            ex.reason = f"killed by {_signame(sig)}" + (" (out of memory?)" if sig == signal.SIGKILL else "")
        elif _memory_error(stderr):
            ex.status, ex.reason = "memory", f"ran out of memory (limit {limits.memory_mb} MiB)"
        elif code != 0:
            ex.status, ex.reason = "exit", f"exit code {code}" + (f": {_last_line(stderr)}" if stderr.strip() else "")
        return ex

    def _kill(self, proc: subprocess.Popen, cgroup: host.PidsCgroup | None, cg_path: Path | None, uid: int | None,
              facts: _Host) -> None:
        for kill in (os.killpg, os.kill):  # not proc.kill(): Popen would reap the child we wait4 for
            try:
                kill(proc.pid, signal.SIGKILL)
            except OSError:
                pass
        if cg_path is not None:
            for pid in host.PidsCgroup.procs(cg_path):
                if pid != os.getpid():
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
        if uid is not None and facts.bwrap is None:
            host.kill_uid(uid)

    def _sweep(self, facts: _Host, cgroup: host.PidsCgroup | None, cg_path: Path | None, uid: int | None,
               proc: subprocess.Popen) -> list[int]:
        """Every process of the execution gone: bubblewrap's namespace died with its init; the
        fallback kills by user id and process group; the cgroup, where there is one, must end
        empty."""
        if facts.bwrap is None:
            if uid is not None:
                host.kill_uid(uid)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
        if cg_path is not None:
            return [p for p in cgroup.sweep(cg_path) if p != os.getpid()]
        return []


def _reachable_by_all(path: str) -> bool:
    """Every folder on the way to ``path`` (and its real file) lets any user through."""
    for p in (path, os.path.realpath(path)):
        parts = Path(os.path.abspath(p)).parts
        for i in range(1, len(parts)):
            try:
                if not os.stat(Path(*parts[:i])).st_mode & 0o001:
                    return False
            except OSError:
                return False
        try:
            if not os.stat(p).st_mode & 0o005:
                return False
        except OSError:
            return False
    return True


def threads_of_self() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def _safe_relative(rel: str) -> str:
    norm = os.path.normpath(rel)
    if os.path.isabs(rel) or norm.startswith("..") or norm in (".", ""):
        raise ValueError(f"file name {rel!r} must be a relative path inside the working folder")
    return norm


def _read_all(fd: int) -> bytes:
    chunks = []
    os.set_blocking(fd, False)
    while True:
        try:
            b = os.read(fd, 65536)
        except BlockingIOError:
            break
        except OSError:
            break
        if not b:
            break
        chunks.append(b)
    return b"".join(chunks)


def _read_capped(fd: int, cap: int) -> tuple[str, int]:
    size = os.fstat(fd).st_size
    data = os.pread(fd, min(size, int(cap)), 0)
    return data.decode("utf-8", errors="replace"), size


def _last_line(text: str) -> str:
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return lines[-1].strip()[:200] if lines else ""


def _memory_error(stderr: str) -> bool:
    last = _last_line(stderr)
    return last.startswith("MemoryError") or "Cannot allocate memory" in last or "std::bad_alloc" in last


def _signame(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


@hookimpl
def register_sandboxes(register):
    register(LocalSandbox)
