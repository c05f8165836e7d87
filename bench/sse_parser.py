"""CPU cost of the openai backend's SSE parsing per request, in-process (no sockets, no server).

What bench/perf_throughput.py measures end to end, minus the network and aiohttp: for each
request, a fresh parser state, the body fed in reads of ``--read`` bytes (each read stamped with
``perf_counter()`` first, as openai_stream does), the end of the body, and the completion step
(usage → token counts, success). The body is what tests/perf_server.py sends: ``--tokens`` chat
chunks of one token, a usage chunk, ``[DONE]``.

It runs against whichever ``lmgauge_backends`` is first on ``sys.path``, with the endpoint-kind
classes (endpoint_kinds.py) or the module-level parser of earlier versions, so two trees can be
compared by PYTHONPATH, e.g. (the base tree made with ``git worktree add /tmp/base <commit>``):

    PYTHONPATH=/tmp/base/plugins/backends .venv/bin/python bench/sse_parser.py
    .venv/bin/python bench/sse_parser.py

The garbage collector is off while timing (perf quiets it too). Prints the best of ``--rounds``
rounds of ``--number`` requests each: µs per request and per chunk.
"""
from __future__ import annotations

import argparse
import time

import orjson

from lmgauge.plugin import BackendConfig, GenerationRequest, PerfRecord


def body(tokens: int) -> bytes:
    out = [b"data: " + orjson.dumps({"id": "c", "object": "chat.completion.chunk", "model": "perf-model",
                                     "choices": [{"index": 0, "delta": {"content": " tok"}, "finish_reason": None}]})
           + b"\n\n" for _ in range(tokens)]
    out.append(b"data: " + orjson.dumps({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}],
                                         "usage": {"prompt_tokens": 10, "completion_tokens": tokens}}) + b"\n\n")
    out.append(b"data: [DONE]\n\n")
    return b"".join(out)


def runner(url: str):
    """One request's parse + completion with this tree's API: a function of (record, reads)."""
    from lmgauge_backends.openai_backend import OpenAIBackend

    backend = OpenAIBackend(BackendConfig(model="perf-model", base_url=url, options={"require_done": True}))
    request = GenerationRequest(prompt="hello")
    perf_counter = time.perf_counter
    if hasattr(backend, "kind"):  # the endpoint-kind classes
        kind = backend.kind

        def one(record, reads):
            state = kind.parser(record, request)
            buf = b""
            for chunk in reads:
                now = perf_counter()
                buf = buf + chunk if buf else chunk
                used = state.feed(buf, now)
                if used:
                    buf = buf[used:]
            now = perf_counter()
            state.finish(now)
            kind.complete(state, backend.count_tokens)
        return one, "endpoint_kinds"
    else:  # earlier versions: the parser and the completion step in openai_stream
        from lmgauge_backends import openai_stream as s

        def one(record, reads):
            parser = s._Parser(record, True)
            buf = b""
            for chunk in reads:
                now = perf_counter()
                buf = buf + chunk if buf else chunk
                used = parser.feed(buf, now)
                if used:
                    buf = buf[used:]
            now = perf_counter()
            parser.finish(now)
            s._complete(backend, record, parser, True)
        return one, "module parser"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--read", type=int, default=65536, help="bytes per read (default: the whole body in one read)")
    ap.add_argument("--number", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    data = body(args.tokens)
    reads = [data[i:i + args.read] for i in range(0, len(data), args.read)]
    one, layout = runner("http://127.0.0.1:9/v1/chat/completions")
    check = PerfRecord()
    one(check, reads)
    assert check.success and check.completion_tokens == args.tokens and len(check.chunk_times) == args.tokens, check
    import gc

    gc.collect()
    gc.disable()  # as perf quiets the collector while it times requests; allocation noise otherwise
    best = float("inf")
    for _ in range(args.rounds):
        records = [PerfRecord() for _ in range(args.number)]
        t0 = time.perf_counter()
        for rec in records:
            one(rec, reads)
        best = min(best, (time.perf_counter() - t0) / args.number)
    import lmgauge_backends.openai_stream

    print(f"{layout} ({lmgauge_backends.openai_stream.__file__}): {best * 1e6:.2f} µs per request of {args.tokens} chunks "
          f"({len(reads)} read(s) of {len(data)} bytes), {best * 1e6 / args.tokens:.3f} µs per chunk; "
          f"best of {args.rounds} x {args.number}")


if __name__ == "__main__":
    main()
