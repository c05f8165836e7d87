"""Scale-out on Ray (lmgauge.scale) against a real two-node Ray cluster on this machine.

The module starts the cluster once: a head and a second node, each ``ray start --block`` in a
session of its own (so the test stops exactly its own processes, by process group, never by
name). Select with ``-m ray``. The node-loss test kills the second node, so it runs last.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import LMGAUGE, REPO, assert_one_line_error, run_cli

pytestmark = pytest.mark.ray
pytest.importorskip("ray")

RAY = str(Path(sys.executable).with_name("ray"))
ENV = {"LMGAUGE_PLUGINS": "openai,random,openqa,text_files", "RAY_USAGE_STATS_ENABLED": "0"}


class LocalRayCluster:
    """A Ray cluster of nodes on this machine, each a ``ray start --block`` process group
    (optionally pinned to one core: Ray's processes inherit the affinity)."""

    def __init__(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="lmg-ray-", dir="/tmp")  # short: Ray's socket paths are limited
        self.address: str | None = None
        self.nodes: list[subprocess.Popen] = []

    def _start(self, args: list[str], cpu: int | None, until: str) -> tuple[subprocess.Popen, list[str]]:
        # Ray >= 2.5x turns token authentication on for `ray start` once ~/.ray/auth_token exists
        # (any local ray.init() writes one), while a driver given an address never sends it:
        # say which mode this cluster uses
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
        pin = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
        proc = subprocess.Popen([RAY, "start", "--block", "--disable-usage-stats", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True, env=env, preexec_fn=pin)
        self.nodes.append(proc)
        lines: list[str] = []
        for line in proc.stdout:  # what --block prints once the node is up
            lines.append(line)
            if until in line:
                break
        else:
            raise RuntimeError("ray start failed:\n" + "".join(lines))
        # keep draining its output so the node never blocks on a full pipe
        import threading

        threading.Thread(target=lambda: proc.stdout.read(), daemon=True).start()
        return proc, lines

    def start_head(self, num_cpus: int = 1, cpu: int | None = None) -> str:
        _, lines = self._start(["--head", "--port", "0", "--node-ip-address", "127.0.0.1", "--num-cpus", str(num_cpus),
                                "--temp-dir", self.tmp, "--include-dashboard", "false"], cpu, "ray start --address=")
        self.address = re.search(r"ray start --address='([^']+)'", lines[-1]).group(1)
        return self.address

    def add_node(self, num_cpus: int = 1, cpu: int | None = None) -> subprocess.Popen:
        proc, _ = self._start(["--address", self.address, "--node-ip-address", "127.0.0.1", "--num-cpus", str(num_cpus)], cpu,
                              "Ray runtime started")
        return proc

    @staticmethod
    def kill(proc: subprocess.Popen) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the node's own session: raylet, workers, agents
        except ProcessLookupError:
            pass
        proc.wait()

    def stop(self) -> None:
        for proc in reversed(self.nodes):
            self.kill(proc)
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    c = LocalRayCluster()
    try:
        c.start_head()
        c.second = c.add_node()
        yield c
    finally:
        c.stop()


@pytest.fixture
def perf_server(stream_server):
    return stream_server


def summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def test_ray_shards_count_tokens_as_one_process_does(cluster, perf_server, tmp_path):
    """No usage from the server, 4 tokens a chunk: Ray actors count 32 tokens a request with the
    tokenizer, exactly as one process and local worker processes do."""
    from test_perf import token_counts

    url = perf_server("--no-usage", "--tokens", "32", "--tokens-per-chunk", "4")
    one = token_counts(url, tmp_path / "one", "--workers", "1")
    ray = token_counts(url, tmp_path / "ray", "--workers", "2", "--ray", "--ray-address", cluster.address)
    assert one == ray == ({(32, "tokenizer")}, {"tokenizer": 12})


def test_perf_through_ray_sends_what_one_process_sends(cluster, perf_server, tmp_path):
    """Two actors on two nodes: the server receives exactly the requests one process sends, and
    the merged records have the same indices and scheduled offsets."""
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"question number {i}\n" for i in range(60)))
    runs = {}
    for mode, extra in (("one", ["--workers", "1"]), ("ray", ["--workers", "2", "--ray", "--ray-address", cluster.address])):
        log = tmp_path / f"server-{mode}.jsonl"
        url = perf_server("--tokens", "4", "--itl", "0.001", "--log", str(log))
        out = tmp_path / f"run-{mode}"
        run_cli("perf", "--url", url, "--model", "perf-model", "--dataset", "line_by_line", "--dataset-path", str(prompts),
                "--number", "60", "--rate", "150", "--concurrency", "8", *extra, "--output", str(out),
                env=ENV, check=True, timeout=180)
        r = summary(out)["runs"][0]
        assert (r["requests"], r["succeeded"]) == (60, 60)
        rows = sqlite3.connect(out / "perf.sqlite").execute(
            "select idx, scheduled_s, completion_tokens from requests order by idx").fetchall()
        received = Counter(json.loads(line)["prompt"] for line in log.read_text().splitlines())
        runs[mode] = (r, rows, received)
    (_, rows1, got1), (r2, rows2, got2) = runs["one"], runs["ray"]
    assert got1 == got2 and sum(got2.values()) == 60 and set(got2.values()) == {1}
    assert [x[0] for x in rows2] == [x[0] for x in rows1] == list(range(60))
    assert [x[1] for x in rows2] == pytest.approx([x[1] for x in rows1], abs=1e-6)
    assert {x[2] for x in rows2} == {4}
    nodes = r2["nodes"]
    assert len({n["node_id"] for n in nodes}) == 2  # SPREAD: one shard per node
    assert sorted(n["requests"] for n in nodes) == [30, 30] and sorted(s for n in nodes for s in n["shards"]) == [0, 1]
    assert all(n["cpu_s"] > 0 and n["lost"] == 0 and n["lost_reason"] is None for n in nodes)


def test_cpu_replicas_answer_as_one_replica(cluster):
    """Two CPU replicas of the transformers backend (embedded SmolLM2): greedy and seeded
    answers, spread over both replicas, equal those of one replica given all the requests."""
    pytest.importorskip("transformers")
    from lmgauge.interfaces import BackendConfig
    from lmgauge.scale.replicas import ReplicaBackend
    from lmgauge.types import GenerationParams, GenerationRequest, PerfRecord

    prompts = ["What is 2+2?", "Name a colour.", "Say hello.", "Count to three."]

    def requests(temperature=None, seed=None):
        return [GenerationRequest(messages=[{"role": "user", "content": p}],
                                  params=GenerationParams(max_tokens=8, temperature=temperature, seed=seed))
                for p in prompts]

    async def go():
        backend = ReplicaBackend("transformers", BackendConfig(model="smollm2", api="chat"), 2, None, cluster.address)
        await backend.start()
        try:
            spread = {}
            for kind, reqs in (("greedy", requests()), ("seeded", requests(0.9, 7))):
                spread[kind] = [c[0].text for c in await asyncio.gather(*[backend.generate(r) for r in reqs])]
            served = list(backend.served)
            alone = {}
            for kind, reqs in (("greedy", requests()), ("seeded", requests(0.9, 7))):  # all to replica 0
                alone[kind] = [c[0].text for c in await asyncio.gather(*[backend.actors[0].generate.remote(r)
                                                                          for r in reqs])]
            before = time.perf_counter()
            rec = PerfRecord(index=3, scheduled=before)
            await backend.stream(requests()[0], rec)
            after = time.perf_counter()
            return spread, alone, served, rec, before, after, backend.replica_stats()
        finally:
            await backend.close()

    spread, alone, served, rec, before, after, stats = asyncio.run(go())
    assert spread == alone, (spread, alone)
    assert all(spread["greedy"]) and spread["greedy"] != spread["seeded"]
    assert served == [4, 4]  # each replica answered half of the 8 requests
    assert len({s["node_id"] for s in stats}) == 2 and {s["device"] for s in stats} == {"cpu"}
    # a perf record filled in a replica lands on this process's clock
    assert rec.success and rec.index == 3 and rec.output_text == spread["greedy"][0]
    assert before <= rec.sent <= rec.first_token <= rec.end <= after
    assert len(rec.chunk_times) == rec.completion_tokens and rec.chunk_times == sorted(rec.chunk_times)


def test_ray_is_optional(perf_server, tmp_path):
    """Without Ray (an importable ``ray`` that fails, and notes that it was tried), a perf run
    never imports it, and ``--ray`` fails in one line that says how to install it."""
    shim = tmp_path / "shim"
    (shim / "ray").mkdir(parents=True)
    marker = tmp_path / "ray-imported"
    (shim / "ray" / "__init__.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nraise ImportError(\"No module named 'ray'\")\n")
    env = {**ENV, "PYTHONPATH": os.pathsep.join([str(shim), os.environ.get("PYTHONPATH", "")])}
    url = perf_server("--tokens", "2")
    base = ["perf", "--url", url, "--model", "perf-model", "--prompt", "hi", "--number", "4", "--workers", "2"]
    run_cli(*base, "--output", str(tmp_path / "local"), env=env, check=True, timeout=120)
    assert not marker.exists(), "a perf run without --ray imported ray"
    proc = run_cli(*base, "--ray", "--output", str(tmp_path / "ray"), env=env, timeout=120)
    assert_one_line_error(proc, "--ray needs Ray", "pip install 'lmgauge[ray]'")
    assert marker.exists()
    demo = REPO / "plugins" / "benchmarks" / "lmgauge_benchmarks" / "data" / "demo_math.jsonl"
    proc = run_cli("eval", "--backend", "transformers", "--model", "smollm2", "--benchmark", f"demo=custom_math:{demo}",
                   "--limit", "1", "--replicas", "2", "--output", str(tmp_path / "eval"),
                   env={**env, "LMGAUGE_PLUGINS": "transformers,custom_math"}, timeout=120)
    assert_one_line_error(proc, "--replicas needs Ray", "pip install 'lmgauge[ray]'")
    code = ("import sys, lmgauge.cli, lmgauge.scale, lmgauge.scale.ray_perf, lmgauge.scale.replicas, lmgauge.perf.cli; "
            "print('ray' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_ctrl_c_stops_every_shard_and_keeps_what_finished(cluster, perf_server, tmp_path):
    log = tmp_path / "server.jsonl"
    url = perf_server("--tokens", "20", "--itl", "0.02", "--log", str(log))
    out = tmp_path / "run"
    proc = subprocess.Popen([*LMGAUGE, "perf", "--url", url, "--model", "perf-model", "--prompt", "hi", "--concurrency", "4",
                             "8", "--number", "1000", "--workers", "2", "--ray", "--ray-address", cluster.address,
                             "--output", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **ENV})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 12):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in stderr and "Traceback" not in stderr, stderr
    s = summary(out)
    assert len(s["runs"]) == 1 and s["runs"][0]["interrupted"] is True
    r = s["runs"][0]
    assert 0 < r["succeeded"] == r["requests"] < 1000 and r["failed"] == 0
    assert r["abandoned_in_flight"] == 4  # two shards of concurrency 2, each stopped mid-request
    assert len(r["nodes"]) == 2 and all(n["cpu_s"] > 0 and n["lost"] == 0 for n in r["nodes"])  # stopped, not lost


def test_a_node_lost_mid_run_is_reported_and_never_hangs(cluster, perf_server, tmp_path):
    """The second node dies mid-run: the run finishes, and the requests of its shard that never
    came back are failed with 'worker lost: node IP (node died)'. Runs last: it kills the node."""
    log = tmp_path / "server.jsonl"
    url = perf_server("--tokens", "4", "--itl", "0.001", "--log", str(log))
    out = tmp_path / "run"
    n = 600
    proc = subprocess.Popen([*LMGAUGE, "perf", "--url", url, "--model", "perf-model", "--prompt", "hi", "--number", str(n),
                             "--rate", "40", "--workers", "2", "--ray", "--ray-address", cluster.address,
                             "--output", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **ENV})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 40):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    cluster.kill(cluster.second)
    stdout, stderr = proc.communicate(timeout=120)  # bounded: the run must end by itself
    assert proc.returncode == 0, stderr
    r = summary(out)["runs"][0]
    lost = [nd for nd in r["nodes"] if nd["lost_reason"]]
    assert len(lost) == 1 and lost[0]["cpu_s"] is None
    assert r["requests"] == n and r["succeeded"] + r["failed"] == n
    assert r["failed"] == lost[0]["lost"] > 0 and r["failures"] == {"worker lost": lost[0]["lost"]}
    errors = {e for (e,) in sqlite3.connect(out / "perf.sqlite").execute("select error from requests where success = 0")}
    assert len(errors) == 1 and re.fullmatch(r"worker lost: node [0-9.]+ \((node died|actor unreachable.*)\)", errors.pop())
    assert sum(1 for _ in log.read_text().splitlines()) >= r["succeeded"]
    survivor = [nd for nd in r["nodes"] if not nd["lost_reason"]][0]
    assert survivor["requests"] == n // 2 and survivor["cpu_s"] > 0
