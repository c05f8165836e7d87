"""An OpenAI-compatible test server for the endpoints beyond chat: embeddings, rerank, score
(vLLM's shapes) and the Responses API, plus plain chat/completions answers for image requests.

``python tests/endpoint_server.py [--dim 8] [--model NAME] [--log FILE] [--ttft S] [--itl S]
[--tokens N] [--reasoning N] [--no-usage] [--fault NAME]`` prints ``PORT <n>``.

Built on a raw asyncio Protocol (HTTP/1.1 keep-alive), so that it costs the client under test
little CPU: without ``--log``, delays or faults, an embeddings answer is mostly a precomputed
byte string (bench/embeddings_vs_evalscope.py drives it hard).

- ``POST .../embeddings``: ``input`` (a text or a list) → one vector of ``--dim`` numbers per
  input (``encoding_format: base64`` → little-endian float32, base64), ``usage.prompt_tokens``
  = words in the inputs (the random datasets' texts are one cl100k token per word).
- ``POST .../rerank``: ``query`` + ``documents`` → ``results`` (``index``, ``document.text``,
  ``relevance_score``), best first, ``top_n`` of them when asked; ``usage.total_tokens``.
- ``POST .../score``: ``text_1`` + ``text_2`` → ``data`` (``index``, ``object: score``,
  ``score``) per text_2 item; ``usage.prompt_tokens``.
- ``POST .../responses``: with ``stream`` typed SSE events (``event:`` and ``data:`` lines):
  created, ``--reasoning N`` ``response.reasoning_text.delta`` events, then
  ``max_output_tokens`` (else ``--tokens``) ``response.output_text.delta`` events of ``" tok"``,
  the first at ``--ttft``, each next ``--itl`` later, then ``response.completed`` with
  ``usage.input_tokens`` / ``output_tokens``; without ``stream`` one response object.
- ``POST .../chat/completions`` and ``.../completions``: ``max_tokens`` (else ``--tokens``)
  tokens, streamed (with usage and ``[DONE]``) or as one body; ``usage.prompt_tokens`` = words
  in the text parts.

With ``--log FILE`` it appends one JSON line per request: ``path``, ``body`` (the request as
received, images included), ``auth`` (whether an Authorization header came).

Faults, chosen by a marker anywhere in the request body (or ``--fault NAME`` for every request): ``FAULT:dim`` (embeddings: the last
vector one number longer), ``FAULT:count`` (one vector too few / one score too few),
``FAULT:nonnumber`` (a vector or score holding a string), ``FAULT:500`` (HTTP 500),
``FAULT:failed`` (responses: a ``response.failed`` event after two deltas), ``FAULT:error``
(responses: an ``error`` event), ``FAULT:cut`` (responses: the stream ends after two deltas).
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import re
import struct
import time

try:
    import orjson

    dumps = orjson.dumps
    loads = orjson.loads
except ImportError:  # pragma: no cover - the server also runs under a plain python
    def dumps(obj) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()

    loads = json.loads

FAULT = re.compile(rb"FAULT:([a-z0-9]+)")
STREAM_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def response(status: str, body: bytes) -> bytes:
    return b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        status.encode(), len(body), body)


def chunked(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def words(value) -> int:
    """Whitespace-separated words in a text, a list of texts or chat content parts."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        return sum(words(v.get("text", "") if isinstance(v, dict) else v) for v in value)
    return 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dim", type=int, default=8)
    ap.add_argument("--model", default="endpoint-model")
    ap.add_argument("--log", default=None)
    ap.add_argument("--ttft", type=float, default=0.0)
    ap.add_argument("--itl", type=float, default=0.0)
    ap.add_argument("--tokens", type=int, default=8)
    ap.add_argument("--reasoning", type=int, default=0)
    ap.add_argument("--no-usage", action="store_true")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--fault", default=None, help="a fault for every request (see the module doc)")
    args = ap.parse_args()
    log = open(args.log, "ab", buffering=0) if args.log else None
    models = dumps({"object": "list", "data": [{"id": args.model, "object": "model"}]})
    vector = [round(0.001 * (k + 1), 6) for k in range(args.dim)]
    vector_json = dumps(vector)
    vector_b64 = base64.b64encode(struct.pack(f"<{args.dim}f", *vector)).decode()
    data_cache: dict[tuple[int, bool], bytes] = {}

    def usage(tokens: int, key: str = "prompt_tokens") -> bytes:
        return b"" if args.no_usage else b',"usage":' + dumps({key: tokens, "total_tokens": tokens})

    def embeddings(req: dict, fault: str | None) -> bytes:
        inputs = req.get("input")
        inputs = [inputs] if isinstance(inputs, str) else list(inputs or [])
        b64 = req.get("encoding_format") == "base64"
        n = len(inputs) - (1 if fault == "count" else 0)
        if fault in ("dim", "nonnumber"):
            items = [{"object": "embedding", "index": i, "embedding": vector} for i in range(n)]
            items[-1] = {**items[-1], "embedding": vector + [0.5] if fault == "dim" else vector[:-1] + ["x"]}
            data = dumps(items)
        else:
            if (n, b64) not in data_cache:
                vec = b'"%s"' % vector_b64.encode() if b64 else vector_json
                data_cache[(n, b64)] = b"[" + b",".join(
                    b'{"object":"embedding","index":%d,"embedding":%s}' % (i, vec) for i in range(n)) + b"]"
            data = data_cache[(n, b64)]
        return (b'{"object":"list","model":"%s","data":%s%s}' % (args.model.encode(), data, usage(words(inputs))))

    def scores(path: str, req: dict, fault: str | None) -> bytes:
        if path.endswith("/rerank"):
            query, docs = req.get("query", ""), list(req.get("documents") or [])
        else:
            query, docs = req.get("text_1", ""), req.get("text_2") or []
            docs = [docs] if isinstance(docs, str) else list(docs)
        values = [1.0 / (1 + i) for i in range(len(docs))]
        tokens = words(query) * len(docs) + words(docs)
        n = len(docs) - (1 if fault == "count" else 0)
        bad = fault == "nonnumber"
        if path.endswith("/rerank"):
            results = [{"index": i, "document": {"text": docs[i]}, "relevance_score": "high" if bad else values[i]}
                       for i in range(n)]
            top_n = req.get("top_n")
            if top_n:
                results = results[: int(top_n)]
            body = {"id": "rerank-1", "model": args.model, "results": results}
            if not args.no_usage:
                body["usage"] = {"total_tokens": tokens}
        else:
            body = {"id": "score-1", "object": "list", "model": args.model,
                    "data": [{"index": i, "object": "score", "score": "high" if bad else values[i]} for i in range(n)]}
            if not args.no_usage:
                body["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
        return dumps(body)

    def responses_body(req: dict, n_tokens: int) -> bytes:
        output = []
        if args.reasoning:
            output.append({"type": "reasoning", "id": "rs_1", "summary": [],
                           "content": [{"type": "reasoning_text", "text": " think" * args.reasoning}]})
        output.append({"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                       "content": [{"type": "output_text", "text": " tok" * n_tokens, "annotations": []}]})
        body = {"id": "resp_1", "object": "response", "status": "completed", "model": args.model, "output": output}
        if not args.no_usage:
            body["usage"] = {"input_tokens": words(_responses_text(req)), "output_tokens": n_tokens + args.reasoning,
                             "total_tokens": 0}
        return dumps(body)

    def chat_body(req: dict, n_tokens: int, chat: bool) -> bytes:
        text = " tok" * n_tokens
        choice = {"index": 0, "message": {"role": "assistant", "content": text}} if chat else {"index": 0, "text": text}
        return dumps({"id": "c", "object": "chat.completion" if chat else "text_completion", "model": args.model,
                      "choices": [{**choice, "finish_reason": "length"}],
                      "usage": {"prompt_tokens": _prompt_words(req), "completion_tokens": n_tokens}})

    class Proto(asyncio.Protocol):
        def connection_made(self, transport):
            self.t = transport
            self.buf = b""
            self.busy = False

        def data_received(self, data):
            self.buf = self.buf + data if self.buf else data
            self.pump()

        def connection_lost(self, exc):
            self.busy = True

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
                raw = self.buf[end + 4:end + 4 + length]
                self.buf = self.buf[end + 4 + length:]
                method, path = head.split(b" ", 2)[:2]
                path = path.decode().split("?")[0].rstrip("/")
                if method == b"GET":
                    self.t.write(response("200 OK", models) if path.endswith("/models")
                                 else response("404 Not Found", b'{"error": {"message": "no such route"}}'))
                    continue
                m = FAULT.search(raw)
                fault = m.group(1).decode() if m else args.fault
                req = loads(raw)
                if log is not None:
                    log.write(dumps({"path": path, "body": req, "auth": b"\r\nauthorization:" in head.lower()}) + b"\n")
                if fault == "500":
                    self.t.write(response("500 Internal Server Error", b'{"error": {"message": "boom"}}'))
                    continue
                if path.endswith("/embeddings"):
                    self.t.write(response("200 OK", embeddings(req, fault)))
                elif path.endswith("/rerank") or path.endswith("/score"):
                    self.t.write(response("200 OK", scores(path, req, fault)))
                elif path.endswith("/responses") or path.endswith("/completions"):
                    self.busy = True
                    asyncio.ensure_future(self.serve(path, req, fault))
                else:
                    self.t.write(response("404 Not Found", b'{"error": {"message": "no such route"}}'))

        async def serve(self, path, req, fault):
            try:
                if path.endswith("/responses"):
                    await self.respond_responses(req, fault)
                else:
                    await self.respond_chat(req, path.endswith("/chat/completions"))
            finally:
                if not self.t.is_closing():
                    self.busy = False
                    self.pump()

        async def respond_chat(self, req, chat):
            n_tokens = int(req.get("max_tokens") or args.tokens)
            await asyncio.sleep(args.ttft)
            if not req.get("stream"):
                self.t.write(response("200 OK", chat_body(req, n_tokens, chat)))
                return
            self.t.write(STREAM_HEAD)
            for k in range(n_tokens):
                choice = {"index": 0, "delta": {"content": " tok"}} if chat else {"index": 0, "text": " tok"}
                choice["finish_reason"] = "length" if k == n_tokens - 1 else None
                self.t.write(chunked(b"data: " + dumps({"id": "c", "choices": [choice]}) + b"\n\n"))
                await asyncio.sleep(args.itl)
            tail = {"id": "c", "choices": [], "usage": {"prompt_tokens": _prompt_words(req), "completion_tokens": n_tokens}}
            self.t.write(chunked(b"data: " + dumps(tail) + b"\n\ndata: [DONE]\n\n") + b"0\r\n\r\n")

        async def respond_responses(self, req, fault):
            n_tokens = int(req.get("max_output_tokens") or args.tokens)
            t0 = time.perf_counter()
            if not req.get("stream"):
                await asyncio.sleep(args.ttft)
                self.t.write(response("200 OK", responses_body(req, n_tokens)))
                return
            self.t.write(STREAM_HEAD)

            def send(kind: str, **fields) -> None:
                data = dumps({"type": kind, **fields})
                self.t.write(chunked(b"event: %s\ndata: %s\n\n" % (kind.encode(), data)))

            send("response.created", response={"id": "resp_1", "status": "in_progress", "model": args.model})
            deltas = [("response.reasoning_text.delta", " think")] * args.reasoning
            deltas += [("response.output_text.delta", " tok")] * n_tokens
            for k, (kind, text) in enumerate(deltas):
                due = t0 + args.ttft + args.itl * k
                if due > time.perf_counter():
                    await asyncio.sleep(due - time.perf_counter())
                if self.t.is_closing():
                    return
                if k == 2 and fault == "failed":
                    send("response.failed", response={"id": "resp_1", "status": "failed",
                                                      "error": {"code": "server_error", "message": "the model crashed"}})
                    self.t.write(b"0\r\n\r\n")
                    return
                if k == 2 and fault == "error":
                    send("error", code="rate_limit_exceeded", message="too many requests", param=None)
                    self.t.write(b"0\r\n\r\n")
                    return
                if k == 2 and fault == "cut":
                    self.t.write(b"0\r\n\r\n")
                    return
                send(kind, item_id="msg_1", output_index=0, content_index=0, delta=text)
            send("response.output_text.done", item_id="msg_1", text=" tok" * n_tokens)
            done = {"id": "resp_1", "status": "completed", "model": args.model, "output": []}
            if not args.no_usage:
                done["usage"] = {"input_tokens": words(_responses_text(req)), "output_tokens": len(deltas),
                                 "output_tokens_details": {"reasoning_tokens": args.reasoning}}
            send("response.completed", response=done)
            self.t.write(b"0\r\n\r\n")

    async def serve():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Proto, "127.0.0.1", args.port, backlog=4096)
        print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
        await server.serve_forever()

    try:
        gc.freeze()
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


def _prompt_words(req: dict) -> int:
    if "messages" in req:
        return sum(words(m.get("content")) for m in req["messages"])
    return words(req.get("prompt"))


def _responses_text(req: dict):
    value = req.get("input")
    if isinstance(value, list):  # input items: their content text parts
        return [p for item in value for p in (item.get("content") if isinstance(item.get("content"), list)
                                              else [{"text": item.get("content") or ""}])]
    return value


if __name__ == "__main__":
    main()
