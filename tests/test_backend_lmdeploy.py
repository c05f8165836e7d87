"""Contract tests of the lmdeploy backend against a stand-in ``lmdeploy`` module.

lmdeploy needs CUDA, so it cannot run here. The stand-in below follows the signatures of
lmdeploy's documented Python API (checked against lmdeploy 0.16: ``lmdeploy.pipeline``,
``Pipeline.infer`` / ``stream_infer`` / ``close``, the ``GenerationConfig``,
``TurbomindEngineConfig`` and ``PytorchEngineConfig`` dataclasses with their validation, the
``Response`` dataclass whose streamed ``text`` is a delta and ``generate_token_len`` a running
count, and ``Tokenizer``). Its "engine" answers with scripted text one word-token at a time and
records every call, so the tests check what the backend sends and how it reads the answers.
It is the only mock in the test suite.
"""
from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import sqlite3
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import assert_one_line_error, run_cli

from lmgauge.errors import BackendError, ConfigError
from lmgauge.interfaces import BackendConfig
from lmgauge.types import GenerationParams, GenerationRequest, PerfRecord
from lmgauge_backends.lmdeploy_backend import LmdeployBackend

STANDIN = textwrap.dedent('''
    """Test stand-in for lmdeploy (signatures of lmdeploy 0.16's documented pipeline API)."""
    import dataclasses
    import json
    import os
    import random
    import threading
    import time
    from dataclasses import dataclass, field
    from typing import Literal

    __version__ = "0.16.0-standin"
    CALLS = []
    _LOCK = threading.Lock()


    def _record(kind, **kw):
        with _LOCK:
            CALLS.append(dict(kind=kind, **kw))
        path = os.environ.get("LMDEPLOY_STANDIN_LOG")
        if path:
            with _LOCK, open(path, "a") as f:
                f.write(json.dumps(dict(kind=kind, **kw), default=repr) + "\\n")


    @dataclass
    class GenerationConfig:
        n: int = 1
        max_new_tokens: int = 512
        do_sample: bool = False
        top_p: float = 1.0
        top_k: int = 50
        min_p: float = 0.0
        temperature: float = 0.8
        repetition_penalty: float = 1.0
        ignore_eos: bool = False
        random_seed: int = None
        stop_words: list = None
        bad_words: list = None
        stop_token_ids: list = None
        bad_token_ids: list = None
        min_new_tokens: int = None
        skip_special_tokens: bool = True
        spaces_between_special_tokens: bool = True
        logprobs: int = None
        response_format: dict = None
        logits_processors: list = None
        output_logits: str = None
        output_last_hidden_state: str = None
        include_stop_str_in_output: bool = False

        def __post_init__(self):
            assert type(self.n) is int and self.n > 0, "n is not a positive integer"
            assert self.top_p >= 0 and self.top_p <= 1
            assert self.top_k >= 0, "top_k can not be a negative integer"
            assert self.temperature >= 0 and self.temperature <= 2


    @dataclass
    class TurbomindEngineConfig:
        dtype: str = "auto"
        model_format: str = None
        tp: int = 1
        session_len: int = None
        max_batch_size: int = None
        cache_max_entry_count: float = 0.8
        cache_chunk_size: int = -1
        cache_block_seq_len: int = 64
        enable_prefix_caching: bool = False
        quant_policy: int = 0
        rope_scaling_factor: float = 0.0
        download_dir: str = None
        revision: str = None
        max_prefill_token_num: int = 8192
        num_tokens_per_iter: int = 0

        def __post_init__(self):
            assert self.dtype in ["auto", "float16", "bfloat16"]
            assert self.tp >= 1, "tp must be a positive integer"
            assert self.cache_max_entry_count > 0, "invalid cache_max_entry_count"


    @dataclass
    class PytorchEngineConfig:
        dtype: str = "auto"
        tp: int = 1
        session_len: int = None
        max_batch_size: int = None
        cache_max_entry_count: float = 0.8
        prefill_interval: int = 16
        block_size: int = 64
        num_cpu_blocks: int = 0
        num_gpu_blocks: int = 0
        max_prefill_token_num: int = 4096
        enable_prefix_caching: bool = False
        device_type: str = "cuda"
        eager_mode: bool = False
        download_dir: str = None
        revision: str = None
        quant_policy: int = 0

        def __post_init__(self):
            assert self.dtype in ["auto", "float16", "bfloat16"]
            assert self.tp >= 1, "invalid tp"
            assert 0 < self.cache_max_entry_count < 1, "invalid cache_max_entry_count"
            assert self.device_type in ["cuda", "ascend", "maca", "camb"], f"invalid device_type: {self.device_type}"


    @dataclass
    class Response:
        text: str
        generate_token_len: int
        input_token_len: int
        finish_reason: Literal["stop", "length", "error", "abort"] = None
        token_ids: list = field(default_factory=list)
        logprobs: list = None
        logits: object = None
        last_hidden_state: object = None
        index: int = 0
        routed_experts: object = None
        cached_tokens: int = 0
        error_code: str = None
        error_message: str = None


    class Tokenizer:
        def __init__(self, model_path: str, trust_remote_code: bool = False):
            self.model_path = model_path

        def encode(self, s: str, add_bos: bool = True, add_special_tokens: bool = True, **kwargs):
            return ([1] if add_bos else []) + [hash(w) % 1000 + 2 for w in s.split()]

        def decode(self, t, offset=None, skip_special_tokens=True):
            return " ".join(str(x) for x in t)


    def _template(prompt, do_preprocess):
        if isinstance(prompt, str):
            return f"<|user|> {prompt} <|assistant|>" if do_preprocess else prompt
        assert do_preprocess, "chat messages need do_preprocess=True"
        return " ".join(f"<|{m['role']}|> {m['content']}" for m in prompt) + " <|assistant|>"


    class Pipeline:
        def __init__(self, model_path: str, backend_config=None, chat_template_config=None, log_level: str = "WARNING",
                     max_log_len=None, trust_remote_code: bool = False, speculative_config=None,
                     allowed_media_domains=None, **kwargs):
            if not os.path.exists(model_path):
                raise OSError(f"cannot find {model_path} locally and the hub is unreachable")
            if not os.path.isfile(os.path.join(model_path, "config.json")):
                raise RuntimeError(f"{model_path} has no config.json")
            with open(os.path.join(model_path, "answers.json")) as f:
                self.answers = json.load(f)
            self.backend_config = backend_config
            _record("pipeline", model_path=model_path, backend_config=type(backend_config).__name__,
                    fields=dataclasses.asdict(backend_config) if backend_config is not None else None,
                    log_level=log_level)
            self.closed = False

        def _answer(self, text, gen_config):
            for key, answer in self.answers.items():
                if key in text:
                    break
            else:
                answer = "I do not know ."
            if answer == "FAIL":
                return None
            words = answer.split()
            if gen_config.do_sample:
                rng = random.Random(gen_config.random_seed)
                words = words + [rng.choice(["indeed", "surely", "yes"])]
            return words

        def _generate(self, prompt, gen_config, do_preprocess, index):
            assert not self.closed
            assert isinstance(gen_config, GenerationConfig)
            assert gen_config.n == 1, "Only 1 is supported now"
            text = _template(prompt, do_preprocess)
            _record("generate", prompt=prompt, do_preprocess=do_preprocess, gen_config=dataclasses.asdict(gen_config))
            n_in = len(text.split())
            words = self._answer(text, gen_config)
            if words is None:
                yield Response(text="", generate_token_len=0, input_token_len=n_in, finish_reason="error",
                               index=index, error_code="INTERNAL_ERROR", error_message="engine failure")
                return
            if gen_config.ignore_eos:
                words = (words * gen_config.max_new_tokens)[: gen_config.max_new_tokens]
            out, reason = [], "stop"
            for w in words:
                if len(out) >= gen_config.max_new_tokens:
                    reason = "length"
                    break
                if gen_config.stop_words and w in gen_config.stop_words:
                    break
                out.append(w)
                time.sleep(0.002)
                yield Response(text=(" " if len(out) > 1 else "") + w, generate_token_len=len(out), input_token_len=n_in,
                               token_ids=[len(out)], index=index)
            yield Response(text="", generate_token_len=len(out), input_token_len=n_in, finish_reason=reason,
                           index=index)

        @staticmethod
        def _is_single(prompts):
            return (isinstance(prompts, str) or (isinstance(prompts, tuple) and len(prompts) == 2)
                    or (isinstance(prompts, list) and len(prompts) > 0 and isinstance(prompts[0], dict)))

        def infer(self, prompts, gen_config=None, do_preprocess: bool = True, adapter_name=None, use_tqdm: bool = False,
                  **kwargs):
            single = self._is_single(prompts)
            items = [prompts] if single else prompts
            cfgs = gen_config if isinstance(gen_config, list) else [gen_config or GenerationConfig()] * len(items)
            outs = []
            for i, (p, c) in enumerate(zip(items, cfgs)):
                res = None
                for r in self._generate(p, c, do_preprocess, i):
                    if res is None:
                        res = r
                    else:
                        res.text += r.text
                        res.generate_token_len = r.generate_token_len
                        res.finish_reason = r.finish_reason
                        res.error_message = r.error_message
                outs.append(res)
            return outs[0] if single else outs

        def stream_infer(self, prompts, sessions=None, gen_config=None, do_preprocess: bool = True, adapter_name=None,
                         stream_response: bool = True, **kwargs):
            single = self._is_single(prompts)
            items = [prompts] if single else prompts
            cfgs = gen_config if isinstance(gen_config, list) else [gen_config or GenerationConfig()] * len(items)
            for i, (p, c) in enumerate(zip(items, cfgs)):
                yield from self._generate(p, c, do_preprocess, i)

        def __call__(self, prompts, gen_config=None, **kwargs):
            return self.infer(prompts, gen_config=gen_config, **kwargs)

        def close(self):
            _record("close")
            self.closed = True


    def pipeline(model_path: str, backend_config=None, chat_template_config=None, log_level: str = "WARNING",
                 max_log_len=None, trust_remote_code: bool = False, speculative_config=None,
                 allowed_media_domains=None, **kwargs):
        return Pipeline(model_path, backend_config=backend_config, chat_template_config=chat_template_config,
                        log_level=log_level, max_log_len=max_log_len, trust_remote_code=trust_remote_code,
                        speculative_config=speculative_config, allowed_media_domains=allowed_media_domains, **kwargs)
''')


@pytest.fixture
def standin(tmp_path, monkeypatch):
    """The stand-in package on sys.path (and PYTHONPATH for CLI runs) and a model folder."""
    pkg = tmp_path / "site" / "lmdeploy"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(STANDIN)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "lmdeploy", raising=False)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "answers.json").write_text(json.dumps({"2+2": "The answer is \\boxed{4} .", "break": "FAIL"}))
    import lmdeploy

    yield lmdeploy, model, tmp_path
    monkeypatch.delitem(sys.modules, "lmdeploy", raising=False)


def _backend(model: Path, api: str = "chat", **options) -> LmdeployBackend:
    return LmdeployBackend(BackendConfig(model=str(model), api=api, options=options))


def _req(text: str, **params) -> GenerationRequest:
    return GenerationRequest(messages=[{"role": "user", "content": text}], prompt=text,
                             params=GenerationParams(**params))


def _run(backend: LmdeployBackend, coro_fn):
    async def go():
        await backend.start()
        try:
            return await coro_fn()
        finally:
            await backend.close()

    return asyncio.run(go())


# -- without lmdeploy ------------------------------------------------------------------------
@pytest.mark.skipif(importlib.util.find_spec("lmdeploy") is not None, reason="lmdeploy is installed here")
def test_missing_lmdeploy_is_one_line_with_the_install_command(tmp_path):
    proc = run_cli("eval", "--backend", "lmdeploy", "--model", str(tmp_path), "--benchmark", "math_500",
                   "--limit", "1", "--output", str(tmp_path / "run"))
    assert_one_line_error(proc, "needs the lmdeploy package", 'pip install "lmgauge-backends[lmdeploy]"', "CUDA")


def test_gguf_and_missing_paths_are_refused(tmp_path):
    for model, needle in (("smollm2", "does not load GGUF"), (str(tmp_path / "m.gguf"), "does not load GGUF"),
                          (str(tmp_path / "nope" / "x"), "no such folder")):
        with pytest.raises(ConfigError, match=needle):
            _backend(Path(model)) if model != "smollm2" else LmdeployBackend(BackendConfig(model="smollm2"))
    with pytest.raises(ConfigError, match="--tp must be"):
        _backend(tmp_path, tp=0)
    with pytest.raises(ConfigError, match="not valid JSON"):
        _backend(tmp_path, backend_config="{session_len: 1}")
    with pytest.raises(ConfigError, match="must be a JSON object"):
        _backend(tmp_path, backend_config="[1]")
    assert LmdeployBackend(BackendConfig(model="internlm/internlm2_5-7b-chat")).model_path == "internlm/internlm2_5-7b-chat"


# -- engine configuration ------------------------------------------------------------------------
def test_engine_config_from_flags(standin):
    lmdeploy, model, _ = standin
    backend = _backend(model, tp=2, cache_max_entry_count=0.5, backend_config='{"session_len": 4096, "max_batch_size": 64}')
    _run(backend, lambda: asyncio.sleep(0))
    (call,) = [c for c in lmdeploy.CALLS if c["kind"] == "pipeline"]
    assert call["backend_config"] == "TurbomindEngineConfig"
    assert call["model_path"] == str(model) and call["log_level"] == "ERROR"
    f = call["fields"]
    assert (f["tp"], f["cache_max_entry_count"], f["session_len"], f["max_batch_size"]) == (2, 0.5, 4096, 64)
    assert backend.load_time_s is not None and backend.load_time_s >= 0
    assert lmdeploy.CALLS[-1]["kind"] == "close"


def test_pytorch_engine_and_its_validation(standin):
    lmdeploy, model, _ = standin
    _run(_backend(model, engine="pytorch", backend_config='{"eager_mode": true}'), lambda: asyncio.sleep(0))
    (call,) = [c for c in lmdeploy.CALLS if c["kind"] == "pipeline"]
    assert call["backend_config"] == "PytorchEngineConfig" and call["fields"]["eager_mode"] is True
    with pytest.raises(ConfigError, match="bad lmdeploy engine settings.*invalid cache_max_entry_count"):
        _run(_backend(model, engine="pytorch", cache_max_entry_count=1.5), lambda: asyncio.sleep(0))
    with pytest.raises(ConfigError, match="no_such_field not a field of lmdeploy's TurbomindEngineConfig"):
        _run(_backend(model, backend_config='{"no_such_field": 1}'), lambda: asyncio.sleep(0))


def test_load_failure_is_a_backend_error(standin):
    _, model, _ = standin
    (model / "config.json").unlink()
    with pytest.raises(BackendError, match="lmdeploy could not load .*no config.json"):
        _run(_backend(model), lambda: asyncio.sleep(0))


# -- eval ---------------------------------------------------------------------------------------------
def test_generate_maps_params_and_reads_the_response(standin):
    lmdeploy, model, _ = standin
    backend = _backend(model)
    assert backend.supports_n is False

    async def go():
        greedy = await backend.generate(_req("What is 2+2?", max_tokens=64))
        sampled = await backend.generate(_req("What is 2+2?", max_tokens=64, temperature=0.7, top_p=0.9, seed=5,
                                              stop=["."], extra_body={"top_k": 20, "min_tokens": 2}))
        cut = await backend.generate(_req("What is 2+2?", max_tokens=3))
        return greedy, sampled, cut

    (greedy,), (sampled,), (cut,) = _run(backend, go)
    gens = [c for c in lmdeploy.CALLS if c["kind"] == "generate"]
    assert gens[0]["prompt"] == [{"role": "user", "content": "What is 2+2?"}] and gens[0]["do_preprocess"] is True
    g0, g1 = gens[0]["gen_config"], gens[1]["gen_config"]
    assert g0["do_sample"] is False and g0["max_new_tokens"] == 64 and g0["n"] == 1 and g0["random_seed"] is None
    assert (g1["do_sample"], g1["temperature"], g1["top_p"], g1["top_k"], g1["random_seed"]) == (True, 0.7, 0.9, 20, 5)
    assert g1["stop_words"] == ["."] and g1["min_new_tokens"] == 2
    assert greedy.text == "The answer is \\boxed{4} ." and greedy.finish_reason == "stop"
    assert greedy.completion_tokens == 5
    assert greedy.prompt_tokens == len("<|user|> What is 2+2? <|assistant|>".split())
    assert sampled.text.startswith("The answer is \\boxed{4}") and "." not in sampled.text.split("}")[1]
    assert cut.finish_reason == "length" and cut.completion_tokens == 3 and cut.text == "The answer is"


def test_completions_api_sends_raw_text(standin):
    lmdeploy, model, _ = standin
    backend = _backend(model, api="completions")
    (c,) = _run(backend, lambda: backend.generate(_req("2+2 =", max_tokens=8)))
    (call,) = [x for x in lmdeploy.CALLS if x["kind"] == "generate"]
    assert call["prompt"] == "2+2 =" and call["do_preprocess"] is False
    assert c.prompt_tokens == 2


def test_repeats_are_separate_requests_with_seed_plus_r(standin):
    lmdeploy, model, _ = standin
    backend = _backend(model)
    comps = _run(backend, lambda: backend.generate(_req("What is 2+2?", temperature=1.0, seed=7, n=3)))
    assert len(comps) == 3
    seeds = sorted(c["gen_config"]["random_seed"] for c in lmdeploy.CALLS if c["kind"] == "generate")
    assert seeds == [7, 8, 9]
    assert all(c["gen_config"]["n"] == 1 for c in lmdeploy.CALLS if c["kind"] == "generate")


def test_engine_error_is_a_backend_error(standin):
    _, model, _ = standin
    backend = _backend(model)
    with pytest.raises(BackendError, match="lmdeploy error: engine failure"):
        _run(backend, lambda: backend.generate(_req("please break")))


# -- perf ---------------------------------------------------------------------------------------------
def test_stream_fills_the_record(standin):
    _, model, _ = standin
    backend = _backend(model)
    recs = [PerfRecord(index=i) for i in range(3)]

    async def go():
        await asyncio.gather(*(backend.stream(_req("What is 2+2?", max_tokens=16), r) for r in recs[:2]),
                             backend.stream(_req("please break"), recs[2]))

    _run(backend, go)
    for rec in recs[:2]:
        assert rec.success and rec.error is None and rec.usage_source == "server"
        assert rec.output_text == "The answer is \\boxed{4} ."
        assert rec.completion_tokens == 5 == sum(rec.chunk_tokens) == len(rec.chunk_times)
        assert rec.sent <= rec.first_token == rec.first_content == rec.chunk_times[0]
        assert all(a < b for a, b in zip(rec.chunk_times, rec.chunk_times[1:]))  # the engine sleeps 2 ms a token
        assert rec.chunk_times[-1] <= rec.end
        assert "".join(rec.chunk_texts) == rec.output_text
    bad = recs[2]
    assert bad.success is False and bad.error == "lmdeploy error: engine failure" and bad.end >= bad.sent


def test_count_tokens_uses_lmdeploys_tokenizer(standin):
    _, model, _ = standin
    backend = _backend(model)
    assert backend.count_tokens("one two three") is None  # not started
    assert _run(backend, lambda: asyncio.sleep(0, backend.count_tokens("one two three"))) == 3


# -- the commands, as a user runs them ----------------------------------------------------------------
def _cli_env(tmp_path: Path) -> dict:
    return {"PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), os.environ.get("PYTHONPATH", "")]),
            "LMDEPLOY_STANDIN_LOG": str(tmp_path / "calls.jsonl")}


def test_eval_command_with_lmdeploy(standin):
    _, model, tmp = standin
    from lmgauge_benchmarks.math_500 import Math500

    samples = Math500().load()[:2]
    (model / "answers.json").write_text(json.dumps({s.question[:60]: f"So the answer is \\boxed{{{s.gold}}} ." for s in samples}))
    out = tmp / "eval"
    proc = run_cli("eval", "--backend", "lmdeploy", "--model", str(model), "--benchmark", "math_500", "--limit", "2",
                   "--repeats", "2", "--temperature", "0.6", "--seed", "1", "--tp", "1", "--cache-max-entry-count", "0.4",
                   "--output", str(out), "--no-progress", env=_cli_env(tmp))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    records = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 4 and all(r["correct"] is True and r["error"] is None for r in records)
    calls = [json.loads(x) for x in (tmp / "calls.jsonl").read_text().splitlines()]
    pipeline_call = next(c for c in calls if c["kind"] == "pipeline")
    assert pipeline_call["fields"]["cache_max_entry_count"] == 0.4
    seeds = sorted(c["gen_config"]["random_seed"] for c in calls if c["kind"] == "generate")
    assert seeds == [1, 1, 2, 2]  # repeats are separate requests: seed + r


def test_perf_command_with_lmdeploy(standin):
    _, model, tmp = standin
    out = tmp / "perf"
    proc = run_cli("perf", "--backend", "lmdeploy", "--model", str(model), "--prompt", "What is 2+2?",
                   "--number", "6", "--concurrency", "3", "--max-tokens", "8", "--min-tokens", "8",
                   "--output", str(out), env=_cli_env(tmp))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    (run,) = summary["runs"]
    assert run["succeeded"] == 6 and summary["load_time_s"] is not None
    db = sqlite3.connect(out / "perf.sqlite")
    rows = db.execute("SELECT completion_tokens, usage_source, itl_json FROM requests").fetchall()
    db.close()
    assert all(r[0] == 8 and r[1] == "server" and len(json.loads(r[2])) == 7 for r in rows)
