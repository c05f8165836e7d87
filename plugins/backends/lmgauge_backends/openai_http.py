"""HTTP helpers shared by the openai backend (openai_backend.py) and its streaming hot path
(openai_stream.py): endpoint URLs and error bodies. Neither of those two modules imports the
other's internals; both import this one."""
from __future__ import annotations

from urllib.parse import urlsplit

import orjson

from lmgauge.errors import ConfigError

#: endpoint kind → path after the base URL (``http://h:p/v1``)
ENDPOINTS = {"chat": "/chat/completions", "completions": "/completions", "embeddings": "/embeddings",
             "rerank": "/rerank", "score": "/score", "responses": "/responses"}
#: kinds that generate text (the others answer with one JSON body: vectors or scores)
GENERATIVE = ("chat", "completions", "responses")
#: ``--api`` values besides the kinds: EvalScope's names (``openai``: follow the URL, chat if it
#: names no endpoint) and plurals people write
API_ALIASES = {"openai": None, "embedding": "embeddings",
               "openai_embedding": "embeddings", "openai_rerank": "rerank", "reranks": "rerank",
               "openai_responses": "responses", "openai_response": "responses", "chat_completions": "chat"}


def api_kind(api: str | None) -> str | None:
    """The endpoint kind an ``--api`` value names (None: follow the URL); one line listing
    the kinds for an unknown value."""
    if api is None:
        return None
    key = str(api).strip().lower().replace("-", "_")
    if key in ENDPOINTS:
        return key
    if key in API_ALIASES:
        return API_ALIASES[key]
    raise ConfigError(f"unknown --api {api!r}",
                      f"use one of {', '.join(ENDPOINTS)} (EvalScope's openai, embedding, rerank, "
                      "openai_responses also work), or leave it out to follow the --url path")


def url_kind(path: str) -> str | None:
    """The endpoint kind a URL path ends in, if any (``/v1/chat/completions`` → chat)."""
    for kind in ("chat", "completions", "embeddings", "rerank", "score", "responses"):
        if path.endswith(ENDPOINTS[kind]):
            return kind
    return None


def split_url(url: str, api: str | None) -> tuple[str, str, str]:
    """Return (base, endpoint, kind) for a base URL (``http://h:p/v1``) or a full endpoint URL
    (``.../v1/chat/completions``, ``/completions``, ``/embeddings``, ``/rerank``, ``/score``,
    ``/responses``). The URL's path decides the kind when it names an endpoint; otherwise
    ``api`` does (chat when it is None or EvalScope's ``openai``). An ``api`` naming another
    kind than the URL's path is an error, except chat or completions, where the path wins (eval
    passes its default ``chat`` with any URL, and refuses endpoints that are neither)."""
    if not url:
        raise ConfigError("no server URL given",
                          "pass --base-url http://HOST:PORT/v1 (eval) or --url http://HOST:PORT/v1/chat/completions (perf)")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"invalid server URL {url!r}",
                          "use http(s)://HOST:PORT/v1 or the full endpoint URL, e.g. .../v1/chat/completions")
    want = api_kind(api)
    base = url.rstrip("/")
    named = url_kind(urlsplit(base).path)
    if named is not None:
        if want is not None and want != named and want not in ("chat", "completions"):
            raise ConfigError(f"--api {api} does not match the URL {url}, which ends in {ENDPOINTS[named]}",
                              f"pass the base URL (http://HOST:PORT/v1) with --api {want}, or the URL ending in "
                              f"{ENDPOINTS[want]}")
        return base[: -len(ENDPOINTS[named])], base, named
    kind = want or "chat"
    return base, base + ENDPOINTS[kind], kind


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
