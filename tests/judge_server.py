"""A judge for tests: an OpenAI-compatible server (real HTTP on 127.0.0.1) that answers
verdicts on a known schedule and logs every request.

Run: ``python tests/judge_server.py SCRIPT.json`` → prints ``PORT <n>`` once listening.

The script (JSON)::

    {"model": "judge-model",
     "replies": {"<marker>": "text of the judge's answer", ...},
     "default": "Looks right.\\nVERDICT: CORRECT",
     "faults": {"<marker>": ["500", "400"]}}

A request's marker is the first key of ``replies`` (in script order) found in its user
message; the reply is that key's text, else ``default``. ``faults`` serves failures to the
first attempts whose message holds the marker, in order; later attempts succeed. Every request
is appended to ``SCRIPT.log.jsonl``: the marker, the attempt, the whole user message, the
sampling settings, and whether an Authorization header came (never its value).
"""
from __future__ import annotations

import json
import sys
from collections import defaultdict

from aiohttp import web


def build_app(script: dict, log_path: str) -> web.Application:
    attempts: dict[str, int] = defaultdict(int)
    log = open(log_path, "a", buffering=1)
    model = script.get("model", "judge-model")

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": model, "object": "model"}]})

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("model") != model:
            return web.json_response({"error": {"message": f"model {body.get('model')} not found"}}, status=404)
        user = [m for m in body.get("messages", []) if m.get("role") == "user"][-1]["content"]
        marker = next((k for k in script.get("replies", {}) if k in user), None)
        if marker is None:
            marker = next((k for k in script.get("faults", {}) if k in user), None)
        attempt = attempts[marker or ""]
        attempts[marker or ""] += 1
        log.write(json.dumps({"marker": marker, "attempt": attempt, "user": user,
                              "temperature": body.get("temperature"), "max_tokens": body.get("max_tokens"),
                              "auth": "authorization" in {k.lower() for k in request.headers}}) + "\n")
        faults = script.get("faults", {}).get(marker, []) if marker else []
        if attempt < len(faults):
            status = int(faults[attempt])
            return web.json_response({"error": {"message": f"judge fault {status}"}}, status=status)
        text = script.get("replies", {}).get(marker, script.get("default", "VERDICT: CORRECT")) if marker \
            else script.get("default", "VERDICT: CORRECT")
        return web.json_response({"id": "j", "object": "chat.completion", "model": model,
                                  "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                               "finish_reason": "stop"}],
                                  "usage": {"prompt_tokens": len(user.split()), "completion_tokens": len(text.split())}})

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    return app


if __name__ == "__main__":
    from eval_server import run_script_server  # this folder is on sys.path when run as a script

    run_script_server(build_app, sys.argv[1])
