"""What keeps ``lmgauge serve`` safe to leave running.

- **Token.** In force when ``--token`` is given, and always on a host other than loopback
  (one is generated and printed in the start-up URL, as Jupyter does). Every route accepts it
  as ``?token=T`` (then kept in an HttpOnly, SameSite=Strict cookie; a page URL carrying it is
  redirected to the same URL without it), as ``Authorization: Bearer T`` or as that cookie.
  Anything else gets 401. Compared in constant time.
- **Host header** (DNS rebinding: a page of a foreign site whose name was pointed at this
  server). Accepted: an IP literal (rebinding needs a name), ``localhost``, the bound host,
  this machine's names, and each ``--allow-host`` (``*``: any). Anything else gets 403.
- **Headers** on every response: a Content-Security-Policy allowing only the app's own files
  (no inline script or style, no other origin), nosniff, no referrer, no framing; API
  responses are not cached.
"""
from __future__ import annotations

import hmac
import ipaddress
import secrets
import socket
from typing import Iterable
from urllib.parse import urlencode

from aiohttp import web

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "X-Frame-Options": "DENY", "Cross-Origin-Opener-Policy": "same-origin",
           "Cross-Origin-Resource-Policy": "same-origin"}


def is_loopback(host: str) -> bool:
    h = host.strip("[]")
    if h.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(24)


def host_name(header: str) -> str:
    """The name of a Host header, without its port (``[::1]:7860`` → ``::1``)."""
    h = header.strip().lower()
    if h.startswith("["):
        return h[1:h.find("]")] if "]" in h else h
    if h.count(":") == 1:
        return h.rsplit(":", 1)[0]
    return h


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


class Guard:
    """The token and Host checks of one server."""

    def __init__(self, host: str, port: int, token: str | None, allow_hosts: Iterable[str] = ()):
        self.token = token
        self.cookie = f"lmgauge_token_{port}"
        names = {"localhost", host_name(host) if host else ""}
        if not is_loopback(host):
            for name in (socket.gethostname(), socket.getfqdn()):
                if name:
                    names.add(name.lower())
        allow = {a.strip().lower() for a in allow_hosts if a.strip()}
        self.any_host = "*" in allow
        self.names = {n for n in names | allow if n and n != "*"}

    def host_ok(self, header: str | None) -> bool:
        if self.any_host:
            return True
        if not header:
            return False
        name = host_name(header)
        return _is_ip(name) or name in self.names

    def _given(self, request: web.Request) -> tuple[str | None, bool]:
        """(the token the request carries, whether it came in the query)."""
        q = request.query.get("token")
        if q is not None:
            return q, True
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip(), False
        return request.cookies.get(self.cookie), False

    def token_ok(self, given: str | None) -> bool:
        return self.token is None or (given is not None and hmac.compare_digest(given.encode(), self.token.encode()))

    @web.middleware
    async def middleware(self, request: web.Request, handler):
        if not self.host_ok(request.headers.get("Host")):
            return web.Response(status=403, text="403: this server does not answer for that Host header "
                                                 "(pass --allow-host NAME to lmgauge serve to allow it)\n")
        if self.token is not None:
            given, in_query = self._given(request)
            if not self.token_ok(given):
                return web.Response(status=401, text="401: a token is needed: open the URL lmgauge serve printed "
                                                     "(.../?token=T)\n", headers={"WWW-Authenticate": "Bearer"})
            if in_query:
                request["set_cookie"] = True
                if request.method == "GET" and not request.path.startswith(("/api/", "/static/")):
                    rest = [(k, v) for k, v in request.query.items() if k != "token"]
                    redirect = web.HTTPSeeOther(request.rel_url.raw_path + ("?" + urlencode(rest) if rest else ""))
                    redirect.set_cookie(self.cookie, self.token, httponly=True, samesite="Strict", path="/")
                    raise redirect
        return await handler(request)

    async def on_prepare(self, request: web.Request, resp: web.StreamResponse) -> None:
        """Every response (streams included): the headers above, and the cookie when the
        request brought the token in its query."""
        for k, v in HEADERS.items():
            resp.headers.setdefault(k, v)
        if not request.path.startswith("/static/"):
            resp.headers.setdefault("Cache-Control", "no-store")
        if request.get("set_cookie") and self.token:
            resp.set_cookie(self.cookie, self.token, httponly=True, samesite="Strict", path="/")
