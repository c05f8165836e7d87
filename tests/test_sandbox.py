"""The local sandbox (plugins/sandboxes) on its own: real bubblewrap, real processes, real sockets.

Each hostile program fails alone: the sandbox returns its status and nothing of it is left on
the machine. Tests that need bubblewrap are skipped where it is not installed (.ci/run installs
it where apt exists); the limits are also checked without it (--local-sandbox-bwrap none).
"""
from __future__ import annotations

import os
import pickle
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

from conftest import in_sandbox_uid, live_processes
from lmgauge.plugin import ConfigError, ExecutionRequest, Limits
from lmgauge_sandboxes import host
from lmgauge_sandboxes.local import LocalSandbox

HAVE_BWRAP = shutil.which("bwrap") is not None
needs_bwrap = pytest.mark.skipif(not HAVE_BWRAP, reason="bubblewrap is not installed (apt-get install bubblewrap)")
MODES = [pytest.param("auto", marks=needs_bwrap, id="bwrap"), pytest.param("none", id="no-bwrap")]


#: without bubblewrap, model code runs under an unprivileged id (as root): it needs a Python that
#: every user can reach on the host (the venv here lives under /root)
FALLBACK_PYTHON = next((p for p in ("/usr/bin/python3", "/usr/local/bin/python3") if os.access(p, os.X_OK)), None)


def sandbox(mode: str = "auto", **options) -> LocalSandbox:
    if mode == "none" and os.geteuid() == 0 and "local_sandbox_python" not in options:
        if FALLBACK_PYTHON is None:
            pytest.skip("no Python every user can run, for the sandbox without bubblewrap")
        options["local_sandbox_python"] = FALLBACK_PYTHON
    sb = LocalSandbox({"local_sandbox_bwrap": mode, **options})
    sb.check()
    return sb


def py(sb: LocalSandbox, code: str, *args: str, stdin: str | None = None, **limits):
    return sb.run({"main.py": textwrap.dedent(code)}, ["python", "main.py", *args], stdin, Limits(**limits))


def processes_with(marker: str) -> list[int]:
    """Live processes whose command line holds ``marker``."""
    return live_processes(lambda d: marker.encode() in (d / "cmdline").read_bytes())


def pythons_with(marker: str) -> list[int]:
    """The Python processes among ``processes_with(marker)``."""
    return live_processes(lambda d: marker.encode() in (d / "cmdline").read_bytes()
                          and (d / "comm").read_text().startswith("python"))


def sandbox_uid_processes(marker: str) -> list[int]:
    """Live processes running under one of the sandbox's user ids with ``marker`` in their
    command line (the uids are the machine's slots: tests in other workers use them meanwhile)."""
    return live_processes(lambda d: marker.encode() in (d / "cmdline").read_bytes() and in_sandbox_uid(d))


def wait_gone(marker: str, seconds: float = 5.0) -> list[int]:
    end = time.monotonic() + seconds
    left = processes_with(marker)
    while left and time.monotonic() < end:
        time.sleep(0.05)
        left = processes_with(marker)
    return left


# ---------------------------------------------------------------------------- plain running


@pytest.mark.parametrize("mode", MODES)
def test_runs_a_program_with_stdin_files_and_exit_codes(mode):
    sb = sandbox(mode)
    ex = sb.run({"main.py": "import helper\nprint(helper.twice(input()))\n", "helper.py": "def twice(s): return s * 2\n"},
                ["python", "main.py"], "ab\n", Limits(timeout_s=20))
    assert (ex.status, ex.exit_code, ex.stdout) == ("ok", 0, "abab\n"), ex
    ex = py(sb, "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)", timeout_s=20)
    assert (ex.status, ex.exit_code, ex.stdout, ex.stderr) == ("exit", 3, "out\n", "err\n")
    ex = py(sb, "exit(0)", timeout_s=20)  # the site builtins programs rely on are there
    assert ex.status == "ok", ex
    ex = py(sb, "raise ValueError('boom')", timeout_s=20)
    assert ex.status == "exit" and "ValueError: boom" in ex.reason


def test_sandbox_pickles_without_its_per_process_state():
    sb = sandbox("auto" if HAVE_BWRAP else "none")
    copy = pickle.loads(pickle.dumps(sb))
    assert copy._host is None and copy.options == sb.options
    assert py(copy, "print(6 * 7)", timeout_s=20).stdout == "42\n"


# ---------------------------------------------------------------------------- hostile code


@pytest.mark.parametrize("mode", MODES)
def test_endless_loop_and_sleep_are_timeouts(mode):
    sb = sandbox(mode)
    for code in ("while True: pass", "import time; time.sleep(3600)"):
        t = time.monotonic()
        ex = py(sb, code, timeout_s=1.0)
        assert ex.status == "timeout", ex
        assert time.monotonic() - t < 15  # ends: a hang would never get here
    ex = py(sb, "while True: pass", timeout_s=30, cpu_s=1)  # the CPU limit binds even with a long wall limit
    assert ex.status == "timeout" and "CPU" in ex.reason, ex


@pytest.mark.parametrize("mode", MODES)
def test_multi_gigabyte_allocation_is_a_memory_verdict(mode):
    sb = sandbox(mode)
    ex = py(sb, "x = bytearray(6 << 30)", timeout_s=20, memory_mb=1024)
    assert ex.status == "memory", ex
    ex = py(sb, "x = []\nwhile True: x.append(bytearray(64 << 20))", timeout_s=20, memory_mb=512)
    assert ex.status == "memory", ex


@needs_bwrap
def test_many_processes_allocating_together_are_killed_at_the_total(tmp_path):
    sb = sandbox()
    if sb._facts().cgroup is None:
        pytest.skip("no writable pids cgroup here: the total is bounded per process only")
    code = """
    import os, time
    for i in range(7):
        if os.fork() == 0:
            break
    block = bytearray(200 << 20)
    for k in range(0, len(block), 4096):
        block[k] = 1
    time.sleep(30)
    """
    ex = py(sb, code, timeout_s=20, memory_mb=1024)
    assert ex.status == "memory" and "together" in ex.reason, ex


@pytest.mark.parametrize("mode", MODES)
def test_fork_bomb_is_bounded_and_leaves_nothing(mode):
    sb = sandbox(mode)
    marker = f"fork-bomb-{uuid.uuid4().hex}"
    code = """
    import os, sys, time
    made = 0
    try:
        for i in range(500):
            if os.fork() == 0:
                time.sleep(60)
                os._exit(0)
            made += 1
    except OSError as exc:
        print("stopped after", made, exc.errno)
    """
    ex = py(sb, code, marker, timeout_s=20, processes=40)
    assert ex.status == "ok", ex
    made = int(ex.stdout.split()[2])
    assert made <= 40, ex.stdout  # hundreds asked, the limit held (root included)
    assert wait_gone(marker) == []


@pytest.mark.parametrize("mode", MODES)
def test_detached_child_is_gone_when_the_program_ends(mode):
    sb = sandbox(mode)
    marker = f"detached-{uuid.uuid4().hex}"
    code = """
    import os, sys, time
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            time.sleep(120)
        os._exit(0)
    print("parent leaves")
    """
    ex = py(sb, code, marker, timeout_s=20)
    assert ex.status == "ok" and ex.stdout == "parent leaves\n", ex
    assert wait_gone(marker) == []
    ex = py(sb, "import os, time\nif os.fork() == 0:\n    os.setsid()\ntime.sleep(60)\n", marker, timeout_s=1)
    assert ex.status == "timeout"
    assert wait_gone(marker) == []
    if os.geteuid() == 0 and sb._facts().drop_uid:
        assert sandbox_uid_processes(marker) == []


@needs_bwrap
def test_writes_to_tmp_and_home_never_reach_the_host(tmp_path):
    sb = sandbox()
    name = f"lmgauge-canary-{uuid.uuid4().hex}"
    targets = [f"/tmp/{name}", str(Path.home() / name), str(tmp_path / name), f"/var/tmp/{name}"]
    code = f"""
    import os
    for path in {targets!r} + [os.path.expanduser("~/{name}")]:
        try:
            with open(path, "w") as fh:
                fh.write("written by model code")
            print("wrote", path)
        except OSError as exc:
            print("refused", path, exc.__class__.__name__)
    """
    ex = py(sb, code, timeout_s=20)
    assert ex.status == "ok", ex
    for t in targets:
        assert not os.path.exists(t), t
    assert not (Path.home() / name).exists()


@needs_bwrap
def test_no_network_a_listener_on_localhost_sees_nothing():
    sb = sandbox()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    port = server.getsockname()[1]
    accepted = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            accepted.append(conn.recv(100))
            conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    code = f"""
    import socket
    for host in ("127.0.0.1", "localhost"):
        try:
            s = socket.create_connection((host, {port}), timeout=2)
            s.sendall(b"secret from the sandbox")
            print("connected", host)
        except OSError as exc:
            print("no connection", host, exc.__class__.__name__)
    """
    try:
        ex = py(sb, code, timeout_s=20)
        time.sleep(0.3)
    finally:
        stop.set()
        t.join()
        server.close()
    assert ex.status == "ok", ex
    assert "connected" not in ex.stdout, ex.stdout
    assert accepted == []


@pytest.mark.parametrize("mode", MODES)
def test_killing_its_parent_or_everything_fails_alone(mode):
    sb = sandbox(mode)
    code = """
    import os, signal
    for pid in (os.getppid(), 1, -1):
        try:
            os.kill(pid, signal.SIGKILL)
            print("sent", pid)
        except OSError as exc:
            print("refused", pid, exc.errno)
    """
    ex = py(sb, code, timeout_s=20)
    assert ex.status in ("ok", "signal", "exit"), ex
    assert not ex.sandbox_failed
    # the sandbox still works afterwards
    assert py(sb, "print('still here')", timeout_s=20).stdout == "still here\n"


@pytest.mark.parametrize("mode", MODES)
def test_a_gigabyte_on_stdout_is_capped_and_stopped(mode):
    sb = sandbox(mode)
    t = time.monotonic()
    ex = py(sb, "import sys\nblock = 'x' * (1 << 20)\nfor i in range(1024):\n    sys.stdout.write(block)\n",
            timeout_s=60, stdout_bytes=1 << 20)
    assert ex.status == "output", ex
    assert len(ex.stdout) == 1 << 20 and ex.stdout_truncated
    assert time.monotonic() - t < 60
    ex = py(sb, "import sys\nfor i in range(200000):\n    print('e' * 100, file=sys.stderr)\nprint('done')",
            timeout_s=60, stderr_bytes=4096)
    assert ex.status == "ok" and ex.stdout == "done\n" and len(ex.stderr) == 4096 and ex.stderr_truncated


@needs_bwrap
def test_secrets_of_the_run_never_reach_the_program(monkeypatch):
    sb = sandbox()
    key = f"sk-canary-{uuid.uuid4().hex}"
    secret = f"home-secret-{uuid.uuid4().hex}"
    home_file = Path.home() / f".lmgauge-test-secret-{uuid.uuid4().hex}"
    home_file.write_text(secret)
    monkeypatch.setenv("OPENAI_API_KEY", key)
    monkeypatch.setenv("LMGAUGE_API_KEY", key)
    try:
        code = f"""
        import os, glob
        print(dict(os.environ))
        for path in [{str(home_file)!r}, os.path.expanduser("~/{home_file.name}"), "/proc/1/environ",
                     "/proc/self/environ", *glob.glob("/proc/*/environ")]:
            try:
                print(path, open(path, "rb").read())
            except OSError as exc:
                print("refused", path, exc.__class__.__name__)
        """
        ex = py(sb, code, timeout_s=20)
    finally:
        home_file.unlink()
    assert ex.status == "ok", ex
    assert key not in ex.stdout + ex.stderr
    assert secret not in ex.stdout + ex.stderr
    env = eval(ex.stdout.splitlines()[0])  # noqa: S307 - our own program's repr of a dict of strings
    assert "OPENAI_API_KEY" not in env and set(env) <= {"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "PYTHONIOENCODING",
                                                       "PYTHONDONTWRITEBYTECODE", "OMP_NUM_THREADS", "PWD",
                                                       "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"}


@needs_bwrap
def test_runs_as_an_unprivileged_user_in_its_own_namespaces():
    sb = sandbox()
    code = """
    import os
    print(os.getuid(), os.getpid(), sorted(p for p in os.listdir('/proc') if p.isdigit()))
    print(open('/proc/self/status').read().split('CapEff:')[1].split()[0])
    print(sorted(os.listdir('/')))
    """
    ex = py(sb, code, timeout_s=20)
    lines = ex.stdout.splitlines()
    uid, pid = int(lines[0].split()[0]), int(lines[0].split()[1])
    if os.geteuid() == 0:
        assert uid >= host.UID_BASE
    assert pid <= 3  # a PID namespace of its own (bubblewrap's init is 1)
    assert int(lines[1], 16) == 0  # no capabilities
    root = eval(lines[2])  # noqa: S307 - our own program's repr of a list of names
    # the interpreter's prefixes are bound where they lie (a venv under /work here, under /check in CI):
    # their top folders are the only ones beyond the system's own
    prefix_tops = {Path(q).parts[1] for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)
                   for q in (p, os.path.realpath(p)) if len(Path(q).parts) > 1}
    assert "sys" not in root and "run" not in root
    if "home" not in prefix_tops:
        assert "home" not in root
    assert set(root) <= {".lmgauge", "bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "root", "sbin",
                         "tmp", "usr", "opt"} | prefix_tops


def test_killing_the_grading_process_leaves_no_program_behind(tmp_path):
    mode = "auto" if HAVE_BWRAP else "none"
    marker = f"orphan-{uuid.uuid4().hex}"
    script = tmp_path / "grader.py"
    script.write_text(textwrap.dedent(f"""
        from lmgauge.plugin import Limits
        from lmgauge_sandboxes.local import LocalSandbox
        sb = LocalSandbox({{"local_sandbox_bwrap": {mode!r}}})
        print("started", flush=True)
        sb.run({{"main.py": "import os, time\\nif os.fork() == 0:\\n    os.setsid()\\ntime.sleep(120)"}},
               ["python", "main.py", {marker!r}], None, Limits(timeout_s=100))
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "started"
    # the program and its detached child both running (bubblewrap's processes and the guard hold
    # the marker too): the kill comes mid-execution, not during bubblewrap's set-up
    end = time.monotonic() + 20
    while len(pythons_with(marker)) < 2 and time.monotonic() < end:
        time.sleep(0.05)
    if len(pythons_with(marker)) < 2:
        proc.kill()
        pytest.fail("the program and its child never both ran")
    proc.kill()
    proc.wait()
    proc.stdout.close()
    if mode == "auto":
        assert wait_gone(marker) == []  # bubblewrap's --die-with-parent took the namespace down


@needs_bwrap
def test_a_grader_killed_while_bubblewrap_sets_up_leaves_a_sandbox_bounded_by_its_time_limit(tmp_path):
    """bubblewrap's init arms --die-with-parent only once it has forked the program: a grader
    killed during the set-up leaves a sandbox whose init outlives it. The guard (coreutils
    timeout as PID 2) ends it GUARD_GRACE_S after its time limit, not when the program would
    (60 s). The set-up is held open on purpose: one file's content is a pipe the grader holds."""
    from lmgauge_sandboxes.local import GUARD_GRACE_S
    marker = f"setup-{uuid.uuid4().hex}"
    script = tmp_path / "grader.py"
    script.write_text(textwrap.dedent(f"""
        import os
        from lmgauge.plugin import Limits
        from lmgauge_sandboxes.local import LocalSandbox
        held = []
        real = LocalSandbox._memfile
        def memfile(data):
            if data != b"HOLD":
                return real(data)
            r, w = os.pipe()  # bubblewrap's child reads it while it sets up: blocks until we die
            held.append(w)
            return r
        LocalSandbox._memfile = staticmethod(memfile)
        sb = LocalSandbox({{"local_sandbox_bwrap": "auto"}})
        sb.isolation()
        print("started", flush=True)
        sb.run({{"main.py": "import time\\ntime.sleep(60)", "held.txt": "HOLD"}},
               ["python", "main.py", {marker!r}], None, Limits(timeout_s=2))
    """))
    seen_program = False
    for _ in range(4):  # the set-up sometimes dies with its monitor instead: then try again
        proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "started"
        end = time.monotonic() + 20
        while len(processes_with(marker)) < 2 and time.monotonic() < end:  # the monitor and its clone
            time.sleep(0.02)
        time.sleep(0.3)
        blocked = len(processes_with(marker)) == 2
        killed = time.monotonic()
        proc.kill()
        proc.wait()
        proc.stdout.close()
        assert blocked, "bubblewrap should be blocked in its set-up"
        while time.monotonic() - killed < 2 + GUARD_GRACE_S + 8:
            left = processes_with(marker)
            if not left:
                break
            seen_program = seen_program or len(left) >= 3
            time.sleep(0.05)
        try:
            assert processes_with(marker) == [], "the sandbox outlived its time limit and the guard's grace"
        finally:
            for pid in processes_with(marker):
                os.kill(pid, 9)
        if seen_program:
            break
    assert seen_program, "the set-up never went on after the grader died: the case this test is about"


# ---------------------------------------------------------------------------- set-up and failures


def test_isolation_is_reported_without_bubblewrap():
    sb = sandbox("none")
    assert "bubblewrap is switched off" in sb.isolation()
    assert sb.describe() == "local (no bubblewrap: limits only)"
    if HAVE_BWRAP:
        assert sandbox("auto").isolation() is None


@needs_bwrap
def test_an_interpreter_under_tmp_runs_and_tmp_stays_private(tmp_path):
    """A venv under /tmp (CI's checkout, a pyenv Python) is bound over the sandbox's private
    /tmp, read-only: the program runs with it, sees none of the host's other /tmp files and
    cannot write into the venv."""
    venv = tmp_path / "venv-under-tmp"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    assert str(venv).startswith("/tmp/")
    marker = tmp_path / "host-secret.txt"
    marker.write_text("host file")
    sb = sandbox(local_sandbox_python=str(venv / "bin" / "python"))
    ex = py(sb, f"""
    import os, sys
    print(sys.executable)
    print(os.path.exists({str(marker)!r}))
    try:
        open(os.path.join(os.path.dirname(os.path.dirname(sys.executable)), "pwned"), "w")
        print("wrote")
    except OSError:
        print("read-only")
    """, timeout_s=20)
    assert ex.status == "ok", ex
    assert ex.stdout.split() == [str(venv / "bin" / "python"), "False", "read-only"]
    assert not (venv / "pwned").exists()


def test_unusable_settings_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="no Python interpreter"):
        sandbox(local_sandbox_python=str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="not an executable"):
        sandbox(str(tmp_path / "bwrap"))
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(ConfigError, match="cannot make a sandbox here"):
        sandbox(str(fake))


def test_a_failing_interpreter_is_a_sandbox_error_not_a_verdict(tmp_path):
    mode = "auto" if HAVE_BWRAP else "none"
    sb = sandbox(mode)
    ex = py(sb, "print(1)", timeout_s=20, memory_mb=4)  # the interpreter cannot even start in 4 MiB
    assert ex.status in ("error", "memory"), ex
    ex = sb.run({"main.py": "x"}, ["/nonexistent/program"], None, Limits(timeout_s=20))
    assert ex.status in ("error", "exit") and ex.status != "ok"


@needs_bwrap
def test_run_many_stops_at_the_first_failure_and_keeps_the_budget():
    sb = sandbox()
    reqs = [ExecutionRequest({"main.py": f"import sys; sys.exit({code})"}, ["python", "main.py"], None, Limits(timeout_s=20))
            for code in (0, 0, 1, 0)]
    done = sb.run_many(reqs, stop=lambda ex: not ex.ok)
    assert [e.status for e in done] == ["ok", "ok", "exit"]
    slow = [ExecutionRequest({"main.py": "import time; time.sleep(5)"}, ["python", "main.py"], None, Limits(timeout_s=5))] * 5
    t = time.monotonic()
    done = sb.run_many(slow, budget_s=1.5)
    assert time.monotonic() - t < 10
    assert done and done[-1].status == "timeout" and len(done) <= 2


def test_parallel_executions_share_the_machine_slots():
    mode = "auto" if HAVE_BWRAP else "none"
    sb = sandbox(mode, local_sandbox_parallel=1)
    results = []

    def one():
        results.append(py(sb, "import time, os\nt = time.time()\ntime.sleep(0.3)\nprint(t, time.time())", timeout_s=20))

    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spans = sorted(tuple(map(float, r.stdout.split())) for r in results)
    assert len(spans) == 3
    for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
        assert b0 >= a1 - 0.01  # one slot: never two at once


@needs_bwrap
@pytest.mark.skipif(os.geteuid() != 0 or FALLBACK_PYTHON is None, reason="needs root to become another user, and a system Python")
def test_as_an_unprivileged_user_bubblewrap_adds_a_user_namespace_and_the_limits_hold():
    """lmgauge run by an ordinary user (uid 65534 here): programs run under that uid in a user
    namespace; the process limit still binds per execution, network and timeouts as for root."""
    import tempfile

    tmp_path = Path(tempfile.mkdtemp(prefix="lmgauge-as-user-"))  # pytest's own folder is root's (0700)
    try:
        _as_user(tmp_path)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def _as_user(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[1]
    for folder in (repo, *repo.parents):
        if not folder.stat().st_mode & 0o001:
            pytest.skip(f"{folder} is not searchable by other users: the test runs lmgauge as nobody from this checkout")
    site = next((repo / ".venv" / "lib").glob("python3*/site-packages"))
    script = tmp_path / "as_user.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{str(repo / 'core')!r}, {str(repo / 'plugins' / 'sandboxes')!r}, {str(site)!r}]
        from lmgauge.plugin import Limits
        from lmgauge_sandboxes.local import LocalSandbox
        sb = LocalSandbox({{"local_sandbox_python": {FALLBACK_PYTHON!r}}})
        sb.check()
        print(sb.isolation())
        progs = ["import os; print(os.getuid())", "while True: pass",
                 "import os\\nn = 0\\ntry:\\n    for i in range(300):\\n        if os.fork() == 0:\\n"
                 "            import time; time.sleep(20); os._exit(0)\\n        n += 1\\nexcept OSError:\\n    pass\\nprint(n)",
                 "import socket\\ntry:\\n    socket.create_connection(('127.0.0.1', 9), timeout=1)\\n    print('connected')\\n"
                 "except OSError:\\n    print('refused')"]
        for code in progs:
            ex = sb.run({{"main.py": code}}, ["python", "main.py"], None, Limits(timeout_s=2, processes=32))
            print(ex.status, ex.stdout.strip())
    """))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    tmp.chmod(0o1777)
    script.chmod(0o644)
    tmp_path.chmod(0o755)
    out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "env", "HOME=/tmp",
                          f"TMPDIR={tmp}", FALLBACK_PYTHON, str(script)], capture_output=True, text=True, timeout=120)
    lines = out.stdout.splitlines()
    assert out.returncode == 0, out.stderr
    assert lines[0] == "None"
    assert lines[1] == "ok 65534"
    assert lines[2].startswith("timeout")
    status, forks = lines[3].split()
    assert status == "ok" and int(forks) < 32
    assert lines[4] == "ok refused"
