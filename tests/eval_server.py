"""A scriptable OpenAI-compatible server for eval tests (real HTTP on 127.0.0.1).

Run: ``python tests/eval_server.py SCRIPT.json`` → prints ``PORT <n>`` once listening.

The script (JSON) says what to answer::

    {"model": "test-model", "supports_n": true, "delay": 0.0, "max_in_flight": 0,
     "answers": {"<exact user message>": ["answer for repeat 0", "answer for repeat 1"]},
     "default": "I cannot solve this.",
     "finish_reason": {"<exact user message>": "length"},
     "faults": {"<exact user message>": ["500", "reset", "malformed", "429", "html"]},
     "reasoning": {"<exact user message>": "reasoning_content text"},
     "by_effort": {"low": {"<exact user message>": ["answer at reasoning_effort low"]}}}

``by_effort`` makes the server honour ``reasoning_effort``: a request with that field answers
from the mapping of its value (questions it lacks fall back to ``answers``); without
``by_effort`` the field is accepted and ignored, as servers that do not implement it do.

The repeat index of a request is its ``seed`` (the runner sends seed + repeat) when present,
else the running count of requests for that message. ``faults`` lists failures served to
the first attempts for that message, in order; later attempts succeed. ``max_in_flight`` > 0
serves that many requests at a time (the rest wait their turn, as on a server with a fixed
batch), each taking ``delay`` seconds. Every request is logged
to ``SCRIPT.log.jsonl`` (with whether an Authorization header was present, never its value).
"""
from __future__ import annotations

import asyncio
import json
import sys
from collections import defaultdict

from aiohttp import web


def build_app(script: dict, log_path: str | None) -> web.Application:
    attempts: dict[str, int] = defaultdict(int)
    counts: dict[str, int] = defaultdict(int)
    log = open(log_path, "a", buffering=1) if log_path else None
    slots = asyncio.Semaphore(int(script["max_in_flight"])) if script.get("max_in_flight") else None

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": script.get("model", "test-model"), "object": "model"}]})

    def answer(user: str, repeat: int, effort: object = None) -> str:
        options = (script.get("by_effort") or {}).get(str(effort), {}).get(user) if effort is not None else None
        options = options or script.get("answers", {}).get(user)
        if not options:
            return script.get("default", "I cannot solve this.")
        return options[repeat % len(options)]

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if body.get("model") != script.get("model", "test-model"):
            return web.json_response({"error": {"message": f"model {body.get('model')} not found"}}, status=404)
        if "messages" in body:
            user = [m for m in body["messages"] if m.get("role") == "user"][-1]["content"]
        else:
            user = body.get("prompt", "")
        n = int(body.get("n", 1))
        if n > 1 and not script.get("supports_n", True):
            n = 1  # like servers that silently ignore n
        attempt = attempts[user]
        attempts[user] += 1
        if log:
            log.write(json.dumps({"user": user[:80], "n": n, "seed": body.get("seed"), "attempt": attempt,
                                  "auth": "authorization" in {k.lower() for k in request.headers},
                                  "x_team": request.headers.get("X-Team"),
                                  "x_api_key": "X-Api-Key" in request.headers,
                                  "max_tokens": body.get("max_tokens"), "keys": sorted(body),
                                  "reasoning_effort": body.get("reasoning_effort"),
                                  "temperature": body.get("temperature")}) + "\n")
        faults = script.get("faults", {}).get(user, [])
        if attempt < len(faults):
            kind = faults[attempt]
            if kind == "500":
                return web.json_response({"error": {"message": "internal error"}}, status=500)
            if kind == "429":
                return web.json_response({"error": {"message": "rate limited"}}, status=429)
            if kind == "400":
                return web.json_response({"error": {"message": "bad request: max_tokens too large"}}, status=400)
            if kind == "html":
                return web.Response(text="<html><body>Welcome to nginx!</body></html>", content_type="text/html")
            if kind == "malformed":
                return web.Response(text='{"choices": [ {"message": ', content_type="application/json")
            if kind == "reset":
                request.transport.close()
                raise ConnectionResetError
            if kind == "hang":
                await asyncio.sleep(3600)
        if slots is not None:
            async with slots:
                await asyncio.sleep(float(script.get("delay") or 0.0))
        elif script.get("delay"):
            await asyncio.sleep(float(script["delay"]))
        if body.get("seed") is not None:
            first = int(body["seed"]) - int(script.get("seed_base", 0))
        else:
            first = counts[user]
            counts[user] += n
        choices = []
        for i in range(n):
            text = answer(user, first + i, body.get("reasoning_effort"))
            fr = script.get("finish_reason", {}).get(user, "stop")
            if "messages" in body:
                msg = {"role": "assistant", "content": text}
                if user in script.get("reasoning", {}):
                    msg["reasoning_content"] = script["reasoning"][user]
                choices.append({"index": i, "message": msg, "finish_reason": fr})
            else:
                choices.append({"index": i, "text": text, "finish_reason": fr})
        usage = {"prompt_tokens": len(user.split()), "completion_tokens": sum(len(c.get("message", c).get("content", c.get("text", "")).split()) for c in choices)}
        return web.json_response({"id": "x", "object": "chat.completion", "model": body["model"],
                                  "choices": choices, "usage": usage})

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/completions", chat)
    return app


async def serve_app(app: web.Application, port: int = 0) -> None:
    """Serve ``app`` on 127.0.0.1 (port 0: any free one), print ``PORT <n>``, run until killed.
    The one start-up of the aiohttp test servers (eval, judge, metrics)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    print(f"PORT {site._server.sockets[0].getsockname()[1]}", flush=True)  # type: ignore[union-attr]
    await asyncio.Event().wait()


def run_script_server(build_app, path: str) -> None:
    """``python SERVER.py SCRIPT.json``: the app built from the script, logging to
    ``SCRIPT.json.log.jsonl``, on the script's ``port`` (default: any free one)."""
    with open(path) as fh:
        script = json.load(fh)
    asyncio.run(serve_app(build_app(script, path + ".log.jsonl"), int(script.get("port", 0))))


if __name__ == "__main__":
    run_script_server(build_app, sys.argv[1])
