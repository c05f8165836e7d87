"""``--reset-cache``: empty the server's prefix cache before each trial, so that no trial
profits from the prompts of the one before (the same seeded prompts are sent every trial).

- vLLM: ``POST /reset_prefix_cache``. vLLM serves it only when started with
  ``VLLM_SERVER_DEV_MODE=1``; otherwise it answers 404, and lmgauge says so once.
- SGLang: ``POST /flush_cache`` (it refuses while requests are still running: lmgauge retries
  a few times).
- Anything else: one note that nothing was reset.

The routes are tried in that order on each ``--url``'s scheme, host and port; the run's API key
and ``--header`` values go to that same host only. Each level records what happened in
``runs[i].reset_cache`` (per trial in ``per_trial[k].reset_cache``).
"""
from __future__ import annotations

import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..redaction import redact_text

ROUTES = (("vllm", "/reset_prefix_cache"), ("sglang", "/flush_cache"))
DEV_MODE = "served only with VLLM_SERVER_DEV_MODE=1"
TIMEOUT_S = 30.0


def _base(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


def _call(method: str, url: str, headers: dict[str, str]) -> tuple[int | None, bytes, str | None]:
    """(HTTP status, body, error text) of one request."""
    req = urllib.request.Request(url, data=b"" if method == "POST" else None, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:  # noqa: S310 - the user's own server
            return resp.status, resp.read(2000), None
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(2000) if exc.fp else b"", None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        return None, b"", f"{exc.__class__.__name__}: {getattr(exc, 'reason', exc)}"


@dataclass
class ServerReset:
    """What one server offers: ``route`` (``/reset_prefix_cache`` or ``/flush_cache``), else
    None with ``why``."""

    base: str
    server: str | None = None
    route: str | None = None
    why: str = ""


@dataclass
class CacheReset:
    """Resets the prefix cache of the run's servers (``urls``) before each trial."""

    urls: list[str]
    headers: dict[str, str] = field(default_factory=dict)
    servers: list[ServerReset] | None = None
    notes: list[str] = field(default_factory=list)
    _said: set[str] = field(default_factory=set)

    @classmethod
    def for_run(cls, c: Any, bconf: Any) -> "CacheReset":
        urls = list(c.urls or ([c.url] if c.url else []))
        headers = {}
        options = getattr(bconf, "options", None) or {}
        for item in options.get("headers") or ():
            key, sep, value = str(item).partition("=")
            if sep and key.strip() and key.strip().lower() != "content-type":
                headers[key.strip()] = value.strip()
        key = getattr(bconf, "api_key", None)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return cls(urls, headers)

    def note(self, text: str) -> None:
        """A line said once per run (on stderr by the caller)."""
        if text not in self._said:
            self._said.add(text)
            self.notes.append(text)

    def reset(self) -> dict[str, Any]:
        """Reset every server once; returns this trial's record: ``status`` reset, partial,
        refused or none, ``servers`` (per URL: server, route, HTTP status, detail)."""
        if not self.urls:
            self.note("--reset-cache: this backend has no server URL (in-process): nothing to reset")
            return {"status": "none", "servers": [], "at": time.time()}
        if self.servers is None:
            self.servers = [ServerReset(b) for b in (_base(u) for u in self.urls) if b]
        out = [self._reset_one(s) for s in self.servers]
        done = sum(1 for s in out if s["reset"])
        status = "reset" if out and done == len(out) else "partial" if done else (
            "refused" if any(s.get("server") == "vllm" for s in out) else "none")
        return {"status": status, "servers": out, "at": time.time()}

    def _reset_one(self, s: ServerReset) -> dict[str, Any]:
        where = redact_text(s.base)
        if s.route is None and s.why:  # found out before: nothing to reset there
            return {"url": where, "server": s.server, "route": None, "reset": False, "detail": s.why}
        routes = [(s.server, s.route)] if s.route else list(ROUTES)
        refused: list[str] = []
        for server, route in routes:
            for attempt in range(4):
                status, body, error = _call("POST", s.base + route, self.headers)
                if status == 400 and server == "sglang" and attempt < 3:  # requests still running
                    time.sleep(0.5)
                    continue
                break
            if status is not None and 200 <= status < 300:
                s.server, s.route = server, route
                return {"url": where, "server": server, "route": route, "http": status, "reset": True}
            if status in (404, 405):
                refused.append(f"POST {route} {status}")
                continue
            detail = error or f"HTTP {status}: {redact_text(body.decode('utf-8', 'replace').strip())[:200]}"
            if status in (401, 403):
                detail = f"HTTP {status}: the server refused the API key for POST {route}"
            self.note(f"--reset-cache: {where}: POST {route} failed ({detail}); the cache was not reset")
            return {"url": where, "server": server, "route": route, "http": status, "reset": False, "detail": detail}
        # neither route exists: is it a vLLM without dev mode?
        s.server = "vllm" if _looks_like_vllm(s.base, self.headers) else None
        if s.server == "vllm":
            s.why = f"vLLM refused POST /reset_prefix_cache (404): it is {DEV_MODE}"
            self.note(f"--reset-cache: {where}: {s.why}; nothing was reset (start vLLM with VLLM_SERVER_DEV_MODE=1)")
        else:
            s.why = ("the server has no prefix-cache reset (" + ", ".join(refused) + "; vLLM serves /reset_prefix_cache "
                     f"{DEV_MODE}, SGLang serves /flush_cache)")
            self.note(f"--reset-cache: {where}: {s.why}: nothing was reset")
        return {"url": where, "server": s.server, "route": None, "reset": False, "detail": s.why}


def _looks_like_vllm(base: str, headers: dict[str, str]) -> bool:
    """vLLM answers ``GET /version`` with ``{"version": ...}`` (SGLang's server info differs)."""
    import orjson

    status, body, _ = _call("GET", base + "/version", headers)
    if status != 200:
        return False
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(data, dict) and isinstance(data.get("version"), str)


def level_record(trials: list[dict[str, Any]]) -> dict[str, Any]:
    """``runs[i].reset_cache``: the level's resets summed over its trials."""
    ok = sum(1 for t in trials if t["status"] == "reset")
    servers = sorted({s.get("server") or "?" for t in trials for s in t["servers"]})
    routes = sorted({s.get("route") for t in trials for s in t["servers"] if s.get("route")})
    details = sorted({s.get("detail") for t in trials for s in t["servers"] if s.get("detail")})
    status = "reset" if ok == len(trials) else "partial" if ok else trials[-1]["status"] if trials else "none"
    out: dict[str, Any] = {"status": status, "resets": ok, "trials": len(trials), "servers": servers, "routes": routes}
    if details:
        out["detail"] = details[0]
    return out
