"""A streaming OpenAI-compatible server with known timings, for perf tests and benchmarks.

``python bench/stream_server.py [--ttft 0.05] [--itl 0.01] [--tokens 128] [--tokens-per-chunk 1]
[--no-usage] [--log FILE] [--reasoning N]`` prints ``PORT <n>``.

Built on a raw asyncio Protocol (HTTP/1.1 keep-alive, chunked SSE) so that it costs far less
CPU than the client under test. Each request: sleep ``--ttft``, then ``--tokens`` tokens in
chunks of ``--tokens-per-chunk``, one chunk every ``--itl`` seconds (``--reasoning N`` sends the
first N tokens as ``reasoning_content``), then a usage chunk (unless ``--no-usage``) and
``[DONE]``. With ``--log`` it appends, per request, the ``time.perf_counter()`` at which it wrote
the first chunk and the last one: the truth the client's TTFT is compared to.

Faults, chosen by a marker in the prompt: ``FAULT:500`` (HTTP 500), ``FAULT:reset`` (close the
connection mid-stream), ``FAULT:stall`` (stop sending), ``FAULT:malformed`` (a broken data
line), ``FAULT:nodone`` (end without ``[DONE]``), ``FAULT:empty`` (no content chunks).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import time

perf = time.perf_counter


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
    args = ap.parse_args()
    log = open(args.log, "a", buffering=1) if args.log else None
    models = json.dumps({"data": [{"id": args.model}]}).encode()

    def chunk_bytes(payload: bytes) -> bytes:
        return b"%x\r\n%s\r\n" % (len(payload), payload)

    def sse(obj) -> bytes:
        return chunk_bytes(b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n")

    cache: dict = {}

    def chunk_for(key: str, step: int) -> bytes:
        """The SSE bytes of one chunk, encoded once (keeps the server cheap under load)."""
        if (key, step) not in cache:
            piece = " tok" * step
            choice = {"index": 0, "text": piece, "finish_reason": None} if key == "text" else \
                {"index": 0, "delta": {key: piece}, "finish_reason": None}
            cache[key, step] = sse({"choices": [choice]})
        return cache[key, step]

    class Proto(asyncio.Protocol):
        def connection_made(self, transport):
            self.t = transport
            self.buf = b""
            self.busy = False

        def data_received(self, data):
            self.buf += data
            self.pump()

        def pump(self):
            if self.busy:
                return
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                k, _, v = line.partition(":")
                if k.strip().lower() == "content-length":
                    length = int(v)
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4:end + 4 + length]
            self.buf = self.buf[end + 4 + length:]
            if head.startswith("GET"):
                self.t.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(models), models))
                return self.pump()
            self.busy = True
            asyncio.ensure_future(self.serve(json.loads(body)))

        async def serve(self, req):
            try:
                await self.stream(req)
            finally:
                self.busy = False
                if not self.t.is_closing():
                    self.pump()

        async def stream(self, req):
            text = json.dumps(req.get("messages") or req.get("prompt"))
            fault = text.split("FAULT:", 1)[1][:9].strip('"\\ ]}') if "FAULT:" in text else None
            chat = "messages" in req
            n_tokens = int(req.get("max_tokens") or args.tokens)
            if fault == "500":
                body = b'{"error": {"message": "boom"}}'
                self.t.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                return
            if not req.get("stream"):
                await asyncio.sleep(args.ttft + args.itl * max(0, n_tokens // args.tokens_per_chunk - 1))
                content = " tok" * n_tokens
                msg = {"message": {"role": "assistant", "content": content}} if chat else {"text": content}
                body = json.dumps({"choices": [{"index": 0, **msg, "finish_reason": "length"}],
                                   "usage": {"prompt_tokens": 10, "completion_tokens": n_tokens}}).encode()
                self.t.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                return
            self.t.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
            t0 = perf()
            if args.ttft:
                await asyncio.sleep(max(0.0, t0 + args.ttft - perf()))
            first = last = None
            sent = 0
            k = 0
            while sent < n_tokens and fault != "empty":
                step = min(args.tokens_per_chunk, n_tokens - sent)
                key = ("reasoning_content" if sent < args.reasoning else "content") if chat else "text"
                if fault == "malformed" and k == 2:
                    self.t.write(sse(b'{"choices": [{"delta": '))
                    return
                if fault == "reset" and k == 2:
                    self.t.close()
                    return
                if fault == "stall" and k == 2:
                    await asyncio.sleep(3600)
                self.t.write(chunk_for(key, step))
                now = perf()
                first = first if first is not None else now
                last = now
                sent += step
                k += 1
                if args.itl and sent < n_tokens:
                    await asyncio.sleep(max(0.0, t0 + args.ttft + args.itl * k - perf()))
            if not args.no_usage:
                self.t.write(sse({"choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": sent}}))
            if fault == "nodone":
                self.t.write(b"0\r\n\r\n")
                return
            self.t.write(sse(b"[DONE]") + b"0\r\n\r\n")
            if log is not None:
                log.write(json.dumps({"start": t0, "first": first, "last": last, "tokens": sent, "prompt": text[:60]}) + "\n")

    async def serve():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Proto, "127.0.0.1", 0, backlog=4096)
        print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
        await server.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
