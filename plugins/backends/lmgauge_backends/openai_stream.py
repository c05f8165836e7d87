"""The perf hot path: one streaming request, timestamped where its bytes arrive.

``stream_request(backend, request, record)`` posts with ``stream: true`` and
``stream_options.include_usage`` (the payload comes from ``backend.payload``). ``record.sent`` is
taken when the request body is written to the socket (``send_stamp``, an aiohttp trace hook): on
Python < 3.12 aiohttp writes the body from a task of its own, one event-loop turn after ``post``
was called, and under load that turn can take milliseconds that are not the server's. The time
from the scheduled start to that write is the request's client queue delay. Then it reads the raw
body with ``readany()`` (each read returns whatever the socket delivered) and takes
``time.perf_counter()`` once per read, before any parsing. Lines are split with ``bytes.find``
on the read buffer (no per-byte work, no copies beyond one slice per line); the ``data:``
payload of each event is parsed by orjson. Events split across reads, ``\\r\\n`` line ends and
multi-line ``data:`` fields are handled as the SSE spec says.

A chunk counts for TTFT (``record.first_token``) when it carries content or reasoning text;
``record.first_content`` is the first chunk with visible content. Token counts come from the
server's ``usage`` (with ``usage.prompt_tokens_details.cached_tokens``, the prefix-cache hits,
when the server sends them); without it (llama.cpp ignores ``include_usage``) the backend's tokenizer
counts the text (``usage_source = "tokenizer"``), or, with no tokenizer, one token per chunk
(``"chunks"``). When the server sends usage with every chunk (vLLM's continuous usage stats),
the per-chunk token counts are taken from it.

Every failure ends in ``record.error`` as ``"<kind>: <detail>"``, never an exception: HTTP
status, connect/read timeouts (stalls), connection errors and resets, malformed SSE/JSON, an
error event inside the stream, a stream that ends before it is complete, a response without text.
A stream is complete at ``data: [DONE]``. A body that ends before any ``finish_reason`` is a
``truncated stream``; one that ends after a ``finish_reason`` but without ``[DONE]`` is a
``no [DONE]`` failure, unless ``--no-require-done`` accepts it (``transformers serve`` never
sends ``[DONE]``).
Error text is passed through secret redaction.

Why a hand-written SSE reader and not a library (the openai SDK, httpx-sse, aiohttp-sse-client):
this loop is the measured hot path of perf. A library parses every event into objects before the
caller can stamp it, adds per-chunk allocations and an extra task hop, and most stamp the chunk
only after parsing it. Here the clock is read once per socket read, before any parsing. Measured
in bench/RESULTS.md: TTFT error +0.5 ms p50 / +3.7 ms p99 at c=64 (EvalScope, built on a client
library: +17.5 / +30.2 ms), and 6x EvalScope's requests/s from one process.

Other endpoint kinds (``backend.api``): the Responses API streams typed events
(``_ResponsesParser``: ``response.output_text.delta`` is content, ``response.reasoning_text.delta``
and ``response.reasoning_summary_text.delta`` reasoning, ``response.completed`` /
``response.incomplete`` end the stream with its usage, ``response.failed`` and ``error`` events
fail it), read with the same per-read stamping. Embeddings, rerank and score answer with one
JSON body (``_pooling_response``): the request succeeds when the body holds one vector per
input, all of one length (``--embedding-dim`` when given), or one numeric score per document;
no TTFT or chunks, input tokens from the server's usage (else the tokenizer's count).
"""
from __future__ import annotations

import asyncio
import base64
import time

import orjson

from lmgauge.redaction import redact_text
from lmgauge.types import GenerationRequest, PerfRecord

from .openai_http import GENERATIVE, error_text

perf_counter = time.perf_counter


class _StreamError(Exception):
    pass


def send_stamp():
    """An ``aiohttp.TraceConfig`` that sets ``record.sent`` when the request body is written
    (requests posted with ``trace_request_ctx=record``; others are left alone)."""
    import aiohttp

    async def on_body_sent(session, ctx, params) -> None:
        record = ctx.trace_request_ctx
        if record is not None:
            record.sent = perf_counter()

    config = aiohttp.TraceConfig()
    config.on_request_chunk_sent.append(on_body_sent)
    return config


class _Parser:
    """State of one SSE stream: fills the record as events arrive."""

    __slots__ = ("record", "chat", "done", "finished", "usage", "data", "usage_per_chunk", "chunk_usage")
    TRUNCATED = "truncated stream: the body ended before a finish_reason and [DONE]"

    def __init__(self, record: PerfRecord, chat: bool):
        self.record = record
        self.chat = chat
        self.done = False                 # [DONE] seen
        self.finished = False             # a choice carried a finish_reason
        self.usage = None
        self.data: list[bytes] = []       # data lines of the event being read
        self.usage_per_chunk = True       # every content chunk carried usage so far
        self.chunk_usage: list[int] = []  # cumulative completion_tokens at each content chunk

    def feed(self, buf: bytes, now: float) -> int:
        """Handle every complete line in ``buf``; return how many bytes were used."""
        start = 0
        find = buf.find
        while True:
            nl = find(b"\n", start)
            if nl < 0:
                return start
            end = nl - 1 if nl > start and buf[nl - 1] == 13 else nl  # strip \r
            if end == start:  # blank line: dispatch the event
                if self.data:
                    self.event(self.data[0] if len(self.data) == 1 else b"\n".join(self.data), now)
                    self.data = []
            elif buf.startswith(b"data:", start):
                self.data.append(buf[start + 5:end])
            # comments (":"), event:, id:, retry: lines carry nothing for us
            start = nl + 1

    def finish(self, now: float) -> None:
        """End of body: an event not followed by a blank line still counts."""
        if self.data:
            self.event(b"\n".join(self.data), now)
            self.data = []

    def event(self, data: bytes, now: float) -> None:
        data = data.strip()
        if data == b"[DONE]":
            self.done = True
            return
        if not data:
            return
        obj = orjson.loads(data)
        if not isinstance(obj, dict):
            raise _StreamError("malformed SSE: an event is not a JSON object")
        err = obj.get("error")
        if err:
            raise _StreamError(f"error event: {error_text(orjson.dumps(obj))}")
        usage = obj.get("usage")
        if usage:
            self.usage = usage
        rec = self.record
        for ch in obj.get("choices") or ():
            if self.chat:
                delta = ch.get("delta") or ch.get("message") or {}
                text = delta.get("content")
                reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            else:
                text = ch.get("text")
                reasoning = None
            if ch.get("finish_reason"):
                self.finished = True
            if text or reasoning:
                rec.chunk_times.append(now)
                rec.chunk_texts.append(reasoning + text if (reasoning and text) else (text or reasoning))
                if rec.first_token is None:
                    rec.first_token = now
                if text and rec.first_content is None:
                    rec.first_content = now
                if self.usage_per_chunk:
                    ct = usage.get("completion_tokens") if usage else None
                    if ct is None:
                        self.usage_per_chunk = False
                    else:
                        self.chunk_usage.append(int(ct))


_CONTENT_EVENTS = frozenset(("response.output_text.delta", "response.refusal.delta"))
_REASONING_EVENTS = frozenset(("response.reasoning_text.delta", "response.reasoning_summary_text.delta"))


class _ResponsesParser(_Parser):
    """State of one Responses API stream (typed events; see the module doc). ``done`` and
    ``finished`` are set together, by ``response.completed`` or ``response.incomplete``."""

    __slots__ = ()
    TRUNCATED = "truncated stream: the body ended before response.completed"

    def __init__(self, record: PerfRecord):
        super().__init__(record, False)
        self.usage_per_chunk = False

    def event(self, data: bytes, now: float) -> None:
        data = data.strip()
        if not data or data == b"[DONE]":
            return
        obj = orjson.loads(data)
        if not isinstance(obj, dict):
            raise _StreamError("malformed SSE: an event is not a JSON object")
        kind = obj.get("type")
        if kind in _CONTENT_EVENTS or kind in _REASONING_EVENTS:
            text = obj.get("delta")
            if not text:
                return
            rec = self.record
            rec.chunk_times.append(now)
            rec.chunk_texts.append(text)
            if rec.first_token is None:
                rec.first_token = now
            if rec.first_content is None and kind in _CONTENT_EVENTS:
                rec.first_content = now
        elif kind == "response.completed" or kind == "response.incomplete":
            usage = (obj.get("response") or {}).get("usage")
            if usage:
                self.usage = _chat_usage(usage)
            self.done = self.finished = True
        elif kind == "response.failed" or kind == "error" or obj.get("error"):
            failed = obj.get("response") if kind == "response.failed" else obj
            raise _StreamError(f"error event: {error_text(orjson.dumps(failed or obj))}")


def _chat_usage(usage: dict) -> dict:
    """Responses API usage (input/output tokens) under the chat names ``_complete`` reads."""
    return {"prompt_tokens": usage.get("input_tokens"), "completion_tokens": usage.get("output_tokens"),
            "prompt_tokens_details": usage.get("input_tokens_details")}


async def stream_request(backend, request: GenerationRequest, record: PerfRecord, url: str | None = None) -> None:
    """Send one request (to ``url``, default ``backend.url``) and fill ``record`` in place (see
    the module doc). Never raises for a failed request (``asyncio.CancelledError`` passes through)."""
    import aiohttp

    stream = request.params.stream
    api = backend.api
    chat = api == "chat"
    if request.images:
        record.images = request.images
    try:
        payload = orjson.dumps(backend.payload(request, stream=stream))
    except Exception as exc:  # noqa: BLE001 - e.g. chat messages sent to the completions API
        record.sent = record.end = perf_counter()
        record.error = f"bad request: {getattr(exc, 'message', None) or exc}"[:200]
        return
    pooling = api not in GENERATIVE
    parser = _ResponsesParser(record) if api == "responses" else _Parser(record, chat)
    record.sent = perf_counter()
    try:
        async with backend.session.post(url or backend.url, data=payload, headers=backend.headers,
                                        trace_request_ctx=record) as resp:
            if resp.status >= 400:
                body = await resp.read()
                record.end = perf_counter()
                record.error = redact_text(f"HTTP {resp.status}: {error_text(body)}")
                return
            if pooling:
                body = await resp.read()
                record.end = perf_counter()
                _pooling_response(backend, request, record, body)
                return
            ctype = resp.headers.get("Content-Type", "")
            if not stream or not ctype.startswith("text/event-stream"):
                body = await resp.read()
                record.end = now = perf_counter()
                _whole_response(record, parser, body, now, api)
            else:
                read = resp.content.readany
                buf = b""
                while True:
                    chunk = await read()
                    if not chunk:
                        break
                    now = perf_counter()
                    buf = buf + chunk if buf else chunk
                    used = parser.feed(buf, now)
                    if used:
                        buf = buf[used:]
                record.end = now = perf_counter()
                if buf:
                    parser.feed(buf + b"\n", now)
                parser.finish(now)
    except asyncio.CancelledError:
        raise
    except (asyncio.TimeoutError, TimeoutError) as exc:
        record.end = perf_counter()
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            record.error = f"connect timeout: no connection within {backend.config.connect_timeout:g} s"
        else:
            record.error = f"read timeout: no data for {backend.config.read_timeout:g} s"
        return
    except aiohttp.ClientPayloadError as exc:
        record.end = perf_counter()
        record.error = redact_text(f"connection error: response cut off ({_short(exc)})")
        return
    except (aiohttp.ClientError, OSError) as exc:
        record.end = perf_counter()
        record.error = redact_text(f"connection error: {exc.__class__.__name__} {_short(exc)}".strip())
        return
    except orjson.JSONDecodeError:
        record.end = perf_counter()
        record.error = "malformed SSE: a data line is not valid JSON"
        return
    except _StreamError as exc:
        record.end = perf_counter()
        record.error = redact_text(str(exc))[:200]
        return
    except (AttributeError, TypeError, ValueError):
        record.end = perf_counter()
        record.error = "malformed SSE: unexpected JSON shape"
        return
    _complete(backend, record, parser, stream)


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:120]


def _whole_response(record: PerfRecord, parser: _Parser, body: bytes, now: float, api: str) -> None:
    """A non-streaming response (``--no-stream``, or a server that ignored ``stream``)."""
    data = orjson.loads(body)
    if not isinstance(data, dict):
        raise _StreamError("malformed response: not a JSON object")
    if data.get("error"):
        raise _StreamError(f"error response: {error_text(body)}")
    usage = data.get("usage")
    if api == "responses":
        text, reasoning = _responses_output(data)
        usage = _chat_usage(usage) if usage else None
    elif api == "chat":
        msg = ((data.get("choices") or [{}])[0]).get("message") or {}
        text = msg.get("content")
        reasoning = msg.get("reasoning_content") or msg.get("reasoning")
    else:
        text, reasoning = ((data.get("choices") or [{}])[0]).get("text"), None
    if text or reasoning:
        record.chunk_times.append(now)
        record.chunk_texts.append((reasoning or "") + (text or ""))
        record.first_token = now
        record.first_content = now if text else None
    parser.usage = usage
    parser.usage_per_chunk = False
    parser.done = True  # a complete JSON body is a complete response


def _responses_output(data: dict) -> tuple[str, str]:
    """(visible text, reasoning text) of a whole Responses API body: its ``message`` items'
    ``output_text`` parts and its ``reasoning`` items' text and summaries."""
    text: list[str] = []
    reasoning: list[str] = []
    for item in data.get("output") or ():
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            text += [p.get("text") or "" for p in item.get("content") or ()
                     if isinstance(p, dict) and p.get("type") in ("output_text", "refusal")]
        elif item.get("type") == "reasoning":
            reasoning += [p.get("text") or "" for p in [*(item.get("content") or ()), *(item.get("summary") or ())]
                          if isinstance(p, dict)]
    return "".join(text), "".join(reasoning)


def _pooling_response(backend, request: GenerationRequest, record: PerfRecord, body: bytes) -> None:
    """Check an embeddings / rerank / score body (see the module doc) and fill ``record``;
    raise _StreamError naming what is wrong."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise _StreamError("malformed response: the body is not JSON") from None
    if not isinstance(data, dict):
        raise _StreamError("malformed response: not a JSON object")
    if data.get("error"):
        raise _StreamError(f"error response: {error_text(body)}")
    if backend.api == "embeddings":
        record.inputs = len(request.inputs) if request.inputs is not None else 1
        record.embedding_dim = _embedding_dim(data.get("data"), record.inputs, backend.embedding_dim)
    else:
        record.inputs = len(request.documents or ())
        _check_scores(data, backend.api, record.inputs, request.params.extra_body.get("top_n"))
    usage = data.get("usage")
    tokens = (usage.get("prompt_tokens") or usage.get("total_tokens")) if isinstance(usage, dict) else None
    if tokens is not None:
        record.prompt_tokens = int(tokens)
        record.usage_source = "server"
    else:  # counted now, off the clock (record.end is taken)
        counts = [backend.count_tokens(t) for t in request.input_texts()]
        record.prompt_tokens = sum(counts) if counts and None not in counts else None
        record.usage_source = "tokenizer" if record.prompt_tokens is not None else "none"
    record.success = True


def _embedding_dim(items, inputs: int, want: int | None) -> int:
    """The length of every vector in an embeddings ``data`` list (float lists, or base64
    float32 strings for ``encoding_format: base64``)."""
    if not isinstance(items, list) or len(items) != inputs:
        got = len(items) if isinstance(items, list) else "no"
        raise _StreamError(f"wrong embeddings: {got} vectors for {inputs} inputs")
    dim = None
    for i, item in enumerate(items):
        vec = item.get("embedding") if isinstance(item, dict) else None
        if isinstance(vec, str):
            try:
                size = len(base64.b64decode(vec, validate=True))
            except ValueError:
                raise _StreamError(f"wrong embeddings: vector {i} is neither a list of numbers nor base64") from None
            if size % 4:
                raise _StreamError(f"wrong embeddings: vector {i} is {size} base64 bytes, not float32 numbers")
            length = size // 4
        elif isinstance(vec, list):
            try:
                sum(vec)  # TypeError for anything that is not a number
            except TypeError:
                raise _StreamError(f"wrong embeddings: vector {i} holds something that is not a number") from None
            length = len(vec)
        else:
            raise _StreamError(f"wrong embeddings: item {i} has no embedding vector")
        if dim is None:
            dim = length
        elif length != dim:
            raise _StreamError(f"wrong embeddings: vectors of {dim} and {length} numbers in one response")
    if not dim:
        raise _StreamError("wrong embeddings: empty vectors")
    if want and dim != want:
        raise _StreamError(f"wrong embedding size: {dim} numbers, --embedding-dim {want} expected")
    return dim


def _check_scores(data: dict, api: str, documents: int, top_n) -> None:
    """One numeric score per document: vLLM's rerank ``results[].relevance_score`` (``top_n``
    of them when fewer are asked for) or score ``data[].score``."""
    key, field = ("results", "relevance_score") if api == "rerank" else ("data", "score")
    items = data.get(key)
    expect = min(documents, int(top_n)) if api == "rerank" and top_n else documents
    if not isinstance(items, list) or len(items) != expect:
        got = len(items) if isinstance(items, list) else "no"
        raise _StreamError(f"wrong scores: {got} {key} for {expect} documents")
    for i, item in enumerate(items):
        value = item.get(field) if isinstance(item, dict) else None
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise _StreamError(f"wrong scores: {key}[{i}] has no numeric {field}")
        index = item.get("index", i)
        if not isinstance(index, int) or not 0 <= index < documents:
            raise _StreamError(f"wrong scores: {key}[{i}] has index {index!r} for {documents} documents")


def _complete(backend, record: PerfRecord, parser: _Parser, stream: bool) -> None:
    if not parser.done:
        if not parser.finished:
            record.error = parser.TRUNCATED
            return
        if backend.require_done:
            record.error = ("no [DONE]: the stream ended after its finish_reason without data: [DONE] "
                            "(pass --no-require-done if this server never sends it)")
            return
    if not record.chunk_times:
        record.error = "empty response: no content or reasoning text"
        return
    record.output_text = "".join(record.chunk_texts)
    usage = parser.usage
    if usage and usage.get("completion_tokens") is not None:
        record.completion_tokens = int(usage["completion_tokens"])
        pt = usage.get("prompt_tokens")
        record.prompt_tokens = int(pt) if pt is not None else None
        details = usage.get("prompt_tokens_details")
        if details:  # prefix-cache hits (OpenAI; vLLM --enable-prompt-tokens-details)
            cached = details.get("cached_tokens")
            record.cached_tokens = int(cached) if cached is not None else None
        record.usage_source = "server"
        cu = parser.chunk_usage
        if parser.usage_per_chunk and len(cu) == len(record.chunk_times) and cu[-1] == record.completion_tokens:
            record.chunk_tokens = [cu[0]] + [cu[i] - cu[i - 1] for i in range(1, len(cu))]
    else:
        counted = backend.count_tokens(record.output_text)
        if counted is not None:
            record.completion_tokens = counted
            record.usage_source = "tokenizer"
        else:
            record.completion_tokens = len(record.chunk_times)
            record.usage_source = "chunks"
    record.success = True
