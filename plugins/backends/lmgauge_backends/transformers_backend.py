"""``--backend transformers``: a model run in-process with Hugging Face transformers.

- ``--model`` takes the alias ``smollm2`` (embedded, no download), a ``.gguf`` file, a folder or
  a hub id. CUDA when available (bf16, or fp16 where bf16 is unsupported), else CPU (fp32);
  ``--device`` and ``--dtype`` override.
- One worker thread owns the model. Concurrent ``generate`` calls (eval) and ``stream`` calls
  (perf) queue up for it; it takes up to ``--batch-size`` queued requests with the same
  sampling settings and runs them as one left-padded ``model.generate`` batch. ``n`` completions
  of one request come from ``num_return_sequences``.
- Sampling with a seed is reproducible per request, whatever it is batched with: every output
  row draws its own Gumbel noise from its own generator (seed ``seed + r`` for the r-th of the
  request's ``n`` completions, so ``n=3, seed=s`` equals three ``n=1`` requests with seeds
  s, s+1, s+2). Temperature 0 or unset is greedy.
- Perf: ``stream`` stamps each generated token with ``time.perf_counter()`` in a streamer
  called by ``generate`` right after the token is chosen; a request's record is finished (and
  its caller resumed) the moment its last token is out, as a server would. Time spent waiting
  for the model counts in TTFT; model loading does not (it is ``load_time_s``).

torch and transformers are imported only when the backend starts.
"""
from __future__ import annotations

import asyncio
import queue
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import click

from lmgauge.plugin import (Backend, BackendConfig, BackendError, Completion, ConfigError, GenerationParams,
                            GenerationRequest, PerfRecord, hookimpl)

from .failures import RequestFailed, fail_record
from .models import resolve_model

DEFAULT_MAX_TOKENS = 1024
DEFAULT_BATCH_SIZE = 8
# extra_body fields this backend understands; others are ignored with one warning each
KNOWN_EXTRA = {"min_tokens", "ignore_eos", "top_k", "repetition_penalty"}


@dataclass
class _Job:
    kind: str  # "generate" | "stream"
    request: GenerationRequest
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    record: PerfRecord | None = None
    ids: list[int] = field(default_factory=list)


def _sampling_key(kind: str, p: GenerationParams) -> tuple:
    # the seed is not part of the key: each row has its own generator
    return (kind, p.max_tokens, p.temperature or 0.0, p.top_p, p.n if kind == "generate" else 1,
            tuple(p.stop or ()), tuple(sorted((k, repr(v)) for k, v in p.extra_body.items() if k in KNOWN_EXTRA)))


def _one_line(exc: BaseException) -> str:
    return f"{exc.__class__.__name__}: {' '.join(str(exc).split())[:200]}"


class TransformersBackend(Backend):
    name = "transformers"
    description = "in-process Hugging Face transformers (CUDA or CPU); --model smollm2 is embedded"
    process_local = True
    options = [
        click.Option(["--device", "device"], default=None,
                     help="cpu, cuda, cuda:1 … (default: cuda if available, else cpu)."),
        click.Option(["--batch-size", "batch_size"], type=int, default=None,
                     help=f"Requests generated together, in eval and in perf (default {DEFAULT_BATCH_SIZE})."),
        click.Option(["--dtype", "dtype"], type=click.Choice(["auto", "float32", "bfloat16", "float16"]), default=None,
                     help="Weights dtype (default auto: bf16/fp16 on CUDA, fp32 on CPU)."),
    ]

    def __init__(self, config: BackendConfig):
        super().__init__(config)
        self.supports_n = True
        self.source = resolve_model(config.model)
        bs = config.options.get("batch_size")
        self.batch_size = DEFAULT_BATCH_SIZE if bs is None else int(bs)
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be ≥ 1, got {self.batch_size}")
        self.model: Any = None
        self.tokenizer: Any = None
        self.device = "cpu"
        self.context_length: int | None = None
        self.eos_ids: set[int] = set()
        self._jobs: queue.Queue = queue.Queue()
        self._worker: threading.Thread | None = None
        self._warned: set[str] = set()
        self._rng = random.Random()
        self.batch_sizes: list[int] = []  # rows of each model.generate call (requests, not × n)

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        t0 = time.perf_counter()
        await asyncio.to_thread(self._load)
        self.load_time_s = time.perf_counter() - t0
        self._worker = threading.Thread(target=self._work, name="lmgauge-transformers", daemon=True)
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
        _quiet_gguf_progress()
        opts = self.config.options
        device = opts.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            torch_device = torch.device(device)
        except (RuntimeError, ValueError):
            raise ConfigError(f"--device {device}: not a torch device", "use cpu, cuda or cuda:N") from None
        if torch_device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: CUDA is not available here", "use --device cpu")
        dtype_name = opts.get("dtype") or "auto"
        if dtype_name == "auto":
            if torch_device.type == "cuda":
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
            self.model.to(torch_device)
        except Exception as exc:  # noqa: BLE001 - OSError (missing/offline), ValueError (bad file) …
            raise BackendError(f"cannot load model {self.config.model!r}: {_one_line(exc)}",
                               "pass --model smollm2, a local model folder or a .gguf file "
                               "(the hub is only reached when online)") from None
        self.model.eval()
        self.device = str(torch_device)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.eos_ids = set(_as_list(self.model.generation_config.eos_token_id))
        if self.tokenizer.eos_token_id is not None:
            self.eos_ids.add(self.tokenizer.eos_token_id)
        self.context_length = getattr(self.model.config, "max_position_embeddings", None)

    async def close(self) -> None:
        if self._worker is not None:
            self._jobs.put(None)
            await asyncio.to_thread(self._worker.join, 60)
            self._worker = None
        self.model = None

    # -- prompts and settings ----------------------------------------------------------
    def prompt_ids(self, request: GenerationRequest) -> list[int]:
        """Token ids the model sees: chat template (``--api chat``) or the raw prompt."""
        tok = self.tokenizer
        if self.api == "chat" and getattr(tok, "chat_template", None):
            messages = request.messages or [{"role": "user", "content": request.prompt or ""}]
            ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
            if not isinstance(ids, list):  # a BatchEncoding in recent transformers
                ids = ids["input_ids"]
            return list(ids)
        text = request.prompt if request.prompt is not None else "\n".join(m["content"] for m in request.messages or [])
        return list(tok.encode(text))

    def _warn_extra(self, p: GenerationParams) -> None:
        for key in p.extra_body:
            if key not in KNOWN_EXTRA and key not in self._warned:
                self._warned.add(key)
                print(f"lmgauge: warning: the transformers backend ignores the request field {key!r}",
                      file=sys.stderr)

    def _gen_kwargs(self, p: GenerationParams, n: int, seeds: list[int], width: int) -> dict[str, Any]:
        from transformers import LogitsProcessorList

        max_new = p.max_tokens or DEFAULT_MAX_TOKENS
        if self.context_length:
            max_new = max(1, min(max_new, self.context_length - width))
        kw: dict[str, Any] = {"max_new_tokens": max_new, "pad_token_id": self.tokenizer.pad_token_id,
                              "num_return_sequences": n, "do_sample": False,
                              "temperature": None, "top_p": None, "top_k": None}
        extra = p.extra_body
        if extra.get("min_tokens"):
            kw["min_new_tokens"] = min(max_new, int(extra["min_tokens"]))
        if extra.get("ignore_eos"):
            kw["min_new_tokens"] = max_new
        if extra.get("repetition_penalty") is not None:
            kw["repetition_penalty"] = float(extra["repetition_penalty"])
        if p.temperature or n > 1:
            # The choice is made by RowSampler (seeded per row; plain argmax when greedy), which
            # leaves a single possible token; do_sample only because transformers refuses
            # num_return_sequences > 1 with greedy search. Its own warpers are switched off.
            top_k = int(extra["top_k"]) if extra.get("top_k") and p.temperature else None
            kw.update(do_sample=True, temperature=1.0, top_p=1.0, top_k=0)
            kw["logits_processor"] = LogitsProcessorList(
                [RowSampler(seeds, p.temperature or 0.0, p.top_p, top_k, self.device)])
        if p.stop:
            kw["stop_strings"] = list(p.stop)
            kw["tokenizer"] = self.tokenizer
        return kw

    def _row_seeds(self, jobs: list[_Job], n: int) -> list[int]:
        seeds = []
        for job in jobs:
            base = job.request.params.seed
            if base is None:
                base = self._rng.randrange(2**62)
            seeds.extend(base + r for r in range(n))
        return seeds

    # -- the public async API ----------------------------------------------------------
    async def generate(self, request: GenerationRequest) -> list[Completion]:
        return await self._submit(_Job("generate", request, *self._future()))

    async def stream(self, request: GenerationRequest, record: PerfRecord) -> None:
        record.sent = time.perf_counter()  # waiting for the model counts in TTFT
        record.usage_source = "server"
        try:
            await self._submit(_Job("stream", request, *self._future(), record=record))
        except BackendError as exc:
            record.end = record.end or time.perf_counter()
            fail_record(record, exc)

    def _future(self) -> tuple[asyncio.Future, asyncio.AbstractEventLoop]:
        loop = asyncio.get_running_loop()
        return loop.create_future(), loop

    async def _submit(self, job: _Job) -> Any:
        if self._worker is None:
            raise RequestFailed("client", "the transformers backend is not started (or already closed)",
                                "the transformers backend is not started (or already closed)")
        self._warn_extra(job.request.params)
        self._jobs.put(job)
        return await job.future

    def count_tokens(self, text: str) -> int | None:
        if self.tokenizer is None:
            return None
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def own_tokenizer(self):
        from lmgauge.plugin import Tokenizer

        return Tokenizer(self.config.model, self.tokenizer, "hf") if self.tokenizer is not None else None

    # -- the worker thread -------------------------------------------------------------
    def _work(self) -> None:
        pending: list[_Job] = []
        stopping = False
        while True:
            if not pending:
                if stopping:
                    return
                job = self._jobs.get()
                if job is None:
                    return
                pending.append(job)
            while True:  # take everything queued right now
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                pending.append(job)
            pending = [j for j in pending if not j.future.done()]  # cancelled by the caller
            if not pending:
                continue
            key = _sampling_key(pending[0].kind, pending[0].request.params)
            batch = [j for j in pending if _sampling_key(j.kind, j.request.params) == key][: self.batch_size]
            taken = {id(j) for j in batch}
            pending = [j for j in pending if id(j) not in taken]
            try:
                batch = self._tokenize(batch)
                if not batch:
                    continue
                self.batch_sizes.append(len(batch))
                if batch[0].kind == "generate":
                    results = self._generate_batch(batch)
                    for job, comps in zip(batch, results):
                        _resolve(job, comps)
                else:
                    self._stream_batch(batch)
            except Exception as exc:  # noqa: BLE001 - reported to every waiting request
                err = RequestFailed("server_error", "generation failed", f"generation failed: {_one_line(exc)}")
                for job in batch:
                    if job.record is not None and not job.record.end:
                        job.record.end = time.perf_counter()
                    _resolve(job, None, err)

    def _tokenize(self, batch: list[_Job]) -> list[_Job]:
        ok = []
        for job in batch:
            try:
                job.ids = self.prompt_ids(job.request)
            except Exception as exc:  # noqa: BLE001
                _resolve(job, None, RequestFailed("client", "cannot build the prompt",
                                                  f"cannot build the prompt: {_one_line(exc)}"))
                continue
            if not job.ids:
                _resolve(job, None, RequestFailed("client", "empty prompt", "empty prompt"))
                continue
            if self.context_length and len(job.ids) >= self.context_length:
                _resolve(job, None, RequestFailed(
                    "client", "prompt longer than the model's context",
                    f"prompt has {len(job.ids)} tokens; the model's context is {self.context_length}",
                    "shorten the prompt"))
                continue
            ok.append(job)
        return ok

    def _inputs(self, batch: list[_Job]) -> tuple[Any, Any, int]:
        import torch

        width = max(len(j.ids) for j in batch)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(j.ids)) + j.ids for j in batch], device=self.device)
        attention = torch.tensor([[0] * (width - len(j.ids)) + [1] * len(j.ids) for j in batch], device=self.device)
        return input_ids, attention, width

    def _generate_batch(self, batch: list[_Job]) -> list[list[Completion]]:
        import torch

        params = batch[0].request.params
        n = max(1, params.n)
        input_ids, attention, width = self._inputs(batch)
        kw = self._gen_kwargs(params, n, self._row_seeds(batch, n), width)
        with torch.inference_mode():
            out = self.model.generate(input_ids=input_ids, attention_mask=attention, **kw)
        new = out[:, width:].tolist()
        results = []
        for b, job in enumerate(batch):
            comps = []
            for r in range(n):
                tokens, finished = _cut(new[b * n + r], self.eos_ids)
                text, stopped = _apply_stop(self.tokenizer.decode(tokens, skip_special_tokens=True), params.stop)
                count = len(tokens) + (1 if finished else 0)
                length = not finished and not stopped and count >= kw["max_new_tokens"]
                comps.append(Completion(text=text, finish_reason="length" if length else "stop",
                                        prompt_tokens=len(job.ids), completion_tokens=count))
            results.append(comps)
        return results

    def _stream_batch(self, batch: list[_Job]) -> None:
        import torch

        params = batch[0].request.params
        input_ids, attention, width = self._inputs(batch)
        kw = self._gen_kwargs(params, 1, self._row_seeds(batch, 1), width)
        streamer = _Stamps(self, batch, kw["max_new_tokens"], params)
        with torch.inference_mode():
            self.model.generate(input_ids=input_ids, attention_mask=attention, streamer=streamer, **kw)
        streamer.end()


class RowSampler:
    """Chooses each row's next token itself and leaves only that token possible.

    Sampling uses the Gumbel-max trick: ``argmax(logits/T + G)`` after top-k / top-p filtering,
    with G drawn per row from that row's own ``torch.Generator``, so a row's sample depends on
    its seed only, not on what it is batched with. Temperature 0 is plain argmax (greedy).
    """

    def __init__(self, seeds: list[int], temperature: float, top_p: float | None, top_k: int | None, device: str):
        import torch

        self.temperature = float(temperature or 0.0)
        self.top_p = top_p
        self.top_k = top_k
        self.generators = ([torch.Generator(device=device).manual_seed(int(s) % (2**63)) for s in seeds]
                           if self.temperature > 0 else [])

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        scores = scores.float()
        if self.temperature > 0:
            scores = scores / self.temperature
            if self.top_k and self.top_k < scores.shape[-1]:
                kth = torch.topk(scores, self.top_k, dim=-1).values[..., -1:]
                scores = scores.masked_fill(scores < kth, float("-inf"))
            if self.top_p is not None and self.top_p < 1.0:
                sorted_scores, order = torch.sort(scores, descending=True, dim=-1)
                probs = sorted_scores.softmax(dim=-1)
                drop = probs.cumsum(dim=-1) - probs >= self.top_p  # keep the token that crosses p
                scores = scores.masked_fill(torch.zeros_like(drop).scatter(-1, order, drop), float("-inf"))
            vocab = scores.shape[-1]
            u = torch.stack([torch.rand(vocab, generator=g, device=scores.device) for g in self.generators])
            scores = scores - torch.log(-torch.log(u.clamp_(1e-12, 1.0 - 1e-7)))
        choice = scores.argmax(dim=-1, keepdim=True)
        return torch.full_like(scores, float("-inf")).scatter_(-1, choice, 0.0)


class _Row:
    __slots__ = ("job", "tokens", "count", "done")

    def __init__(self, job: _Job):
        self.job = job
        self.tokens: list[int] = []
        self.count = 0
        self.done = False


class _Stamps:
    """A transformers streamer: ``put`` is called with the prompt, then with each step's new
    tokens (one per row) right after they are chosen. Each row's record is completed and its
    caller resumed as soon as that row ends."""

    def __init__(self, backend: TransformersBackend, batch: list[_Job], max_new: int, params: GenerationParams):
        self.backend = backend
        self.rows = [_Row(j) for j in batch]
        self.max_new = max_new
        self.stop = params.stop
        self.stream = params.stream
        self.eos = backend.eos_ids
        self.prompt_seen = False

    def put(self, value: Any) -> None:
        now = time.perf_counter()
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        for row, tok in zip(self.rows, value.reshape(-1).tolist()):
            if row.done:
                continue
            rec = row.job.record
            row.count += 1
            if rec.first_token is None:
                rec.first_token = now
            if tok in self.eos:
                self._finish(row, now)
                continue
            row.tokens.append(tok)
            rec.chunk_times.append(now)
            rec.chunk_tokens.append(1)
            if self.stop and _apply_stop(self.backend.tokenizer.decode(row.tokens, skip_special_tokens=True), self.stop)[1]:
                self._finish(row, now)
            elif row.count >= self.max_new:
                self._finish(row, now)

    def end(self) -> None:
        now = time.perf_counter()
        for row in self.rows:
            if not row.done:
                self._finish(row, now)

    def _finish(self, row: _Row, now: float) -> None:
        row.done = True
        rec = row.job.record
        rec.end = now
        rec.prompt_tokens = len(row.job.ids)
        rec.completion_tokens = row.count
        rec.usage_source = "server"
        rec.output_text = _apply_stop(self.backend.tokenizer.decode(row.tokens, skip_special_tokens=True), self.stop)[0]
        if not self.stream:  # --no-stream: the whole answer arrives at the end
            rec.first_token = now
            rec.chunk_times[:] = [now] if row.tokens else []
            rec.chunk_tokens[:] = [len(row.tokens)] if row.tokens else []
        rec.first_content = rec.chunk_times[0] if rec.chunk_times else None
        if row.count > 0:
            rec.success = True
        else:
            rec.fail("empty", "no tokens generated", "no tokens generated")
        _resolve(row.job, None)


def _cut(row: list[int], eos: set[int]) -> tuple[list[int], bool]:
    for i, t in enumerate(row):
        if t in eos:
            return row[:i], True
    return row, False


def _apply_stop(text: str, stop: list[str] | None) -> tuple[str, bool]:
    """OpenAI semantics: the text ends before the first stop string."""
    if not stop:
        return text, False
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def _quiet_gguf_progress() -> None:
    """transformers shows an unconditional tqdm bar while de-quantizing GGUF tensors."""
    try:
        import functools

        from transformers import modeling_gguf_pytorch_utils as mod
    except ImportError:
        return
    if not getattr(mod.tqdm, "_lmgauge_quiet", False):
        quiet = functools.partial(mod.tqdm, disable=True)
        quiet._lmgauge_quiet = True  # type: ignore[attr-defined]
        mod.tqdm = quiet


def _as_list(x: Any) -> list:
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _resolve(job: _Job, result: Any, error: BaseException | None = None) -> None:
    try:
        job.loop.call_soon_threadsafe(_settle, job.future, result, error)
    except RuntimeError:  # the caller's loop is closed: nobody is waiting any more
        pass


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
