"""Shared test fixtures: the repo paths, a scriptable eval server, the CLI runner."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
LMGAUGE = [sys.executable, "-m", "lmgauge.cli"]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_configure(config):
    config.addinivalue_line("markers", "ray: starts a local Ray cluster (lmgauge.scale)")


class EvalServer:
    def __init__(self, script: dict, tmp: Path):
        self.path = tmp / f"server-{time.monotonic_ns()}.json"
        self.path.write_text(json.dumps(script))
        self.proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "eval_server.py"), str(self.path)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.proc.kill()
            raise RuntimeError(f"eval server did not start: {line!r} {self.proc.stderr.read()}")
        self.port = int(line.split()[1])
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def log(self) -> list[dict]:
        p = Path(str(self.path) + ".log.jsonl")
        return [json.loads(x) for x in p.read_text().splitlines()] if p.exists() else []

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()


@pytest.fixture
def stream_server():
    """Start tests/perf_server.py (its own process) with the given flags; returns its chat URL."""
    procs = []

    def start(*args: str) -> str:
        p = subprocess.Popen([sys.executable, str(REPO / "tests" / "perf_server.py"), *args],
                             stdout=subprocess.PIPE, text=True)
        procs.append(p)
        port = int(p.stdout.readline().split()[1])
        return f"http://127.0.0.1:{port}/v1/chat/completions"

    yield start
    for p in procs:
        p.kill()
        p.wait()
        p.stdout.close()


@pytest.fixture
def eval_server(tmp_path):
    servers = []

    def start(script: dict) -> EvalServer:
        s = EvalServer(script, tmp_path)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()


def run_cli(*args: str, env: dict | None = None, timeout: float = 300, check: bool = False,
            cwd: str | Path | None = None) -> subprocess.CompletedProcess:
    """Run ``lmgauge`` in a subprocess exactly as a user would."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run([*LMGAUGE, *args], capture_output=True, text=True, timeout=timeout, env=full_env, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"lmgauge {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode != 0, proc.stdout + proc.stderr
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, f"expected one error line, got:\n{err}"
    assert lines[0].startswith("lmgauge: error:"), lines[0]
    for n in needles:
        assert n.lower() in lines[0].lower(), f"{n!r} not in {lines[0]!r}"


def child_pids(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def live_processes(keep) -> list[int]:
    """Live (not zombie) processes other than this one for which ``keep(Path("/proc/PID"))``
    holds; one that ends while it is read is left out."""
    found = []
    for d in Path("/proc").glob("[0-9]*"):
        try:
            if int(d.name) == os.getpid() or (d / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            if keep(d):
                found.append(int(d.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


def in_sandbox_uid(d: Path) -> bool:
    """The process /proc/PID runs under one of the local sandbox's slot user ids (shared by the
    tests of every worker: look for a test's own processes by a marker too)."""
    from lmgauge_sandboxes.host import UID_BASE

    uid = int((d / "status").read_text().split("\nUid:")[1].split()[0])
    return UID_BASE <= uid < UID_BASE + 1024


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
