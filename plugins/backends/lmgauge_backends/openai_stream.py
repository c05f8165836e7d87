"""The perf hot path: one streaming request, timestamped where its bytes arrive.

``stream_request(backend, request, record)`` posts with ``stream: true`` and
``stream_options.include_usage`` (the payload comes from the backend's endpoint kind).
``record.sent`` is taken when the request body is written to the socket (``send_stamp``, an
aiohttp trace hook): on Python < 3.12 aiohttp writes the body from a task of its own, one
event-loop turn after ``post`` was called, and under load that turn can take milliseconds that
are not the server's. The time from the scheduled start to that write is the request's client
queue delay. Then it reads the raw
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

Every failure is marked with ``record.fail(kind, error, group)``, never an exception: a typed
kind from the core's ``FAILURE_KINDS``, the whole text (``"<group>: <detail>"``) and the group
the summary counts it under. HTTP status (``http``, ``HTTP 500``), connect/read timeouts
(``timeout``, ``connect timeout`` / ``read timeout``: stalls), connection errors and resets
(``connection``, ``connection error (ServerDisconnectedError)``, ``connection error (response cut
off)``), malformed SSE/JSON (``protocol``), an error event inside the stream (``server_error``,
grouped by its text), a stream that ends before it is complete (``protocol``), a response
without text (``empty``), a body that is not the answer asked for (``invalid``), a request the
endpoint cannot take (``client``, ``bad request: ...``).
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

What differs from one endpoint kind to the next (the request body, how SSE events or a whole
body become chunks, texts and usage, when a response is complete, what counts as an answer) is
the kind's, in endpoint_kinds.py: ``backend.kind.body`` builds the payload, ``kind.parser`` gives
the per-request state (an ``SSEParser`` for text kinds), ``kind.whole`` reads a one-body answer,
``kind.complete`` decides success and token counts. This module is the same for every kind: send,
stamp, read, and turn failures into typed ``record.fail`` calls.
"""
from __future__ import annotations

import asyncio
import time

import orjson

from lmgauge.plugin import GenerationRequest, PerfRecord, redact

from .endpoint_kinds import ChoicesParser, FailedRequest, error_text

perf_counter = time.perf_counter

# the names tests/test_perf_units.py (the core's SSE tests) imports
_Parser = ChoicesParser
_StreamError = FailedRequest


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


async def stream_request(backend, request: GenerationRequest, record: PerfRecord, url: str | None = None) -> None:
    """Send one request (to ``url``, default ``backend.url``) and fill ``record`` in place (see
    the module doc). Never raises for a failed request (``asyncio.CancelledError`` passes through)."""
    import aiohttp

    stream = request.params.stream
    kind = backend.kind
    if request.images:
        record.images = request.images
    try:
        payload = orjson.dumps(kind.body(request, stream=stream))
    except Exception as exc:  # noqa: BLE001 - e.g. chat messages sent to the completions API
        record.sent = record.end = perf_counter()
        error = f"bad request: {getattr(exc, 'message', None) or exc}"[:200]
        record.fail("client", error, error[:80])
        return
    state = kind.parser(record, request)
    record.sent = perf_counter()
    try:
        async with backend.session.post(url or backend.url, data=payload, headers=backend.headers,
                                        trace_request_ctx=record) as resp:
            if resp.status >= 400:
                body = await resp.read()
                record.end = perf_counter()
                record.fail("http", redact(f"HTTP {resp.status}: {error_text(body)}"), f"HTTP {resp.status}")
                return
            ctype = resp.headers.get("Content-Type", "")
            if not stream or not kind.streams or not ctype.startswith("text/event-stream"):
                body = await resp.read()
                record.end = now = perf_counter()
                if not body.strip() or (stream and kind.streams and "json" not in ctype.lower()):
                    what = ctype.split(";")[0].strip() or "no Content-Type"
                    record.fail("protocol", f"the server returned {what} ({len(body)} bytes), not an event stream",
                                "not an event stream")
                    return
                kind.whole(state, body, now)
            else:
                read = resp.content.readany
                buf = b""
                while True:
                    chunk = await read()
                    if not chunk:
                        break
                    now = perf_counter()
                    buf = buf + chunk if buf else chunk
                    used = state.feed(buf, now)
                    if used:
                        buf = buf[used:]
                record.end = now = perf_counter()
                if buf:
                    state.feed(buf + b"\n", now)
                state.finish(now)
    except asyncio.CancelledError:
        raise
    except (asyncio.TimeoutError, TimeoutError) as exc:
        record.end = perf_counter()
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            record.fail("timeout", f"connect timeout: no connection within {backend.config.connect_timeout:g} s",
                        "connect timeout")
        else:
            record.fail("timeout", f"read timeout: no data for {backend.config.read_timeout:g} s", "read timeout")
        return
    except aiohttp.ClientPayloadError as exc:
        record.end = perf_counter()
        record.fail("connection", redact(f"connection error: response cut off ({_short(exc)})"),
                    "connection error (response cut off)")
        return
    except (aiohttp.ClientError, OSError) as exc:
        record.end = perf_counter()
        name = exc.__class__.__name__
        record.fail("connection", redact(f"connection error: {name} {_short(exc)}".strip()),
                    f"connection error ({name})" if name[:1].isupper() and name.isidentifier() else "connection error")
        return
    except orjson.JSONDecodeError:
        record.end = perf_counter()
        record.fail("protocol", "malformed SSE: a data line is not valid JSON", "malformed SSE")
        return
    except FailedRequest as exc:
        record.end = perf_counter()
        error = redact(exc.message)[:200]
        record.fail(exc.kind, error, exc.group or error[:80])
        return
    except (AttributeError, TypeError, ValueError):
        record.end = perf_counter()
        record.fail("protocol", "malformed SSE: unexpected JSON shape", "malformed SSE")
        return
    kind.complete(state, backend.count_tokens)


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:120]
