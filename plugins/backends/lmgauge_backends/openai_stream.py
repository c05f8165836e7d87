"""The perf hot path: one streaming request, timestamped where its bytes arrive.

``stream_request`` posts with ``stream: true`` and ``stream_options.include_usage``, then reads
the raw body with ``iter_any()`` (each read returns whatever the socket delivered) and takes
``time.perf_counter()`` once per read, before parsing. SSE events are split on blank lines with
``bytes.find`` (no per-byte work); each ``data:`` payload is parsed by orjson.

A chunk counts for TTFT when it carries content or reasoning text; ``first_content`` is the
first chunk with visible content. Token counts come from the server's ``usage``; without it
(llama.cpp ignores include_usage) the backend's tokenizer counts the text afterwards
(``usage_source = "tokenizer"``), or, with no tokenizer, one token per chunk (``"chunks"``).

Every failure ends in ``record.error`` with a reason, never an exception: HTTP status, connection
errors, read timeouts (stall), malformed SSE/JSON, a stream that ends without ``[DONE]``.
"""
from __future__ import annotations

import asyncio
import time

import orjson

from lmgauge.types import GenerationRequest, PerfRecord

perf_counter = time.perf_counter


def _reason_text(body: bytes) -> str:
    from .openai_backend import _error_text

    return _error_text(body)


async def stream_request(backend, request: GenerationRequest, record: PerfRecord) -> None:
    import aiohttp

    stream = request.params.stream
    payload = orjson.dumps(backend.payload(request, stream=stream))
    chat = backend.api == "chat"
    texts = record.chunk_texts
    times = record.chunk_times
    done = False
    usage = None
    record.sent = perf_counter()
    try:
        async with backend.session.post(backend.url, data=payload, headers=backend.headers) as resp:
            if resp.status >= 400:
                body = await resp.read()
                record.end = perf_counter()
                record.error = f"HTTP {resp.status}: {_reason_text(body)}"
                return
            if not stream:
                body = await resp.read()
                now = record.end = perf_counter()
                data = orjson.loads(body)
                choice = (data.get("choices") or [{}])[0]
                text = (choice.get("message") or {}).get("content") if chat else choice.get("text")
                reasoning = (choice.get("message") or {}).get("reasoning_content") if chat else None
                if text or reasoning:
                    times.append(now)
                    texts.append((reasoning or "") + (text or ""))
                    record.first_token = now
                    record.first_content = now if text else None
                usage = data.get("usage")
                done = True
            else:
                buf = b""
                content = resp.content
                while True:
                    chunk = await content.readany()
                    if not chunk:
                        break
                    now = perf_counter()
                    buf = buf + chunk if buf else chunk
                    start = 0
                    while True:
                        idx = buf.find(b"\n\n", start)
                        sep = 2
                        if idx < 0:
                            idx = buf.find(b"\r\n\r\n", start)
                            sep = 4
                            if idx < 0:
                                break
                        event = buf[start:idx]
                        start = idx + sep
                        for line in event.splitlines():
                            if not line.startswith(b"data:"):
                                continue  # comments, event:, id:
                            data = line[5:].strip()
                            if data == b"[DONE]":
                                done = True
                                continue
                            obj = orjson.loads(data)
                            if obj.get("error"):
                                raise _StreamError(f"server error in stream: {str(obj['error'])[:160]}")
                            if obj.get("usage"):
                                usage = obj["usage"]
                            for ch in obj.get("choices") or ():
                                if chat:
                                    delta = ch.get("delta") or {}
                                    text = delta.get("content")
                                    reasoning = delta.get("reasoning_content") or delta.get("reasoning")
                                else:
                                    text = ch.get("text")
                                    reasoning = None
                                if text or reasoning:
                                    times.append(now)
                                    texts.append((reasoning or "") + (text or ""))
                                    if record.first_token is None:
                                        record.first_token = now
                                    if text and record.first_content is None:
                                        record.first_content = now
                    if start:
                        buf = buf[start:]
                record.end = perf_counter()
    except asyncio.TimeoutError:
        record.end = perf_counter()
        record.error = f"read timeout: no data for {backend.config.read_timeout:g} s"
        return
    except aiohttp.ClientError as exc:
        record.end = perf_counter()
        record.error = f"connection error: {exc.__class__.__name__}"
        return
    except orjson.JSONDecodeError:
        record.end = perf_counter()
        record.error = "malformed SSE: a data line is not valid JSON"
        return
    except _StreamError as exc:
        record.end = perf_counter()
        record.error = str(exc)
        return
    except (AttributeError, TypeError):
        record.end = perf_counter()
        record.error = "malformed SSE: unexpected JSON shape"
        return
    if not done:
        record.error = "truncated stream: ended without [DONE]"
        return
    if not times:
        record.error = "empty response: no content chunks"
        return
    record.output_text = "".join(texts)
    if usage and usage.get("completion_tokens") is not None:
        record.completion_tokens = int(usage["completion_tokens"])
        record.prompt_tokens = usage.get("prompt_tokens")
        record.usage_source = "server"
    else:
        counted = backend.count_tokens(record.output_text)
        if counted is not None:
            record.completion_tokens = counted
            record.usage_source = "tokenizer"
        else:
            record.completion_tokens = len(times)
            record.usage_source = "chunks"
    record.success = True


class _StreamError(Exception):
    pass
