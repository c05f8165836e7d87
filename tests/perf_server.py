"""A streaming OpenAI-compatible server with known timings, for perf tests and benchmarks.

``python tests/perf_server.py [--ttft 0.05] [--itl 0.01] [--tokens 128] [--tokens-per-chunk 1]
[--no-usage] [--reasoning N] [--log FILE] [--crlf] [--split] [--cpu K] [--model NAME]
[--answer TEXT]`` prints ``PORT <n>``. Non-streaming requests get one JSON answer (``--answer``,
else ``max_tokens`` tokens): bench/eval_overhead.py uses it as a zero-latency eval server.

Built on a raw asyncio Protocol (HTTP/1.1 keep-alive, chunked SSE) so that it costs far less
CPU than the client under test; with no delays the whole response is one precomputed write.

Each request: sleep ``--ttft``, then ``max_tokens`` (else ``--tokens``) tokens, ``" tok"`` each
(one cl100k token), in chunks of ``--tokens-per-chunk``, chunk k written at
``start + ttft + k * itl`` (``--reasoning N`` sends the first N tokens as ``reasoning_content``),
then a usage chunk (unless ``--no-usage``), then ``[DONE]``. ``--crlf`` separates events with
``\\r\\n\\r\\n``; ``--split`` writes every event in two pieces 2 ms apart (cut mid-JSON), to test
the client's buffering. ``--cpu K`` pins the server to core K. ``--ttft-per-inflight K`` adds K
seconds to every request's TTFT per request in flight (itself included): latency that grows with
load as a known function, for the SLA search.

With ``--log`` it appends one JSON line per request: ``start`` (request bytes received; the
TTFT sleep counts from here), ``first`` and
``last`` (``time.perf_counter()`` right after writing the first and last content chunk — the
truth the client's TTFT is compared to; the clock is CLOCK_MONOTONIC, shared by processes),
``tokens``, ``prompt`` (first 200 characters), ``body`` (the request without messages/prompt)
and ``auth`` (whether an Authorization header came).

A prefix cache, for multi-turn and trace tests: ``--prefix-cache`` counts a prompt in words
(whitespace-separated, one cl100k token each for the word tokens lmgauge's datasets send and the
``" tok"`` answers), hashes it in blocks of ``--cache-block`` words (each hash covering the
whole prefix up to that block, as vLLM's block hashes do), and sleeps ``--ttft`` plus
``--prefill-per-token`` seconds for every word not in a cached block; prompt and answer blocks
are cached afterwards. Usage then reports ``prompt_tokens`` = words and
``prompt_tokens_details.cached_tokens``. ``--prefill-per-token`` without ``--prefix-cache`` is
a server without a cache (every word prefilled). ``--unique-answers`` makes every answer's words unique
(`` r<request>t<k>``), so a test can find a given answer in a later request; ``--log-messages``
adds the full ``messages`` and the ``answer`` text to each log line.

Prefix-cache resets: ``--engine vllm --dev-mode`` serves vLLM's ``POST /reset_prefix_cache``
(without ``--dev-mode`` it answers 404, as vLLM does without ``VLLM_SERVER_DEV_MODE=1``; ``GET
/version`` answers as vLLM's), ``--engine sglang`` SGLang's ``POST /flush_cache`` (400 while
requests run). A reset clears the ``--prefix-cache`` blocks and, with ``--log``, writes a line
``{"reset": ROUTE, "t": ...}``.

Faults, chosen by a marker in the prompt text: ``FAULT:500`` (HTTP 500), ``FAULT:reset``
(close the connection after two chunks), ``FAULT:stall`` (stop sending after two chunks),
``FAULT:malformed`` (a broken data line), ``FAULT:cut`` (end the body cleanly after two
chunks: no finish_reason, no ``[DONE]``), ``FAULT:nodone`` (a complete stream without ``[DONE]``,
as ``transformers serve`` sends),
``FAULT:empty`` (no content chunks), ``FAULT:errchunk`` (an ``{"error": ...}`` event mid-stream),
``FAULT:json`` (answer with a non-streaming JSON body although a stream was asked for),
``FAULT:html`` (a 200 with an HTML page, as a proxy or web server in front of the API sends).
"""
from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import json
import os
import re
import time

try:
    import orjson

    dumps = orjson.dumps
    loads = orjson.loads
except ImportError:  # pragma: no cover - the server also runs under a plain python
    def dumps(obj) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()

    loads = json.loads

perf = time.perf_counter
FAULT = re.compile(r"FAULT:([a-z0-9]+)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ttft", type=float, default=0.0)
    ap.add_argument("--itl", type=float, default=0.0)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--tokens-per-chunk", type=int, default=1)
    ap.add_argument("--reasoning", type=int, default=0)
    ap.add_argument("--no-usage", action="store_true")
    ap.add_argument("--model", default="perf-model")
    ap.add_argument("--log", default=None)
    ap.add_argument("--crlf", action="store_true")
    ap.add_argument("--split", action="store_true")
    ap.add_argument("--cpu", type=int, default=None)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--answer", default=None, help="content of non-streaming answers (default: max_tokens tokens)")
    ap.add_argument("--prefix-cache", action="store_true")
    ap.add_argument("--cache-block", type=int, default=16)
    ap.add_argument("--prefill-per-token", type=float, default=0.0)
    ap.add_argument("--unique-answers", action="store_true")
    ap.add_argument("--log-messages", action="store_true")
    ap.add_argument("--ttft-per-inflight", type=float, default=0.0,
                    help="each request's TTFT grows by this many seconds per request in flight (itself included)")
    ap.add_argument("--engine", choices=["vllm", "sglang"], default=None,
                    help="vllm: GET /version answers like vLLM, POST /reset_prefix_cache only with --dev-mode; "
                         "sglang: POST /flush_cache (each clears --prefix-cache and is logged)")
    ap.add_argument("--dev-mode", action="store_true", help="--engine vllm runs as with VLLM_SERVER_DEV_MODE=1")
    args = ap.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    log = open(args.log, "ab") if args.log else None
    log_dirty = []
    models = dumps({"object": "list", "data": [{"id": args.model, "object": "model"}]})
    sep = b"\r\n\r\n" if args.crlf else b"\n\n"
    delays = bool(args.ttft or args.itl or args.split or args.prefix_cache or args.prefill_per_token
                  or args.unique_answers or args.ttft_per_inflight)
    inflight = [0]
    cache: set[int] = set()  # hashes of cached prompt blocks (--prefix-cache)
    serial = [0]

    def block_hashes(words: list[str]) -> list[int]:
        """One hash per full block, each covering the prefix up to the block's end."""
        out, h, b = [], 0, args.cache_block
        for k in range(len(words) // b):
            h = hash((h, tuple(words[k * b:(k + 1) * b])))
            out.append(h)
        return out

    def prompt_words(req) -> list[str]:
        if "messages" in req:
            return [w for m in req["messages"] for w in str(m.get("content", "")).split()]
        return str(req.get("prompt", "")).split()

    def chunked(payload: bytes) -> bytes:
        return b"%x\r\n%s\r\n" % (len(payload), payload)

    def event(obj) -> bytes:
        return b"data: " + (obj if isinstance(obj, bytes) else dumps(obj)) + sep

    def response(status: str, body: bytes, ctype: bytes = b"application/json") -> bytes:
        return b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s" % (
            status.encode(), ctype, len(body), body)

    STREAM_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    END = chunked(event(b"[DONE]")) + b"0\r\n\r\n"

    @functools.lru_cache(maxsize=None)
    def pieces(n_tokens: int, chat: bool) -> tuple[bytes, ...]:
        """The content events of one response (each a complete SSE event, unframed); built
        once per shape, so that a burst of new requests costs the server next to nothing."""
        out, sent = [], 0
        while sent < n_tokens:
            step = min(args.tokens_per_chunk, n_tokens - sent)
            text = " tok" * step
            if chat:
                key = "reasoning_content" if sent < args.reasoning else "content"
                choice = {"index": 0, "delta": {key: text}, "finish_reason": None}
            else:
                choice = {"index": 0, "text": text, "finish_reason": None}
            if sent + step >= n_tokens:
                choice["finish_reason"] = "length"
            out.append(event({"id": "c", "object": "chat.completion.chunk", "model": args.model, "choices": [choice]}))
            sent += step
        return tuple(out)

    def usage_event(n_tokens: int, prompt_tokens: int = 10, cached: int | None = None) -> bytes:
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": n_tokens, "total_tokens": prompt_tokens + n_tokens}
        if cached is not None:
            usage["prompt_tokens_details"] = {"cached_tokens": cached}
        return event({"id": "c", "choices": [], "usage": usage})

    def unique_pieces(n_tokens: int, chat: bool, r: int) -> tuple[bytes, ...]:
        """Content events whose words (`` r<r>t<k>``) belong to this answer only."""
        out = []
        for k in range(n_tokens):
            text = f" r{r}t{k}"
            choice = ({"index": 0, "delta": {"content": text}, "finish_reason": None} if chat
                      else {"index": 0, "text": text, "finish_reason": None})
            if k == n_tokens - 1:
                choice["finish_reason"] = "length"
            out.append(event({"id": "c", "object": "chat.completion.chunk", "model": args.model, "choices": [choice]}))
        return tuple(out)

    def flush_log():
        log_dirty.clear()
        log.flush()

    @functools.lru_cache(maxsize=None)
    def whole_response(n_tokens: int, chat: bool) -> bytes:
        """A non-streaming answer: ``--answer`` if given, else ``max_tokens`` tokens."""
        content = args.answer if args.answer is not None else " tok" * n_tokens
        msg = {"message": {"role": "assistant", "content": content}} if chat else {"text": content}
        return response("200 OK", dumps({
            "id": "c", "object": "chat.completion" if chat else "text_completion", "model": args.model,
            "choices": [{"index": 0, **msg, "finish_reason": "length" if args.answer is None else "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": n_tokens}}))

    @functools.lru_cache(maxsize=None)
    def fast_response(n_tokens: int, chat: bool) -> bytes:
        """A whole stream in one write (no delays asked for)."""
        body = b"".join(pieces(n_tokens, chat)) + (b"" if args.no_usage else usage_event(n_tokens))
        return STREAM_HEAD + chunked(body) + END

    def cache_reset(route: str) -> bytes:
        """vLLM's POST /reset_prefix_cache (only with --dev-mode) or SGLang's POST /flush_cache
        (refused while requests run): clear the prefix cache, log the reset."""
        served = (route == "/reset_prefix_cache" and args.engine == "vllm" and args.dev_mode) or (
            route == "/flush_cache" and args.engine == "sglang")
        if not served:
            return response("404 Not Found", b'{"detail": "Not Found"}')
        if route == "/flush_cache" and inflight[0]:
            return response("400 Bad Request", b"Cache not flushed. Please check for pending requests.", b"text/plain")
        cache.clear()
        if log is not None:
            log.write(dumps({"reset": route, "t": perf()}) + b"\n")
            log.flush()
        return response("200 OK", b"", b"text/plain")

    class Proto(asyncio.Protocol):
        def connection_made(self, transport):
            self.t = transport
            self.buf = b""
            self.busy = False
            self.headers = b""

        def data_received(self, data):
            self.received = perf()  # the request's arrival: the server's clock starts here
            self.buf = self.buf + data if self.buf else data
            self.pump()

        def connection_lost(self, exc):
            self.busy = True  # stop pumping

        def pump(self):
            while not self.busy:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = self.buf[:end]
                length = 0
                i = head.lower().find(b"content-length:")
                if i >= 0:
                    j = head.find(b"\r\n", i)
                    length = int(head[i + 15:j if j > 0 else None])
                if len(self.buf) < end + 4 + length:
                    return
                body = self.buf[end + 4:end + 4 + length]
                self.buf = self.buf[end + 4 + length:]
                if head.startswith(b"GET /version") and args.engine == "vllm":
                    self.t.write(response("200 OK", dumps({"version": "0.0.0-perf-server"})))
                    continue
                if head.startswith(b"GET"):
                    self.t.write(response("200 OK", models))
                    continue
                route = next((r for r in (b"/reset_prefix_cache", b"/flush_cache") if head.startswith(b"POST " + r)), None)
                if route is not None:
                    self.t.write(cache_reset(route.decode()))
                    continue
                req = loads(body)
                if not delays and log is None and b"FAULT:" not in body:  # no task, one precomputed write
                    make = fast_response if req.get("stream") else whole_response
                    self.t.write(make(int(req.get("max_tokens") or args.tokens), "messages" in req))
                    continue
                self.busy = True
                self.headers = head
                asyncio.ensure_future(self.serve(req, self.received))

        async def serve(self, req, t0):
            inflight[0] += 1
            try:
                await self.respond(req, t0, args.ttft_per_inflight * inflight[0])
            finally:
                inflight[0] -= 1
                if not self.t.is_closing():
                    self.busy = False
                    self.pump()

        async def respond(self, req, t0, load_delay=0.0):
            chat = "messages" in req
            text = json.dumps(req.get("messages") if chat else req.get("prompt"))
            m = FAULT.search(text)
            fault = m.group(1) if m else None
            n_tokens = int(req.get("max_tokens") or args.tokens)
            record = {"start": t0, "first": None, "last": None, "tokens": 0, "prompt": text[:200],
                      "body": {k: v for k, v in req.items() if k not in ("messages", "prompt")},
                      "auth": b"\r\nauthorization:" in self.headers.lower()}
            if args.log_messages:
                record["messages"] = req.get("messages")
            serial[0] += 1
            prompt_tokens, cached, prefill, words = 10, None, load_delay, []
            if args.prefix_cache or args.prefill_per_token:
                words = prompt_words(req)
                hits = 0
                if args.prefix_cache:
                    hashes = block_hashes(words)
                    hits = next((k for k, h in enumerate(hashes) if h not in cache), len(hashes))
                    cached = record["cached"] = hits * args.cache_block
                prompt_tokens = len(words)
                prefill += args.prefill_per_token * (prompt_tokens - hits * args.cache_block)
            if fault == "500":
                self.t.write(response("500 Internal Server Error", b'{"error": {"message": "boom"}}'))
                return
            if fault == "html":  # a proxy's or web server's page where the API should be
                self.t.write(response("200 OK", b"<html><body>Welcome to nginx!</body></html>", b"text/html"))
                return
            if fault == "json" or not req.get("stream"):
                await asyncio.sleep(args.ttft + prefill + args.itl * max(0, -(-n_tokens // args.tokens_per_chunk) - 1))
                self.t.write(whole_response(n_tokens, chat))
                record["first"] = record["last"] = perf()
                record["tokens"] = n_tokens
                self._log(record)
                return
            self.t.write(STREAM_HEAD)
            if fault == "empty":
                events = []
            elif args.unique_answers:
                events = unique_pieces(n_tokens, chat, serial[0])
            else:
                events = pieces(n_tokens, chat)
            answer = [f"r{serial[0]}t{k}" if args.unique_answers else "tok" for k in range(n_tokens)]
            for k, ev in enumerate(events):
                due = t0 + args.ttft + prefill + args.itl * k
                if due > perf():
                    await asyncio.sleep(due - perf())
                if self.t.is_closing():  # the client went away
                    return
                if k == 2 and fault == "malformed":
                    self.t.write(chunked(b'data: {"choices": [{"delta": ' + sep))
                    break
                if k == 2 and fault == "reset":
                    self.t.abort()
                    return
                if k == 2 and fault == "stall":
                    await asyncio.sleep(3600)
                if k == 2 and fault == "cut":
                    self.t.write(b"0\r\n\r\n")
                    self._log(record)
                    return
                if k == 2 and fault == "errchunk":
                    self.t.write(chunked(event({"error": {"message": "out of memory", "code": 500}})))
                    break
                if args.split:
                    cut = len(ev) // 2
                    self.t.write(chunked(ev[:cut]))
                    await asyncio.sleep(0.002)
                    self.t.write(chunked(ev[cut:]))
                else:
                    self.t.write(chunked(ev))
                now = perf()
                if record["first"] is None:
                    record["first"] = now
                record["last"] = now
                record["tokens"] = min(n_tokens, (k + 1) * args.tokens_per_chunk)
            if args.prefix_cache:  # the prompt's blocks and the answer's are now in the cache
                cache.update(block_hashes(words + answer[:record["tokens"]]))
            if args.log_messages:
                record["answer"] = "".join(f" {w}" for w in answer[:record["tokens"]])
            if not args.no_usage:
                self.t.write(chunked(usage_event(record["tokens"], prompt_tokens, cached)))
            if fault == "nodone":
                self.t.write(b"0\r\n\r\n")
            else:
                self.t.write(END)
            self._log(record)

        def _log(self, record):
            # buffered, flushed 50 ms later in one write: a burst of streams ending together
            # must not hold up the reading of new requests
            if log is not None:
                log.write(dumps(record) + b"\n")
                if not log_dirty:
                    log_dirty.append(True)
                    asyncio.get_running_loop().call_later(0.05, flush_log)

    async def serve():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Proto, "127.0.0.1", args.port, backlog=4096)
        print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
        await server.serve_forever()

    try:
        gc.freeze()  # no collector pauses while serving: they would delay request receipt stamps
        gc.disable()
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
