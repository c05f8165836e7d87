"""A zero-latency OpenAI-compatible server on a raw asyncio Protocol, for benchmarks.

``python bench/fast_openai_server.py [--answer TEXT]`` prints ``PORT <n>``. It answers
``GET /v1/models`` and any ``POST`` with one chat completion whose content is ``--answer``
(for a MATH-style answer: ``The answer is \\boxed{42}``). It parses just enough HTTP/1.1 for
keep-alive clients (Content-Length bodies), so it costs far less CPU than the client under test.
"""
from __future__ import annotations

import argparse
import asyncio
import json


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--answer", default="So the answer is $\\boxed{\\frac{14}{3}}$.")
    ap.add_argument("--model", default="bench-model")
    args = ap.parse_args()
    body = json.dumps({"id": "b", "object": "chat.completion", "model": args.model,
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": args.answer},
                                    "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 50, "completion_tokens": 12}}).encode()
    models = json.dumps({"data": [{"id": args.model}]}).encode()

    def response(payload: bytes) -> bytes:
        return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(payload)).encode() + b"\r\n\r\n" + payload)

    ok, ok_models = response(body), response(models)

    class Proto(asyncio.Protocol):
        def connection_made(self, transport):
            self.t = transport
            self.buf = b""

        def data_received(self, data):
            self.buf += data
            while True:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = self.buf[:end]
                length = 0
                i = head.lower().find(b"content-length:")
                if i >= 0:
                    length = int(head[i + 15:head.find(b"\r\n", i) if head.find(b"\r\n", i) > 0 else None])
                if len(self.buf) < end + 4 + length:
                    return
                self.buf = self.buf[end + 4 + length:]
                self.t.write(ok_models if head.startswith(b"GET") else ok)

    async def serve():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Proto, "127.0.0.1", 0, backlog=4096)
        print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
        await server.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
