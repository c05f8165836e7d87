"""Server URLs of the openai backend: which endpoint kind (endpoint_kinds.KINDS) a ``--url`` /
``--base-url`` and ``--api`` name."""
from __future__ import annotations

from urllib.parse import urlsplit

from lmgauge.plugin import ConfigError

from .endpoint_kinds import DEFAULT_KIND, KINDS, api_kind, error_text, url_kind

__all__ = ["split_url", "api_kind", "url_kind", "error_text"]


def split_url(url: str, api: str | None) -> tuple[str, str, str]:
    """Return (base, endpoint, kind) for a base URL (``http://h:p/v1``) or a full endpoint URL
    (``.../v1/chat/completions``, ``/completions``, ``/embeddings``, ``/rerank``, ``/score``,
    ``/responses``: each kind's ``path``). The URL's path decides the kind when it names an
    endpoint; otherwise ``api`` does (``DEFAULT_KIND``, chat, when it is None or EvalScope's
    ``openai``). An ``api`` naming another kind than the URL's path is an error, except a kind lmgauge eval
    serves (chat or completions), where the path wins (eval passes its default ``chat`` with
    any URL, and refuses endpoints that serve no eval)."""
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
        if want is not None and want != named and not KINDS[want].serves_eval:
            raise ConfigError(f"--api {api} does not match the URL {url}, which ends in {KINDS[named].path}",
                              f"pass the base URL (http://HOST:PORT/v1) with --api {want}, or the URL ending in "
                              f"{KINDS[want].path}")
        return base[: -len(KINDS[named].path)], base, named
    kind = want or DEFAULT_KIND
    return base, base + KINDS[kind].path, kind
