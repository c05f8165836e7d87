"""``--backend transformers``: a model run in-process with Hugging Face transformers.

- ``--model`` takes the alias ``smollm2`` (embedded, no download), a ``.gguf`` file, a folder or
  a hub id. CUDA when available (bf16/fp16), else CPU (fp32); ``--device`` overrides.
- Eval: concurrent ``generate`` calls are gathered by one worker thread into batches of up to
  ``--batch-size`` requests with identical sampling settings (left padding), and ``n`` repeats
  come from ``num_return_sequences``.
- Perf: ``stream`` runs the same ``model.generate`` with a streamer that stamps each new token
  with ``time.perf_counter()`` as it is produced. Requests are served one at a time (like a
  server without batching): time waiting for the model counts in TTFT, model loading does not
  (it is reported as ``load_time_s``).

torch and transformers are imported only when the backend starts.
"""
from __future__ import annotations

import asyncio
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import click

from lmgauge import hookimpl
from lmgauge.errors import BackendError, ConfigError
from lmgauge.interfaces import Backend, BackendConfig
from lmgauge.types import Completion, GenerationParams, GenerationRequest, PerfRecord

from .models import resolve_model

DEFAULT_MAX_TOKENS = 1024


@dataclass
class _Job:
    request: GenerationRequest
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    prompt_ids: list[int] = field(default_factory=list)


def _sampling_key(p: GenerationParams) -> tuple:
    return (p.max_tokens, p.temperature, p.top_p, p.seed, p.n, tuple(p.stop or ()),
            tuple(sorted((k, str(v)) for k, v in p.extra_body.items())))


class TransformersBackend(Backend):
    name = "transformers"
    description = "in-process Hugging Face transformers (CUDA or CPU); --model smollm2 is embedded"
    process_local = True
    options = [
        click.Option(["--device"], "device", default=None, help="cpu, cuda, cuda:1 … (default: cuda if available, else cpu)."),
        click.Option(["--batch-size"], "batch_size", type=int, default=None, help="Requests generated together in eval (default 8)."),
        click.Option(["--dtype"], "dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16"]), default=None,
                     help="Weights dtype (default auto: bf16/fp16 on CUDA, fp32 on CPU)."),
    ]

    def __init__(self, config: BackendConfig):
        super().__init__(config)
        self.supports_n = True
        self.source = resolve_model(config.model)
        self.batch_size = int(config.options.get("batch_size") or 8)
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be ≥ 1, got {self.batch_size}")
        self.model: Any = None
        self.tokenizer: Any = None
        self.device = "cpu"
        self._jobs: queue.Queue = queue.Queue()
        self._worker: threading.Thread | None = None
        self._model_lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        t0 = time.perf_counter()
        await asyncio.to_thread(self._load)
        self.load_time_s = time.perf_counter() - t0
        self._worker = threading.Thread(target=self._batch_loop, name="lmgauge-transformers", daemon=True)
        self._worker.start()

    def _load(self) -> None:
        try:
            import torch
            import transformers
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError:
            raise ConfigError("the transformers backend needs torch and transformers",
                              'pip install "lmgauge-backends[transformers]"') from None
        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        opts = self.config.options
        device = opts.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: CUDA is not available here", "use --device cpu")
        dtype_name = opts.get("dtype") or "auto"
        if dtype_name == "auto":
            if device.startswith("cuda"):
                dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            else:
                dtype = torch.float32
        else:
            dtype = getattr(torch, dtype_name)
        src = self.source
        kwargs: dict[str, Any] = {"gguf_file": src.gguf_file} if src.gguf_file else {}
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(src.path, **kwargs)
            self.model = AutoModelForCausalLM.from_pretrained(src.path, dtype=dtype, **kwargs)
        except OSError as exc:
            raise BackendError(f"cannot load model {self.config.model!r}: {' '.join(str(exc).split())[:200]}",
                               "pass --model smollm2, a local folder or a .gguf file (the hub may be unreachable)") from None
        self.model.to(device)
        self.model.eval()
        self.device = device
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    async def close(self) -> None:
        if self._worker is not None:
            self._jobs.put(None)
            await asyncio.to_thread(self._worker.join, 30)
            self._worker = None

    # -- prompts and settings ----------------------------------------------------------
    def prompt_ids(self, request: GenerationRequest) -> list[int]:
        tok = self.tokenizer
        if self.config.api == "chat" and getattr(tok, "chat_template", None):
            messages = request.messages or [{"role": "user", "content": request.prompt or ""}]
            ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
            if isinstance(ids, dict) or hasattr(ids, "input_ids"):
                ids = ids["input_ids"]
            return list(ids)
        text = request.prompt if request.prompt is not None else "\n".join(m["content"] for m in request.messages or [])
        return tok.encode(text)

    def _gen_kwargs(self, p: GenerationParams, n: int) -> dict[str, Any]:
        kw: dict[str, Any] = {"max_new_tokens": p.max_tokens or DEFAULT_MAX_TOKENS,
                              "pad_token_id": self.tokenizer.pad_token_id, "num_return_sequences": n}
        if p.temperature:
            kw.update(do_sample=True, temperature=p.temperature)
            if p.top_p is not None:
                kw["top_p"] = p.top_p
        else:
            kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        extra = p.extra_body
        if extra.get("min_tokens"):
            kw["min_new_tokens"] = int(extra["min_tokens"])
        if extra.get("ignore_eos"):
            kw["min_new_tokens"] = kw["max_new_tokens"]
        if extra.get("top_k") is not None and p.temperature:
            kw["top_k"] = int(extra["top_k"])
        if extra.get("repetition_penalty") is not None:
            kw["repetition_penalty"] = float(extra["repetition_penalty"])
        if p.stop:
            kw["stop_strings"] = list(p.stop)
            kw["tokenizer"] = self.tokenizer
        return kw

    # -- eval: batched generation in one worker thread ----------------------------------
    async def generate(self, request: GenerationRequest) -> list[Completion]:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._jobs.put(_Job(request, fut, loop))
        return await fut

    def _batch_loop(self) -> None:
        pending: list[_Job] = []
        while True:
            if not pending:
                job = self._jobs.get()
                if job is None:
                    return
                pending.append(job)
            while True:  # drain what is queued right now
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    self._jobs.put(None)
                    break
                pending.append(job)
            key = _sampling_key(pending[0].request.params)
            batch = [j for j in pending if _sampling_key(j.request.params) == key][: self.batch_size]
            pending = [j for j in pending if j not in batch]
            try:
                results = self._run_batch(batch)
                for job, comps in zip(batch, results):
                    job.loop.call_soon_threadsafe(_settle, job.future, comps, None)
            except Exception as exc:  # noqa: BLE001 - report to every waiting request
                err = BackendError(f"generation failed: {exc.__class__.__name__}: {' '.join(str(exc).split())[:200]}")
                for job in batch:
                    job.loop.call_soon_threadsafe(_settle, job.future, None, err)

    def _run_batch(self, batch: list[_Job]) -> list[list[Completion]]:
        import torch

        params = batch[0].request.params
        n = max(1, params.n)
        ids = [self.prompt_ids(j.request) for j in batch]
        width = max(len(x) for x in ids)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in ids], device=self.device)
        attention = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids], device=self.device)
        kw = self._gen_kwargs(params, n)
        with self._model_lock, torch.inference_mode():
            if params.seed is not None:
                torch.manual_seed(params.seed)
            out = self.model.generate(input_ids=input_ids, attention_mask=attention, **kw)
        new = out[:, width:]
        eos = set(_as_list(self.model.generation_config.eos_token_id)) | {self.tokenizer.eos_token_id}
        results = []
        for b, prompt in enumerate(ids):
            comps = []
            for r in range(n):
                row = new[b * n + r].tolist()
                cut = len(row)
                for i, t in enumerate(row):
                    if t in eos:
                        cut = i
                        break
                finished = cut < len(row)
                tokens = row[:cut]
                comps.append(Completion(text=self.tokenizer.decode(tokens, skip_special_tokens=True),
                                        finish_reason="stop" if finished or len(tokens) < kw["max_new_tokens"] else "length",
                                        prompt_tokens=len(prompt), completion_tokens=len(tokens) + (1 if finished else 0)))
            results.append(comps)
        return results

    # -- perf: one request at a time, a timestamp per token ----------------------------
    async def stream(self, request: GenerationRequest, record: PerfRecord) -> None:
        await asyncio.to_thread(self._stream_sync, request, record)

    def _stream_sync(self, request: GenerationRequest, record: PerfRecord) -> None:
        import torch
        from transformers.generation.streamers import BaseStreamer

        record.sent = time.perf_counter()
        times: list[float] = record.chunk_times
        tokens: list[int] = []

        class Stamp(BaseStreamer):
            prompt_seen = False

            def put(self, value):  # called with the prompt first, then each new token
                now = time.perf_counter()
                if not self.prompt_seen:
                    self.prompt_seen = True
                    return
                for t in value.reshape(-1).tolist():
                    times.append(now)
                    record.chunk_tokens.append(1)
                    tokens.append(t)

            def end(self):
                pass

        try:
            ids = self.prompt_ids(request)
            kw = self._gen_kwargs(request.params, 1)
            with self._model_lock, torch.inference_mode():
                if request.params.seed is not None:
                    torch.manual_seed(request.params.seed)
                self.model.generate(input_ids=torch.tensor([ids], device=self.device),
                                    attention_mask=torch.ones(1, len(ids), dtype=torch.long, device=self.device),
                                    streamer=Stamp(), **kw)
        except Exception as exc:  # noqa: BLE001 - a failed request is recorded, not raised
            record.end = time.perf_counter()
            record.success = False
            record.error = f"generation failed: {exc.__class__.__name__}: {exc}"[:300]
            return
        record.end = time.perf_counter()
        eos = set(_as_list(self.model.generation_config.eos_token_id)) | {self.tokenizer.eos_token_id}
        record.output_text = self.tokenizer.decode([t for t in tokens if t not in eos], skip_special_tokens=True)
        record.prompt_tokens = len(ids)
        record.completion_tokens = len(tokens)
        record.usage_source = "server"
        if times:
            record.first_token = times[0]
            record.first_content = times[0]
        record.success = bool(tokens)
        if not tokens:
            record.error = "no tokens generated"

    def count_tokens(self, text: str) -> int | None:
        if self.tokenizer is None:
            return None
        return len(self.tokenizer.encode(text, add_special_tokens=False))


def _as_list(x: Any) -> list:
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _settle(fut: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if fut.done():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)


@hookimpl
def register_backends(register):
    register(TransformersBackend)
