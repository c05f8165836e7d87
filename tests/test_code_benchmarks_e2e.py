"""Code benchmarks end to end: ``lmgauge eval`` against a real OpenAI-compatible server on
127.0.0.1 (tests/eval_server.py, answers scripted per prompt), grading in the real sandbox.

- humaneval: the canonical solutions score 164/164, the bare prompts 0/164, a mixed schedule
  exactly its share;
- hostile answers (custom_code) each fail alone, the run exits 0, no secret reaches the run folder,
  no process is left, a listener on 127.0.0.1 sees nothing;
- a killed run resumes; isolation is warned about or required in one line.

Timings of these runs are printed (pytest -s); speed claims live in bench/sandbox_throughput.py.
"""
from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from conftest import LMGAUGE, assert_one_line_error, in_sandbox_uid, live_processes, run_cli
from lmgauge.runfolder import load_run
from lmgauge_benchmarks.humaneval import HumanEval, humaneval_prompt, package_data

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
HERMETIC = {"LMGAUGE_PLUGINS": "openai,humaneval,custom_code,livecodebench,local"}
WORKERS = ["--grading-workers", "2", "--no-progress", "--concurrency", "16"]


def humaneval_rows() -> list[dict]:
    return [json.loads(line) for line in gzip.open(package_data(), "rt")]


def fenced(code: str) -> str:
    return f"<think>Let me write it. ```python\nprint('draft, never run')\n```</think>\n```python\n{code}\n```"


def records(run: Path):
    return list(load_run(run).samples())


def timed(label: str, fn):
    t = time.monotonic()
    out = fn()
    print(f"\n[{label}: {time.monotonic() - t:.1f} s]")
    return out


def test_humaneval_canonical_solutions_score_164_of_164(eval_server, tmp_path):
    rows = humaneval_rows()
    server = eval_server({"model": "m", "answers": {humaneval_prompt(r["prompt"]): [fenced(r["prompt"] + r["canonical_solution"])]
                                                    for r in rows}})
    out = tmp_path / "run"
    proc = timed("humaneval canonical, 164 answers", lambda: run_cli(
        "eval", "--base-url", server.base_url, "--model", "m", "--benchmark", "humaneval", "--output", str(out),
        *WORKERS, env=HERMETIC, timeout=600))
    assert proc.returncode == 0, proc.stderr
    report = load_run(out).report
    assert report.score("humaneval") == 1.0
    overall = next(report.rows("humaneval", "OVERALL", "AveragePass@1"))
    assert overall.count == 164
    recs = records(out)
    assert len(recs) == 164 and all(r.correct and r.score_status == "decided" for r in recs)
    assert all(r.grade_info["tests"][0][1] == "passed" for r in recs)


def test_humaneval_bare_prompts_score_0_and_a_mixed_schedule_its_share(eval_server, tmp_path):
    rows = humaneval_rows()
    good = {r["task_id"] for i, r in enumerate(rows) if i % 3 == 0}  # 55 of 164 answered right in repeat 1
    answers = {}
    for r in rows:
        canonical = fenced(r["prompt"] + r["canonical_solution"])
        answers[humaneval_prompt(r["prompt"])] = [r["prompt"], canonical if r["task_id"] in good else fenced(r["prompt"])]
    server = eval_server({"model": "m", "supports_n": False, "answers": answers})
    out = tmp_path / "run"
    proc = timed("humaneval bare + mixed, 328 answers", lambda: run_cli(
        "eval", "--base-url", server.base_url, "--model", "m", "--benchmark", "humaneval", "--repeats", "2",
        "--seed", "0", "--output", str(out), *WORKERS, env=HERMETIC, timeout=900))
    assert proc.returncode == 0, proc.stderr
    recs = records(out)
    bare = [r for r in recs if r.repeat == 0]
    mixed = [r for r in recs if r.repeat == 1]
    assert len(bare) == 164 and sum(bool(r.correct) for r in bare) == 0
    assert all(r.score_status == "decided" and r.status == "wrong" for r in bare)
    assert {r.sample_id for r in mixed if r.correct} == good
    report = load_run(out).report
    assert report.score("humaneval") == pytest.approx(len(good) / 328)
    assert next(report.rows("humaneval", "OVERALL", "pass@2")).score == pytest.approx(len(good) / 164)


HOSTILE = {
    "loop": "def f(x):\n    while True:\n        pass\n",
    "memory": "def f(x):\n    block = bytearray(8 << 30)\n    return x\n",
    "forkbomb": ("import os, time\ndef f(x):\n    kids = 0\n    try:\n        for i in range(400):\n"
                 "            if os.fork() == 0:\n                time.sleep(60)\n                os._exit(0)\n"
                 "            kids += 1\n    except OSError:\n        pass\n    return kids\n"),
    "detached": ("import os, time\ndef f(x):\n    if os.fork() == 0:\n        os.setsid()\n        time.sleep(120)\n"
                 "        os._exit(0)\n    return -1\n"),
    "writes": ("import os\ndef f(x):\n    for p in ['/tmp/{canary}', os.path.expanduser('~/{canary}'), '{home}/{canary}']:\n"
               "        try:\n            open(p, 'w').write('x')\n        except OSError:\n            pass\n    return -1\n"),
    "network": ("import socket\ndef f(x):\n    try:\n        s = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
                "        s.sendall(b'leak')\n    except OSError as exc:\n        print(exc)\n    return -1\n"),
    "killparent": "import os, signal\ndef f(x):\n    for pid in (os.getppid(), 1, -1):\n        try:\n            os.kill(pid, signal.SIGKILL)\n        except OSError:\n            pass\n    return -1\n",
    "stdout": "import sys\ndef f(x):\n    block = 'y' * (1 << 20)\n    for i in range(1024):\n        sys.stdout.write(block)\n",
    "secrets": ("import os, glob\ndef f(x):\n    print(dict(os.environ))\n    for p in ['{secret_file}', os.path.expanduser('~/{secret_name}'), *glob.glob('/proc/*/environ')]:\n"
                "        try:\n            print(open(p).read())\n        except OSError:\n            pass\n    assert False, 'printed what it could'\n"),
    "good": "def f(x):\n    return x + 1\n",
}


def test_hostile_answers_each_fail_alone_and_leak_nothing(eval_server, tmp_path):
    canary = f"lmgauge-canary-{uuid.uuid4().hex}"
    key = f"sk-canary-{uuid.uuid4().hex}"
    secret = f"home-secret-{uuid.uuid4().hex}"
    secret_file = Path.home() / f".lmgauge-e2e-secret-{uuid.uuid4().hex}"
    secret_file.write_text(secret)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    accepted: list[bytes] = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            accepted.append(conn.recv(100))
            conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    fill = {"canary": canary, "home": str(Path.home()), "port": listener.getsockname()[1],
            "secret_file": str(secret_file), "secret_name": secret_file.name}
    rows, answers = [], {}
    for name, code in HOSTILE.items():
        prompt = f'def f(x):\n    """{name}: return x + 1"""\n'
        rows.append({"task_id": name, "prompt": prompt, "entry_point": "f",
                     "test": "def check(candidate):\n    assert candidate(1) == 2\n"})
        answers[humaneval_prompt(prompt)] = [fenced(code.format(**fill) + f"\n# {canary}\n")]
    data = tmp_path / "hostile.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    server = eval_server({"model": "m", "answers": answers})
    out = tmp_path / "run"
    try:
        proc = timed("hostile run", lambda: run_cli(
            "eval", "--base-url", server.base_url, "--model", "m", "--benchmark", f"hostile=custom_code:{data}",
            "--output", str(out), "--code-test-timeout", "3", "--code-memory-mb", "1024", *WORKERS,
            env={**HERMETIC, "OPENAI_API_KEY": key, "LMGAUGE_API_KEY": key}, timeout=600))
        time.sleep(0.5)
    finally:
        stop.set()
        t.join()
        listener.close()
        secret_file.unlink()
    assert proc.returncode == 0, proc.stderr
    by_id = {r.sample_id: r for r in records(out)}
    assert set(by_id) == set(HOSTILE)
    assert by_id["good"].correct is True
    for name, rec in by_id.items():
        if name != "good":
            assert rec.correct is False and rec.score_status == "decided" and not rec.error, (name, rec.grade_detail)
    assert by_id["loop"].grade_info["tests"][0][1] == "timeout"
    assert by_id["memory"].grade_info["tests"][0][1] == "memory"
    assert by_id["stdout"].grade_info["failure"]["reason"].startswith("wrote more than")
    assert accepted == []
    for p in (Path("/tmp") / canary, Path.home() / canary):
        assert not p.exists()
    for f in out.rglob("*"):
        if f.is_file():
            data_bytes = f.read_bytes()
            assert key.encode() not in data_bytes, f
            assert secret.encode() not in data_bytes, f
    assert _programs_with(canary) == []  # this run's programs (tests beside it use the slot uids)


def _programs_with(marker: str) -> list[int]:
    """Live sandboxed processes (a sandbox user id) whose sandbox's /tmp holds a file with
    ``marker``: this test's programs, not those of tests running beside it."""
    return live_processes(lambda d: in_sandbox_uid(d) and any(marker.encode() in f.read_bytes()
                                                              for f in (d / "root" / "tmp").glob("*.py")))


def test_a_killed_run_resumes_and_leaves_no_program_behind(eval_server, tmp_path):
    marker = f"resume-{uuid.uuid4().hex}"
    rows, answers = [], {}
    for i in range(12):
        prompt = f'def f(x):\n    """problem {i}: return x + {i}"""\n'
        rows.append({"task_id": f"p{i}", "prompt": prompt, "entry_point": "f",
                     "test": f"def check(candidate):\n    assert candidate(1) == {1 + i}\n"})
        answers[humaneval_prompt(prompt)] = [fenced(f"import time\ndef f(x):\n    time.sleep(0.5)  # {marker}\n    return x + {i}\n")]
    data = tmp_path / "slow.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    server = eval_server({"model": "m", "answers": answers})
    out = tmp_path / "run"
    args = ["eval", "--base-url", server.base_url, "--model", "m", "--benchmark", f"slow=custom_code:{data}",
            "--output", str(out), "--grading-workers", "1", "--concurrency", "1", "--no-progress",
            "--code-test-timeout", "2"]
    proc = subprocess.Popen([*LMGAUGE, *args], env={**os.environ, **HERMETIC}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    journal = out / "samples.jsonl"
    end = time.monotonic() + 120
    seen = False  # this test's programs were found while they ran: the check below can fail
    while time.monotonic() < end and (not journal.exists() or len(journal.read_text().splitlines()) < 3):
        seen = seen or bool(_programs_with(marker))
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole run at once, grading workers included
    proc.wait()
    done_before = len(journal.read_text().splitlines())
    assert 3 <= done_before < 12
    # none of this run's programs outlives its time limit (2 s) and the sandbox guard's grace: a
    # kill that lands while bubblewrap sets a sandbox up leaves it to its guard (docs/code.md)
    from lmgauge_sandboxes.local import GUARD_GRACE_S

    end = time.monotonic() + 2 + GUARD_GRACE_S + 3
    while _programs_with(marker) and time.monotonic() < end:
        time.sleep(0.1)
    assert seen and _programs_with(marker) == []
    resumed = run_cli("eval", "--resume", str(out), "--no-progress", env=HERMETIC, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    recs = records(out)
    assert len({r.sample_id for r in recs}) == 12 and all(r.correct for r in recs)
    assert load_run(out).report.score("slow") == 1.0


def _small_file(tmp_path: Path) -> Path:
    data = tmp_path / "one.jsonl"
    data.write_text(json.dumps({"task_id": "one", "prompt": "def f(x):\n    pass\n", "entry_point": "f",
                                "test": "def check(c):\n    assert c(1) == 2\n"}) + "\n")
    return data


def test_weaker_isolation_is_one_warning_or_with_require_one_error(eval_server, tmp_path):
    data = _small_file(tmp_path)
    prompt = humaneval_prompt("def f(x):\n    pass\n")
    server = eval_server({"model": "m", "answers": {prompt: [fenced("def f(x):\n    return x + 1")]}})
    base = ["eval", "--base-url", server.base_url, "--model", "m", "--benchmark", f"one=custom_code:{data}",
            "--local-sandbox-bwrap", "none", "--no-progress"]
    fallback_python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    required = run_cli(*base, "--sandbox-require-isolation", "--output", str(tmp_path / "a"),
                       "--local-sandbox-python", fallback_python, env=HERMETIC)
    assert_one_line_error(required, "sandbox local", "--sandbox-require-isolation")
    assert not (tmp_path / "a").exists()
    if os.geteuid() == 0 and not os.path.exists("/usr/bin/python3"):
        pytest.skip("no Python every user can run, for the sandbox without bubblewrap")
    warned = run_cli(*base, "--output", str(tmp_path / "b"), "--local-sandbox-python", fallback_python, env=HERMETIC)
    assert warned.returncode == 0, warned.stderr
    lines = [l for l in warned.stderr.splitlines() if "warning: sandbox local" in l]
    assert len(lines) == 1 and "weaker isolation" in lines[0]
    assert load_run(tmp_path / "b").report.score("one") == 1.0


def test_unknown_sandbox_is_one_line(eval_server, tmp_path):
    data = _small_file(tmp_path)
    server = eval_server({"model": "m"})
    proc = run_cli("eval", "--base-url", server.base_url, "--model", "m", "--benchmark", f"one=custom_code:{data}",
                   "--sandbox", "docker", "--output", str(tmp_path / "x"), env=HERMETIC)
    assert_one_line_error(proc, "unknown sandbox", "docker", "local")


def test_livecodebench_window_and_regrade_through_the_cli(eval_server, tmp_path):
    from code_data import FUNCTIONAL_SOLUTION, STDIN_SOLUTION, dataset_folder
    from lmgauge_benchmarks.livecodebench import LiveCodeBench

    folder = dataset_folder(tmp_path / "lcb")
    b = LiveCodeBench()
    b.options = {"lcb_version": "release_latest", "lcb_start_date": None, "lcb_end_date": None}
    answers = {}
    for s in b.load(str(folder)):
        code = FUNCTIONAL_SOLUTION if s.gold["kind"] == "functional" else STDIN_SOLUTION
        answers[s.prompt] = [fenced(code), fenced("print(0)")]
    server = eval_server({"model": "m", "supports_n": False, "answers": answers})
    out = tmp_path / "run"
    proc = run_cli("eval", "--base-url", server.base_url, "--model", "m", "--benchmark", "livecodebench",
                   "--dataset-path", f"livecodebench={folder}", "--lcb-version", "release_v2",
                   "--lcb-start-date", "2023-09-01", "--lcb-end-date", "2025-01-31", "--repeats", "2", "--seed", "0",
                   "--output", str(out), *WORKERS, env=HERMETIC, timeout=300)
    assert proc.returncode == 0, proc.stderr
    recs = records(out)
    assert {r.sample_id for r in recs} == {"lc-1", "abc300_b", "lc-2"}
    assert all(r.correct == (r.repeat == 0) for r in recs)
    report = load_run(out).report
    assert report.score("livecodebench") == 0.5
    assert {row.subset for row in report.rows("livecodebench")} >= {"OVERALL", "hard", "medium", "atcoder", "leetcode"}
    regraded = run_cli("regrade", str(out), "--output", str(tmp_path / "rg"), env=HERMETIC, timeout=300)
    assert regraded.returncode == 0, regraded.stderr
    again = {r.key: r.correct for r in records(tmp_path / "rg")}
    assert again == {r.key: r.correct for r in recs}
