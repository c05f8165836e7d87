"""lmgauge perf beyond chat: embeddings, rerank, score and the Responses API, and images in chat
requests (random_vl), end to end against tests/endpoint_server.py (its own process, logging
every request it receives)."""
from __future__ import annotations

import base64
import json
import sqlite3
import struct
import subprocess
import sys
import zlib

import pytest

from conftest import REPO, assert_one_line_error, run_cli

ENV = {"LMGAUGE_PLUGINS": "openai,random,text_files,random_embedding,random_rerank,random_vl"}
MODEL = "endpoint-model"


@pytest.fixture
def server(tmp_path):
    """Start tests/endpoint_server.py with the given flags; returns (base URL, log reader)."""
    procs = []

    def start(*args: str):
        log = tmp_path / f"server-{len(procs)}.jsonl"
        p = subprocess.Popen([sys.executable, str(REPO / "tests" / "endpoint_server.py"), "--log", str(log), *args],
                             stdout=subprocess.PIPE, text=True)
        procs.append(p)
        port = int(p.stdout.readline().split()[1])

        def received() -> list[dict]:
            return [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []

        return f"http://127.0.0.1:{port}/v1", received

    yield start
    for p in procs:
        p.kill()
        p.wait()
        p.stdout.close()


@pytest.fixture(scope="module")
def tok():
    from lmgauge.tokenizers import load_tokenizer

    return load_tokenizer("cl100k_base")


def perf(url: str, out, *args: str, check: bool = True, code: int = 0) -> subprocess.CompletedProcess:
    """``lmgauge perf``; ``code`` 4: a run built to fail mostly (exit 4: too little succeeded)."""
    proc = run_cli("perf", "--url", url, "--model", MODEL, "--output", str(out), *args, env=ENV, check=check and not code)
    if code:
        assert proc.returncode == code and "requests succeeded" in proc.stderr, proc.stderr
    return proc


def level(out) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    return summary["runs"][0] | {"_api": summary["api"]}


def requests_table(out) -> list[sqlite3.Row]:
    db = sqlite3.connect(out / "perf.sqlite")
    db.row_factory = sqlite3.Row
    return db.execute("select * from requests order by idx").fetchall()


# -- embeddings -------------------------------------------------------------------------
def test_embeddings_vectors_inputs_and_tables(server, tmp_path, tok):
    base, received = server("--dim", "16")
    out = tmp_path / "run"
    proc = perf(base + "/embeddings", out, "--dataset", "random_embedding", "--min-prompt-length", "12",
                "--max-prompt-length", "12", "--embedding-batch", "3", "--number", "6", "--concurrency", "2",
                "--embedding-dim", "16")
    r = level(out)
    assert r["_api"] == r["api"] == "embeddings"
    assert (r["requests"], r["succeeded"]) == (6, 6)
    assert r["embedding_dims"] == [16]
    assert r["inputs"]["min"] == r["inputs"]["max"] == 3 and r["inputs_total"] == 18
    assert r["input_tokens"]["min"] == r["input_tokens"]["max"] == 36  # the server's usage: 3 x 12 tokens
    assert r["usage_source"] == {"server": 6}
    assert r["input_token_throughput"] == pytest.approx(36 * 6 / r["duration_s"])
    assert r["input_throughput"] == pytest.approx(18 / r["duration_s"])
    assert r["ttft_s"]["count"] == 0 and r["tpot_s"]["count"] == 0 and r["latency_s"]["count"] == 6
    # what the server got: 3 texts of exactly 12 cl100k tokens per request, no sampling fields
    got = received()
    assert len(got) == 6 and {g["path"] for g in got} == {"/v1/embeddings"}
    for g in got:
        assert set(g["body"]) == {"model", "input"}
        assert len(g["body"]["input"]) == 3 and all(len(tok.encode(t)) == 12 for t in g["body"]["input"])
    rows = requests_table(out)
    assert [(x["inputs"], x["embedding_dim"], x["ttft_s"]) for x in rows] == [(3, 16, None)] * 6
    # the terminal shows latency and input figures, not TTFT
    assert "embeddings concurrency 2: 6/6 ok" in proc.stdout and "vectors of 16 numbers" in proc.stdout
    assert "Inputs/s" in proc.stdout and "Input toks/s" in proc.stdout and "TTFT" not in proc.stdout


def test_embeddings_wrong_vectors_fail_with_a_reason(server, tmp_path):
    base, _ = server("--dim", "16")
    lines = tmp_path / "lines.txt"
    lines.write_text("a fine text\nFAULT:dim text\nFAULT:count text\nFAULT:nonnumber text\n")
    out = tmp_path / "run"
    perf(base + "/embeddings", out, "--dataset", "line_by_line", "--dataset-path", str(lines), "--number", "4",
         "--embedding-dim", "16", code=4)
    r = level(out)
    assert (r["succeeded"], r["failed"]) == (1, 3)
    assert [x["error"] for x in requests_table(out)] == [
        None, "wrong embedding size: 17 numbers, --embedding-dim 16 expected",
        "wrong embeddings: 0 vectors for 1 inputs", "wrong embeddings: vector 0 holds something that is not a number"]
    assert r["failures"] == {"wrong embedding size": 1, "wrong embeddings": 2}

    # without --embedding-dim any length will do; with another one every request fails
    out2 = tmp_path / "run2"
    perf(base + "/embeddings", out2, "--dataset", "line_by_line", "--dataset-path", str(lines), "--number", "2")
    assert [x["error"] for x in requests_table(out2)] == [None, None]
    out3 = tmp_path / "run3"
    perf(base + "/embeddings", out3, "--dataset", "line_by_line", "--dataset-path", str(lines), "--number", "1",
         "--embedding-dim", "8", code=4)
    assert requests_table(out3)[0]["error"] == "wrong embedding size: 16 numbers, --embedding-dim 8 expected"


def test_embeddings_vector_lengths_differ_within_a_response(server, tmp_path):
    base, _ = server("--dim", "6", "--fault", "dim")
    out = tmp_path / "run"
    perf(base + "/embeddings", out, "--dataset", "random_embedding", "--min-prompt-length", "4",
         "--max-prompt-length", "4", "--embedding-batch", "2", "--number", "2", code=4)
    assert {x["error"] for x in requests_table(out)} == {"wrong embeddings: vectors of 6 and 7 numbers in one response"}


def test_embeddings_base64_vectors_and_no_usage(server, tmp_path):
    base, received = server("--dim", "24", "--no-usage")
    out = tmp_path / "run"
    perf(base, out, "--api", "embedding", "--dataset", "random_embedding", "--min-prompt-length", "5",
         "--max-prompt-length", "9", "--embedding-batch", "2", "--number", "4", "--tokenizer", "cl100k_base",
         "--extra-args", '{"encoding_format": "base64"}')
    r = level(out)
    assert r["succeeded"] == 4 and r["embedding_dims"] == [24]
    assert r["usage_source"] == {"tokenizer": 4}
    got = received()
    assert all(g["body"]["encoding_format"] == "base64" for g in got)
    from lmgauge.tokenizers import load_tokenizer

    count = load_tokenizer("cl100k_base").count
    assert [x["prompt_tokens"] for x in requests_table(out)] == [sum(count(t) for t in g["body"]["input"]) for g in got]


# -- rerank and score -------------------------------------------------------------------
def test_rerank_query_documents_and_scores(server, tmp_path, tok):
    base, received = server()
    out = tmp_path / "run"
    proc = perf(base + "/rerank", out, "--dataset", "random_rerank", "--rerank-documents", "4",
                "--rerank-query-length", "5", "--rerank-document-length", "7", "--number", "3")
    r = level(out)
    assert r["api"] == "rerank" and r["succeeded"] == 3
    assert r["inputs"]["mean"] == 4 and r["input_throughput"] == pytest.approx(12 / r["duration_s"])
    assert r["input_tokens"]["mean"] == 5 * 4 + 4 * 7  # vLLM counts the query once per document
    for g in received():
        body = g["body"]
        assert g["path"] == "/v1/rerank" and set(body) == {"model", "query", "documents"}
        assert len(tok.encode(body["query"])) == 5
        assert len(body["documents"]) == 4 and all(len(tok.encode(d)) == 7 for d in body["documents"])
    assert "documents/s" in proc.stdout and "TTFT" not in proc.stdout

    # top_n: fewer results than documents is right when asked for
    out2 = tmp_path / "run2"
    perf(base + "/rerank", out2, "--dataset", "random_rerank", "--rerank-documents", "4", "--number", "2",
         "--extra-args", '{"top_n": 2}')
    assert level(out2)["succeeded"] == 2


def test_rerank_and_score_wrong_answers_fail(server, tmp_path):
    base, _ = server("--fault", "nonnumber")
    out = tmp_path / "run"
    perf(base + "/rerank", out, "--dataset", "random_rerank", "--rerank-documents", "3", "--number", "1", code=4)
    assert requests_table(out)[0]["error"] == "wrong scores: results[0] has no numeric relevance_score"
    base2, _ = server("--fault", "count")
    out2 = tmp_path / "run2"
    perf(base2 + "/score", out2, "--dataset", "random_rerank", "--rerank-documents", "3", "--number", "1", code=4)
    assert requests_table(out2)[0]["error"] == "wrong scores: 2 data for 3 documents"


def test_score_sends_text_pairs(server, tmp_path):
    base, received = server()
    out = tmp_path / "run"
    perf(base, out, "--api", "score", "--dataset", "random_rerank", "--rerank-documents", "5", "--number", "2")
    r = level(out)
    assert r["api"] == "score" and r["succeeded"] == 2 and r["inputs"]["mean"] == 5
    for g in received():
        assert g["path"] == "/v1/score"
        assert isinstance(g["body"]["text_1"], str) and len(g["body"]["text_2"]) == 5


# -- the Responses API ------------------------------------------------------------------
def test_responses_stream_timings_and_usage(server, tmp_path):
    base, received = server("--ttft", "0.05", "--itl", "0.01", "--reasoning", "2", "--tokens", "4")
    out = tmp_path / "run"
    proc = perf(base + "/responses", out, "--dataset", "random", "--min-prompt-length", "6",
                "--max-prompt-length", "6", "--max-tokens", "4", "--number", "3", "--temperature", "0.5")
    r = level(out)
    assert r["api"] == "responses" and r["succeeded"] == 3
    assert r["usage_source"] == {"server": 3}
    assert r["output_tokens"]["mean"] == 6  # 2 reasoning + 4 text tokens, from response.completed
    assert r["input_tokens"]["mean"] == 6
    # TTFT counts the first reasoning delta, TTFC the first text delta (two ITLs later)
    assert r["ttft_s"]["min"] >= 0.05
    for x in requests_table(out):
        assert x["chunks"] == 6 and x["ttfc_s"] > x["ttft_s"] >= 0.05
    assert r["itl_s"]["count"] == 3 * 5
    body = received()[0]["body"]
    assert body["stream"] is True and body["max_output_tokens"] == 4 and body["temperature"] == 0.5
    assert isinstance(body["input"], list) and body["input"][0]["role"] == "user"
    assert "max_tokens" not in body and "stream_options" not in body
    assert "TTFT" in proc.stdout


@pytest.mark.parametrize("fault, error", [
    ("failed", "error event: the model crashed"),
    ("error", "error event: too many requests"),
    ("cut", "truncated stream: the body ended before response.completed"),
])
def test_responses_stream_failures(server, tmp_path, fault, error):
    base, _ = server("--fault", fault, "--tokens", "5")
    out = tmp_path / "run"
    perf(base + "/responses", out, "--prompt", "hello there", "--number", "1", code=4)
    assert requests_table(out)[0]["error"] == error


def test_responses_without_stream(server, tmp_path):
    base, received = server("--reasoning", "3", "--tokens", "5")
    out = tmp_path / "run"
    perf(base, out, "--api", "openai_responses", "--prompt", "one two three", "--number", "2", "--no-stream")
    r = level(out)
    assert r["succeeded"] == 2 and r["output_tokens"]["mean"] == 8 and r["input_tokens"]["mean"] == 3
    body = received()[0]["body"]
    assert "stream" not in body and body["input"] == [{"role": "user", "content": "one two three"}]


# -- images (random_vl) -----------------------------------------------------------------
def png_size(data: bytes) -> tuple[int, int]:
    """Check a PNG chunk by chunk (CRCs, IHDR, pixel data length) and return its size."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, size = 8, b"", None
    while pos < len(data):
        length, tag = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0] == zlib.crc32(tag + body)
        if tag == b"IHDR":
            w, h, depth, colour = struct.unpack(">IIBB", body[:10])
            assert (depth, colour) == (8, 2)
            size = (w, h)
        elif tag == b"IDAT":
            idat += body
        pos += 12 + length
        if tag == b"IEND":
            break
    assert pos == len(data) and size is not None
    assert len(zlib.decompress(idat)) == size[1] * (1 + 3 * size[0])
    return size


def sent_images(body: dict) -> tuple[list[str], list[str]]:
    """(text parts, image data URLs) of a chat request's single user message."""
    parts = body["messages"][0]["content"]
    return ([p["text"] for p in parts if p["type"] == "text"],
            [p["image_url"]["url"] for p in parts if p["type"] == "image_url"])


def test_random_vl_images_reach_the_server(server, tmp_path, tok):
    base, received = server()
    out = tmp_path / "run"
    proc = perf(base + "/chat/completions", out, "--dataset", "random_vl", "--image-num", "3", "--image-width", "40",
                "--image-height", "24", "--min-prompt-length", "10", "--max-prompt-length", "10", "--number", "4",
                "--max-tokens", "5")
    r = level(out)
    assert r["succeeded"] == 4 and r["api"] == "chat"
    assert r["images"]["per_request"]["mean"] == 3 and r["images"]["requests"] == 4
    assert r["images"]["width"]["min"] == r["images"]["width"]["max"] == 40
    assert r["images"]["height"]["max"] == 24
    assert r["input_tokens"]["mean"] == 10  # the server counted the text part only
    assert proc.stdout.count("images: 3 per request, 40x24 px") == 2  # under the level's table and in the summary
    assert [x["image_sizes"] for x in requests_table(out)] == ["40x24 40x24 40x24"] * 4
    seen = set()
    for g in received():
        texts, urls = sent_images(g["body"])
        assert len(texts) == 1 and len(tok.encode(texts[0])) == 10
        assert len(urls) == 3
        for url in urls:
            assert url.startswith("data:image/png;base64,")
            data = base64.b64decode(url.split(",", 1)[1], validate=True)
            assert png_size(data) == (40, 24)
            seen.add(data)
    assert len(seen) == 12  # every image its own

    # the same seed makes the same images
    base2, received2 = server()
    perf(base2 + "/chat/completions", tmp_path / "again", "--dataset", "random_vl", "--image-num", "3",
         "--image-width", "40", "--image-height", "24", "--min-prompt-length", "10", "--max-prompt-length", "10",
         "--number", "4", "--max-tokens", "5")
    first = sorted(sent_images(g["body"])[1] for g in received())
    assert sorted(sent_images(g["body"])[1] for g in received2()) == first


def jpeg_header(w: int, h: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, h, w, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    return b"\xff\xd8" + app0 + sof0 + b"\xff\xd9"


def test_random_vl_image_folder(server, tmp_path):
    from lmgauge_datasets.images import png_bytes
    import random

    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "a.png").write_bytes(png_bytes(30, 20, random.Random(1)))
    (folder / "b.jpg").write_bytes(jpeg_header(640, 480))
    (folder / "c.gif").write_bytes(b"GIF89a" + struct.pack("<HH", 12, 34) + b"\x00\x00\x00;")
    webp = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00" + (99).to_bytes(3, "little") + (49).to_bytes(3, "little")
    (folder / "d.webp").write_bytes(b"RIFF" + struct.pack("<I", 4 + len(webp)) + b"WEBP" + webp)
    (folder / ".hidden").write_text("ignored")
    base, received = server()
    out = tmp_path / "run"
    proc = perf(base + "/chat/completions", out, "--dataset", "random_vl", "--image-folder", str(folder),
                "--image-num", "3", "--min-prompt-length", "4", "--max-prompt-length", "4", "--number", "2")
    assert level(out)["succeeded"] == 2
    kinds = [url.split(";")[0] for g in received() for url in sent_images(g["body"])[1]]
    # file-name order, cycled: a b c | d a b
    assert kinds == ["data:image/png", "data:image/jpeg", "data:image/gif", "data:image/webp", "data:image/png",
                     "data:image/jpeg"]
    assert [x["image_sizes"] for x in requests_table(out)] == ["30x20 640x480 12x34", "100x50 30x20 640x480"]
    assert "images: 3 per request, 12–640 x 20–480 px" in proc.stdout
    first = received()[0]["body"]["messages"][0]["content"][1]["image_url"]["url"]
    assert base64.b64decode(first.split(",", 1)[1]) == (folder / "a.png").read_bytes()


# -- one-line errors, --api names, chat/completions unchanged --------------------------
def main_in_process(capsys, *args: str) -> subprocess.CompletedProcess:
    from lmgauge.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    cap = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), exit_info.value.code, cap.out, cap.err)


def test_bad_combinations_are_one_line(server, tmp_path, capsys):
    base, received = server()
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "notes.txt").write_text("not an image")

    def check(url, *args_and_needles):
        args = [a for a in args_and_needles if not a.startswith("~")]
        needles = [a[1:] for a in args_and_needles if a.startswith("~")]
        proc = main_in_process(capsys, "perf", "--url", url, "--model", MODEL, "--output", str(tmp_path / "x"), *args)
        assert_one_line_error(proc, *needles)

    check(base, "--api", "dashscope", "~unknown --api 'dashscope'", "~embeddings, rerank, score, responses")
    check(base + "/chat/completions", "--api", "embedding", "~does not match", "~/embeddings")
    check(base + "/completions", "--dataset", "random_vl", "--min-prompt-length", "3", "--max-prompt-length", "3",
          "~--dataset random_vl sends requests for chat or responses endpoints, not for completions")
    check(base + "/embeddings", "--dataset", "random_rerank", "~sends requests for rerank or score endpoints, not for embeddings")
    check(base + "/rerank", "--dataset", "random_embedding", "--min-prompt-length", "3", "--max-prompt-length", "3",
          "~--dataset random_embedding sends requests for embeddings endpoints, not for rerank")
    check(base + "/rerank", "--prompt", "hello", "~the rerank API needs a query and documents", "~random_rerank")
    check(base + "/chat/completions", "--dataset", "random_vl", "--min-prompt-length", "3", "--max-prompt-length", "3",
          "--image-folder", str(folder), "~notes.txt is not a PNG, JPEG, GIF or WebP image")
    check(base + "/chat/completions", "--dataset", "random_vl", "--min-prompt-length", "3", "--max-prompt-length", "3",
          "--image-folder", str(tmp_path / "nowhere"), "~no such folder")
    check(base + "/chat/completions", "--dataset", "random_vl", "~--dataset random_vl needs --min-prompt-length")
    assert received() == [] and not (tmp_path / "x").exists()


@pytest.mark.parametrize("api, path", [("openai_embedding", "/v1/embeddings"), ("rerank", "/v1/rerank"),
                                       ("openai_responses", "/v1/responses"), ("openai", "/v1/chat/completions"),
                                       ("completions", "/v1/completions")])
def test_evalscope_api_names_pick_the_endpoint(api, path):
    from lmgauge_backends.openai_http import split_url

    assert split_url("http://127.0.0.1:8000/v1", api)[1] == "http://127.0.0.1:8000" + path
    assert split_url("http://127.0.0.1:8000" + path, api)[1] == "http://127.0.0.1:8000" + path


def test_non_streaming_chat_and_completions_still_work(server, tmp_path):
    base, received = server()
    for path in ("/chat/completions", "/completions"):
        out = tmp_path / path.strip("/").replace("/", "_")
        perf(base + path, out, "--prompt", "four words in here", "--number", "3", "--max-tokens", "7", "--no-stream")
        r = level(out)
        assert r["succeeded"] == 3 and r["output_tokens"]["mean"] == 7 and r["input_tokens"]["mean"] == 4
        assert r["tpot_s"]["count"] == 0  # one body says nothing about the pace
    bodies = [g["body"] for g in received()]
    assert all("stream" not in b for b in bodies)
    assert sum("messages" in b for b in bodies) == 3 and sum("prompt" in b for b in bodies) == 3


def test_eval_refuses_an_embeddings_endpoint():
    import asyncio

    from lmgauge.errors import ConfigError
    from lmgauge.interfaces import BackendConfig
    from lmgauge.types import GenerationRequest
    from lmgauge_backends.openai_backend import OpenAIBackend

    backend = OpenAIBackend(BackendConfig(model="m", base_url="http://127.0.0.1:9/v1/embeddings", api="chat"))
    with pytest.raises(ConfigError, match="lmgauge eval needs a chat or completions endpoint"):
        asyncio.run(backend.generate(GenerationRequest(prompt="hi")))
