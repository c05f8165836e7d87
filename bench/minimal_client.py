"""The floor to compare a perf client with: a bare aiohttp streaming loop that measures nothing.

``python bench/minimal_client.py URL CONCURRENCY NUMBER MAX_TOKENS`` sends NUMBER streaming chat
requests with CONCURRENCY in flight, reads each body to the end, and prints one JSON line:
``{"requests": n, "ok": n, "wall_s": s, "cpu_s": s}``. No timestamps, no parsing, no records:
whatever a real client does on top of this is its own cost.
"""
from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp


async def main(url: str, concurrency: int, number: int, max_tokens: int) -> None:
    body = json.dumps({"model": "perf-model", "messages": [{"role": "user", "content": "hello"}],
                       "max_tokens": max_tokens, "stream": True}).encode()
    headers = {"Content-Type": "application/json"}
    todo = iter(range(number))
    ok = 0

    async def loop(session: aiohttp.ClientSession) -> None:
        nonlocal ok
        for _ in todo:
            async with session.post(url, data=body, headers=headers) as resp:
                while await resp.content.readany():
                    pass
                ok += resp.status == 200

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        c0, t0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(loop(session) for _ in range(concurrency)))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps({"requests": number, "ok": ok, "wall_s": wall, "cpu_s": cpu}))


if __name__ == "__main__":
    url, c, n, t = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    asyncio.run(main(url, c, n, t))
