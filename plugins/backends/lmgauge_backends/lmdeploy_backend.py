"""``--backend lmdeploy``: a model run in-process with lmdeploy's Python API (CUDA only).

Built on lmdeploy's documented pipeline API: ``lmdeploy.pipeline(model_path,
backend_config=TurbomindEngineConfig(...) | PytorchEngineConfig(...))``, ``pipe.infer(prompt,
gen_config=GenerationConfig(...), do_preprocess=...)`` for eval, ``pipe.stream_infer(...)`` for
perf, ``pipe.close()``. lmdeploy batches requests itself (continuous batching), so every
``generate``/``stream`` call is handed to the pipeline at once from its own thread.

- ``--model``: a local model folder (Hugging Face layout or lmdeploy-converted) or a hub id.
  GGUF files (and so ``smollm2``) are not something lmdeploy loads.
- ``--engine turbomind|pytorch`` picks the engine config class; lmdeploy itself falls back to
  the pytorch engine for models turbomind does not support. ``--tp`` and
  ``--cache-max-entry-count`` set the fields of the same names; ``--backend-config JSON`` sets
  any other field of the engine config (e.g. ``{"session_len": 32768, "max_batch_size": 256}``).
- ``GenerationConfig.n`` supports only 1, so ``supports_n`` is False (repeats are separate
  requests, seeds ``seed + r``).
- Streaming: each ``Response`` of ``stream_infer`` carries the new text and the running
  ``generate_token_len``; a chunk is stamped with ``time.perf_counter()`` when it reaches this
  thread, and its token count is the growth of ``generate_token_len`` (exact, engine-counted).

lmdeploy is imported only when the backend starts.
"""
from __future__ import annotations

import asyncio
import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import click

from lmgauge.plugin import (Backend, BackendConfig, BackendError, Completion, ConfigError, GenerationParams,
                            GenerationRequest, PerfRecord, hookimpl)

from .failures import RequestFailed, fail_record

DEFAULT_MAX_TOKENS = 1024
INSTALL_HINT = 'on a machine with an NVIDIA GPU and CUDA: pip install "lmgauge-backends[lmdeploy]"'
ENGINES = {"turbomind": "TurbomindEngineConfig", "pytorch": "PytorchEngineConfig"}


def _one_line(exc: BaseException) -> str:
    return f"{exc.__class__.__name__}: {' '.join(str(exc).split())[:200]}"


def _parse_backend_config(value: Any) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        return dict(value)
    import orjson

    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"--backend-config is not valid JSON: {exc}",
                          'e.g. --backend-config \'{"session_len": 32768}\'') from None
    if not isinstance(data, dict):
        raise ConfigError(f"--backend-config must be a JSON object, got {type(data).__name__}",
                          'e.g. --backend-config \'{"session_len": 32768}\'')
    return data


class LmdeployBackend(Backend):
    name = "lmdeploy"
    description = "in-process lmdeploy pipeline (TurboMind or PyTorch engine; needs CUDA)"
    process_local = True
    options = [
        click.Option(["--engine", "engine"], type=click.Choice(sorted(ENGINES)), default=None,
                     help="lmdeploy engine (default turbomind; lmdeploy falls back to pytorch for unsupported models)."),
        click.Option(["--tp", "tp"], type=int, default=None, help="Tensor parallelism: number of GPUs (default 1)."),
        click.Option(["--cache-max-entry-count", "cache_max_entry_count"], type=float, default=None,
                     help="Share of free GPU memory for the k/v cache (default lmdeploy's 0.8)."),
        click.Option(["--backend-config", "backend_config"], default=None, metavar="JSON",
                     help="Other engine config fields, e.g. '{\"session_len\": 32768, \"max_batch_size\": 256}'."),
    ]

    def __init__(self, config: BackendConfig):
        super().__init__(config)
        self.supports_n = False
        opts = config.options
        self.engine = opts.get("engine") or "turbomind"
        if self.engine not in ENGINES:
            raise ConfigError(f"--engine {self.engine!r}: use turbomind or pytorch")
        self.engine_fields = _parse_backend_config(opts.get("backend_config"))
        tp = opts.get("tp")
        if tp is not None:
            if int(tp) < 1:
                raise ConfigError(f"--tp must be ≥ 1, got {tp}")
            self.engine_fields["tp"] = int(tp)
        cme = opts.get("cache_max_entry_count")
        if cme is not None:
            if float(cme) <= 0:
                raise ConfigError(f"--cache-max-entry-count must be positive, got {cme}",
                                  "a share of free GPU memory such as 0.5 (or a block count ≥ 1)")
            self.engine_fields["cache_max_entry_count"] = float(cme)
        self.model_path = self._check_model(config.model)
        self.pipe: Any = None
        self.lmdeploy: Any = None
        self._tokenizer: Any = None  # lmdeploy.Tokenizer (not the HF API perf expects)
        self._pool: ThreadPoolExecutor | None = None

    @staticmethod
    def _check_model(model: str) -> str:
        if not model:
            raise ConfigError("no model given", "pass --model with a model folder or a hub id")
        if model == "smollm2" or model.endswith(".gguf"):
            raise ConfigError(f"--model {model}: lmdeploy does not load GGUF files",
                              "pass a Hugging Face model folder or hub id, or use --backend transformers")
        p = Path(model).expanduser()
        if p.exists():
            if not p.is_dir():
                raise ConfigError(f"--model {model}: not a model folder", "pass a folder with config.json, or a hub id")
            return str(p)
        if model.startswith((".", "/", "~")) or model.count("/") > 1:
            raise ConfigError(f"--model {model}: no such folder", "check the path")
        return model  # a hub id: lmdeploy downloads it

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        try:
            import lmdeploy
        except ImportError:
            raise ConfigError("the lmdeploy backend needs the lmdeploy package, which is not installed",
                              INSTALL_HINT) from None
        self.lmdeploy = lmdeploy
        engine_cfg = self._engine_config()
        t0 = time.perf_counter()
        try:
            self.pipe = await asyncio.to_thread(lmdeploy.pipeline, self.model_path, backend_config=engine_cfg,
                                                log_level="ERROR")
        except Exception as exc:  # noqa: BLE001 - no CUDA, bad folder, download failure …
            raise BackendError(f"lmdeploy could not load {self.config.model!r}: {_one_line(exc)}",
                               "lmdeploy needs an NVIDIA GPU with CUDA and a Hugging Face model folder or hub id") from None
        self.load_time_s = time.perf_counter() - t0
        if Path(self.model_path).is_dir():
            try:
                self._tokenizer = lmdeploy.Tokenizer(self.model_path)
            except Exception:  # noqa: BLE001 - token counting is optional
                self._tokenizer = None
        self._pool = ThreadPoolExecutor(max_workers=1024, thread_name_prefix="lmgauge-lmdeploy")

    def _engine_config(self) -> Any:
        cls = getattr(self.lmdeploy, ENGINES[self.engine])
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(self.engine_fields) - known)
        if unknown:
            raise ConfigError(f"--backend-config: {', '.join(unknown)} not a field of lmdeploy's {cls.__name__}",
                              f"known fields include: {', '.join(sorted(known)[:40])}")
        try:
            return cls(**self.engine_fields)
        except Exception as exc:  # noqa: BLE001 - lmdeploy validates values in __post_init__
            raise ConfigError(f"bad lmdeploy engine settings {self.engine_fields}: {_one_line(exc)}") from None

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        if self.pipe is not None:
            pipe, self.pipe = self.pipe, None
            try:
                await asyncio.to_thread(pipe.close)
            except Exception:  # noqa: BLE001 - closing must not fail the run
                pass

    # -- requests ----------------------------------------------------------------------
    def gen_config(self, p: GenerationParams, seed: int | None) -> Any:
        extra = p.extra_body
        kw: dict[str, Any] = {"n": 1, "max_new_tokens": p.max_tokens or DEFAULT_MAX_TOKENS}
        if p.temperature:
            kw.update(do_sample=True, temperature=float(p.temperature),
                      top_p=float(p.top_p) if p.top_p is not None else 1.0,
                      top_k=int(extra.get("top_k") or 0))  # 0: no top-k cut, as OpenAI servers
            if extra.get("min_p") is not None:
                kw["min_p"] = float(extra["min_p"])
        else:
            kw["do_sample"] = False  # greedy
        if seed is not None:
            kw["random_seed"] = int(seed)
        if p.stop:
            kw["stop_words"] = list(p.stop)
        if extra.get("min_tokens"):
            kw["min_new_tokens"] = int(extra["min_tokens"])
        if extra.get("ignore_eos"):
            kw["ignore_eos"] = True
        if extra.get("repetition_penalty") is not None:
            kw["repetition_penalty"] = float(extra["repetition_penalty"])
        return self.lmdeploy.GenerationConfig(**kw)

    def _prompt(self, request: GenerationRequest) -> tuple[Any, bool]:
        """(prompt, do_preprocess): chat messages get lmdeploy's chat template; the
        completions API sends the raw text."""
        if self.api == "chat":
            messages = request.messages or [{"role": "user", "content": request.prompt or ""}]
            return [dict(m) for m in messages], True
        text = request.prompt if request.prompt is not None else "\n".join(m["content"] for m in request.messages or [])
        return text, False

    def _run(self, fn: Any, *args: Any) -> Any:
        if self.pipe is None or self._pool is None:
            raise RequestFailed("client", "the lmdeploy backend is not started (or already closed)",
                                "the lmdeploy backend is not started (or already closed)")
        return asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def generate(self, request: GenerationRequest) -> list[Completion]:
        p = request.params
        seeds = [None if p.seed is None else p.seed + r for r in range(max(1, p.n))]
        return list(await asyncio.gather(*(self._run(self._infer_one, request, s) for s in seeds)))

    def _infer_one(self, request: GenerationRequest, seed: int | None) -> Completion:
        prompt, pre = self._prompt(request)
        try:
            resp = self.pipe.infer(prompt, gen_config=self.gen_config(request.params, seed), do_preprocess=pre)
        except Exception as exc:  # noqa: BLE001
            raise BackendError(f"lmdeploy generation failed: {_one_line(exc)}") from None
        if isinstance(resp, list):  # a single prompt gives a single Response; be tolerant
            resp = resp[0]
        if resp.finish_reason == "error":
            raise BackendError(f"lmdeploy error: {getattr(resp, 'error_message', None) or 'request failed'}")
        return Completion(text=resp.text, finish_reason="length" if resp.finish_reason == "length" else "stop",
                          prompt_tokens=resp.input_token_len, completion_tokens=resp.generate_token_len)

    async def stream(self, request: GenerationRequest, record: PerfRecord) -> None:
        record.sent = time.perf_counter()
        record.usage_source = "server"
        try:
            await self._run(self._stream_sync, request, record)
        except BackendError as exc:
            record.end = time.perf_counter()
            fail_record(record, exc)

    def _stream_sync(self, request: GenerationRequest, record: PerfRecord) -> None:
        perf = time.perf_counter
        prompt, pre = self._prompt(request)
        stream = request.params.stream
        seen = 0
        last = None
        texts: list[str] = []
        try:
            for out in self.pipe.stream_infer(prompt, gen_config=self.gen_config(request.params, request.params.seed),
                                              do_preprocess=pre):
                now = perf()
                last = out
                grown = out.generate_token_len - seen
                if grown > 0 or out.text:
                    seen = out.generate_token_len
                    if record.first_token is None:
                        record.first_token = now
                    record.chunk_times.append(now)
                    record.chunk_tokens.append(max(0, grown))
                    record.chunk_texts.append(out.text)
                    texts.append(out.text)
        except Exception as exc:  # noqa: BLE001 - a failed request is recorded, never raised
            record.end = perf()
            record.fail("server_error", f"lmdeploy generation failed: {_one_line(exc)}", "lmdeploy generation failed")
            return
        record.end = perf()
        if last is None or last.finish_reason == "error":
            msg = getattr(last, "error_message", None) if last is not None else "no response"
            record.fail("server_error", f"lmdeploy error: {msg or 'request failed'}", "lmdeploy error")
            return
        record.output_text = "".join(texts)
        record.prompt_tokens = last.input_token_len
        record.completion_tokens = last.generate_token_len
        if not stream and record.chunk_times:  # --no-stream: one answer at the end
            record.first_token = record.end
            record.chunk_times[:] = [record.end]
            record.chunk_tokens[:] = [sum(record.chunk_tokens)]
            record.chunk_texts[:] = [record.output_text]
        texts_at = [t for t, s in zip(record.chunk_times, record.chunk_texts) if s]
        record.first_content = texts_at[0] if texts_at else None
        record.success = True

    def count_tokens(self, text: str) -> int | None:
        if self._tokenizer is None:
            return None
        return len(self._tokenizer.encode(text, add_bos=False, add_special_tokens=False))


@hookimpl
def register_backends(register):
    register(LmdeployBackend)
