"""Several endpoints (repeated --base-url / --url): least-in-flight dispatch and failover when
one dies mid-run, a run that stops (and resumes exactly) when every endpoint is gone, parked
endpoints that rejoin, perf load split over endpoints. Real servers (tests/eval_server.py,
tests/perf_server.py) in subprocesses that the tests kill."""
from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import LMGAUGE, assert_one_line_error, run_cli

PLUGINS = {"LMGAUGE_PLUGINS": "math_500,openai"}


@pytest.fixture(scope="module")
def math_samples():
    from lmgauge.plugins import PluginManager

    pm = PluginManager(only=["math_500"])
    return pm.get("benchmarks", "math_500").load()[:30]


def answers_for(samples):
    """A right answer for even questions, a wrong one for odd: known scores."""
    return {s.prompt: [f"The answer is \\boxed{{{s.gold}}}." if i % 2 == 0 else "It is \\boxed{-987654}."]
            for i, s in enumerate(samples)}


def journal(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]


def start_run(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([*LMGAUGE, *args], env=dict(os.environ, **PLUGINS), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_lines(run: Path, count: int, proc: subprocess.Popen) -> None:
    path = run / "samples.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if path.exists() and len(path.read_text().splitlines()) >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"the run never journaled {count} samples (exit {proc.poll()})")


def test_one_of_three_endpoints_killed_mid_run_loses_and_doubles_nothing(math_samples, eval_server, tmp_path):
    script = {"model": "m", "answers": answers_for(math_samples), "delay": 0.25}
    servers = [eval_server(script) for _ in range(3)]
    args = ["eval", "--model", "m", "--benchmark", "math_500", "--limit", "30", "--concurrency", "3",
            "--no-progress"]
    healthy = tmp_path / "healthy"
    run_cli(*args, "--base-url", servers[0].base_url, "--output", str(healthy), env=PLUGINS, check=True)

    before = len(servers[0].log())
    run = tmp_path / "three"
    urls = [x for s in servers for x in ("--base-url", s.base_url)]
    proc = start_run([*args, *urls, "--output", str(run)])
    wait_for_lines(run, 10, proc)
    servers[1].stop()  # killed with requests in flight
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err

    lines = journal(run)
    assert not [l for l in lines if l["error"]]
    keys = Counter((l["sample_id"], l["repeat"]) for l in lines)
    assert sorted(keys) == sorted((s.id, 0) for s in math_samples) and set(keys.values()) == {1}
    a = json.loads((healthy / "report.json").read_text())
    b = json.loads((run / "report.json").read_text())
    assert a["results"] == b["results"] and a["benchmarks"] == b["benchmarks"]
    eps = {e["url"]: e for e in b["endpoints"]}
    assert list(eps) == [s.base_url for s in servers]
    assert sum(e["ok"] for e in eps.values()) == 30
    dead = eps[servers[1].base_url]
    assert dead["failures"] >= 1 and dead["last_error"]
    for s in (servers[0], servers[2]):
        assert eps[s.base_url]["failures"] == 0 and eps[s.base_url]["ok"] >= 5
        assert eps[s.base_url]["latency_mean_s"] >= 0.25
    # every request the live servers answered is one journaled sample, no request answered twice
    answered = len(servers[0].log()) - before + len(servers[2].log())
    assert answered == eps[servers[0].base_url]["ok"] + eps[servers[2].base_url]["ok"]
    assert "Endpoint" in out and servers[1].base_url in out  # the terminal table
    html = (run / "report.html").read_text()
    assert "Endpoints" in html and servers[2].base_url in html


def test_only_endpoint_dies_the_run_stops_and_resume_finishes_it_exactly(math_samples, eval_server, tmp_path):
    script = {"model": "m", "answers": answers_for(math_samples[:20]), "delay": 0.2}
    cfg = tmp_path / "fast.yaml"
    cfg.write_text("retry_backoff: 0.05\n")
    args = ["eval", "--config", str(cfg), "--model", "m", "--benchmark", "math_500", "--limit", "20",
            "--repeats", "2", "--seed", "0", "--concurrency", "2", "--no-progress"]
    full = tmp_path / "full"
    first = eval_server(script)
    run_cli(*args, "--base-url", first.base_url, "--output", str(full), env=PLUGINS, check=True)

    part = tmp_path / "part"
    server = eval_server(script)
    proc = start_run([*args, "--base-url", server.base_url, "--output", str(part)])
    wait_for_lines(part, 6, proc)
    server.stop()
    killed = time.monotonic()
    out, err = proc.communicate(timeout=120)
    print(f"the run stopped {time.monotonic() - killed:.1f} s after its only server was killed")
    done = journal(part)
    assert_one_line_error(subprocess.CompletedProcess(proc.args, proc.returncode, out, err),
                          "every endpoint is unreachable", f"{len(done)} samples done", f"{40 - len(done)} not run",
                          f"continue with: lmgauge eval --resume {part}")
    assert 6 <= len(done) < 40 and not [l for l in done if l["error"]]  # nothing turned into errors
    assert json.loads((part / "report.json").read_text())["complete"] is False

    again = eval_server(script)  # the server is back, at another address
    res = run_cli("eval", "--resume", str(part), "--base-url", again.base_url, "--no-progress", env=PLUGINS,
                  check=True)
    assert "AveragePass@1" in res.stdout
    lines = journal(part)
    assert len(lines) == 40 and len({(l["sample_id"], l["repeat"]) for l in lines}) == 40
    sent = [l for l in again.log() if l["user"] != "Say hi."]  # not the n-support probe
    assert sum(l["n"] for l in sent) == 40 - len(done)  # only what was missing was sent
    a = json.loads((full / "report.json").read_text())
    b = json.loads((part / "report.json").read_text())
    assert a["results"] == b["results"] and b["complete"] is True
    assert [dict(x, warnings=None) for x in a["benchmarks"]] == [dict(x, warnings=None) for x in b["benchmarks"]]
    by_url = {e["url"]: e for e in b["endpoints"]}  # both sessions' endpoints
    assert by_url[again.base_url]["ok"] == len(again.log()) and by_url[again.base_url]["failures"] == 0
    assert by_url[server.base_url]["ok"] >= 1 and by_url[server.base_url]["failures"] >= 1


def test_unreachable_endpoints_at_start(math_samples, eval_server, tmp_path):
    server = eval_server({"model": "m", "answers": answers_for(math_samples[:4])})
    dead = "http://127.0.0.1:9/v1"
    out = tmp_path / "run"
    res = run_cli("eval", "--base-url", dead, "--base-url", server.base_url, "--model", "m", "--benchmark", "math_500",
                  "--limit", "4", "--output", str(out), "--no-progress", env=PLUGINS, check=True)
    assert f"lmgauge: warning: endpoint {dead} parked" in res.stderr
    eps = {e["url"]: e for e in json.loads((out / "report.json").read_text())["endpoints"]}
    assert eps[dead]["requests"] == 0 and eps[dead]["parked"] == 1 and eps[server.base_url]["ok"] == 4
    proc = run_cli("eval", "--base-url", dead, "--base-url", "http://127.0.0.1:7/v1", "--model", "m",
                   "--benchmark", "math_500", "--output", str(tmp_path / "none"), env=PLUGINS)
    assert_one_line_error(proc, "none of the 2 endpoints answers", "127.0.0.1:9", "--base-url")
    proc = run_cli("eval", "--base-url", server.base_url, "--base-url", server.base_url + "/completions", "--model", "m",
                   "--benchmark", "math_500", "--output", str(tmp_path / "mixed"), env=PLUGINS)
    assert_one_line_error(proc, "different endpoint kinds")
    proc = run_cli("eval", "--base-url", server.base_url, "--base-url", server.base_url + "/", "--model", "m",
                   "--benchmark", "math_500", "--output", str(tmp_path / "twice"), env=PLUGINS)
    assert_one_line_error(proc, "is given twice")


def test_a_parked_endpoint_rejoins_when_it_answers_again(eval_server, tmp_path):
    from lmgauge.interfaces import BackendConfig
    from lmgauge.types import GenerationParams, GenerationRequest
    from lmgauge_backends.openai_backend import OpenAIBackend

    a = eval_server({"model": "m"})
    b = eval_server({"model": "m"})
    notes: list[str] = []

    async def scenario() -> None:
        backend = OpenAIBackend(BackendConfig(model="m", base_url=a.base_url, endpoints=[a.base_url, b.base_url],
                                              connect_timeout=5, read_timeout=30))
        backend.pool.probe_interval = backend.pool.probe_max_interval = 0.05
        backend.pool.notify = notes.append
        await backend.start()
        ask = GenerationRequest(messages=[{"role": "user", "content": "hi"}], params=GenerationParams(max_tokens=4))
        try:
            for _ in range(4):
                await backend.generate(ask)
            port = b.port
            b.stop()
            for _ in range(8):  # every request still succeeds: b's are sent to a
                await backend.generate(ask)
            pool_b = backend.pool.endpoints[1]
            assert not pool_b.live and pool_b.parks == 1
            b2 = eval_server({"model": "m", "port": port})
            deadline = time.time() + 30
            while not pool_b.live and time.time() < deadline:
                await asyncio.sleep(0.05)
            assert pool_b.live
            await asyncio.gather(*(backend.generate(ask) for _ in range(6)))
            assert len(b2.log()) >= 1  # it takes requests again
        finally:
            await backend.close()
        stats = backend.endpoint_stats()
        assert stats[1]["parked"] == 1 and stats[1]["failures"] >= 3 and stats[1]["parked_s"] > 0
        assert sum(s["ok"] for s in stats) == 18

    asyncio.run(scenario())
    assert any("parked after 3 failures in a row" in n for n in notes)
    assert any("answers again" in n for n in notes)


@pytest.fixture
def stream_servers(stream_server):
    """tests/perf_server.py logging every request it gets to ``log``; its chat URL."""
    return lambda log: stream_server("--tokens", "6", "--itl", "0.002", "--ttft", "0.01", "--log", str(log))


@pytest.mark.parametrize("workers", [1, 2])
def test_perf_splits_requests_over_endpoints_and_reports_each(stream_servers, tmp_path, workers):
    logs = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    urls = [stream_servers(log) for log in logs]
    out = tmp_path / "run"
    proc = run_cli("perf", "--url", urls[0], "--url", urls[1], "--model", "perf-model", "--prompt", "hello there",
                   "--concurrency", "4", "--number", "21", "--workers", str(workers), "--output", str(out),
                   env={"LMGAUGE_PLUGINS": "openai,openqa"}, check=True, timeout=120)
    assert [len(log.read_text().splitlines()) for log in logs] == [11, 10]  # request i → URL i mod 2
    s = json.loads((out / "summary.json").read_text())
    assert s["url"] == urls[0] and s["urls"] == urls
    run = s["runs"][0]
    assert run["requests"] == run["succeeded"] == 21
    eps = run["endpoints"]
    assert [e["endpoint"] for e in eps] == urls and [e["requests"] for e in eps] == [11, 10]
    assert all(e["succeeded"] == e["requests"] and e["output_tokens_total"] == 6 * e["requests"] for e in eps)
    assert sum(e["request_throughput"] for e in eps) == pytest.approx(run["request_throughput"])
    db = sqlite3.connect(out / "perf.sqlite")
    rows = db.execute("select idx, endpoint from requests order by idx").fetchall()
    assert rows == [(i, urls[i % 2]) for i in range(21)]
    assert "Endpoint" in proc.stdout and urls[1] in proc.stdout
