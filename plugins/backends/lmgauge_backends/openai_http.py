"""HTTP helpers shared by the openai backend (openai_backend.py) and its streaming hot path
(openai_stream.py): endpoint URLs and error bodies. Neither of those two modules imports the
other's internals; both import this one."""
from __future__ import annotations

from urllib.parse import urlsplit

import orjson

from lmgauge.errors import ConfigError

ENDPOINTS = {"chat": "/chat/completions", "completions": "/completions"}


def split_url(url: str, api: str | None) -> tuple[str, str, str]:
    """Return (base, endpoint, api) for a base URL (``http://h:p/v1``) or a full endpoint URL
    (``http://h:p/v1/chat/completions`` or ``.../v1/completions``; the path decides the API).
    ``api`` None or ``"openai"`` (EvalScope's value) means chat unless the URL says otherwise."""
    if not url:
        raise ConfigError("no server URL given",
                          "pass --base-url http://HOST:PORT/v1 (eval) or --url http://HOST:PORT/v1/chat/completions (perf)")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"invalid server URL {url!r}",
                          "use http(s)://HOST:PORT/v1 or the full /v1/chat/completions URL")
    if api not in (None, "openai", *ENDPOINTS):
        raise ConfigError(f"unknown --api {api!r}", f"use {', '.join(ENDPOINTS)} (or openai: follow the URL)")
    base = url.rstrip("/")
    for name, suffix in (("chat", "/chat/completions"), ("completions", "/completions")):
        if base.endswith(suffix):
            return base[: -len(suffix)], base, name
    api = "chat" if api in (None, "openai") else api
    return base, base + ENDPOINTS[api], api


def error_text(body: bytes, limit: int = 200) -> str:
    """The message of an error body (OpenAI ``{"error": {"message": ...}}``, FastAPI
    ``{"detail": ...}``, or the raw text), on one line, at most ``limit`` characters."""
    try:
        data = orjson.loads(body)
        err = data.get("error", data) if isinstance(data, dict) else data
        if isinstance(err, dict):
            err = err.get("message") or err.get("detail") or err
        text = str(err)
    except Exception:  # noqa: BLE001 - any body is fine to quote
        text = body[:2 * limit].decode("utf-8", "replace")
    return " ".join(text.split())[:limit]
