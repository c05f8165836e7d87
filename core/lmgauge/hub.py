"""Is the Hugging Face hub there? One quick answer before anything downloads, so that an
offline machine gets one line at once instead of the hub client's retries (tens of seconds).

- :func:`offline`: ``HF_HUB_OFFLINE`` (or ``HF_DATASETS_OFFLINE``) says so.
- :func:`endpoint`: the host and port a download would reach (``HTTPS_PROXY``, ``HF_ENDPOINT``).
- :func:`reachable`: a TCP connection to it within :data:`PROBE_TIMEOUT_S`.
"""
from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

PROBE_TIMEOUT_S = 3.0


def offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def endpoint() -> tuple[str, int]:
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    url = urlparse(proxy or os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    return url.hostname or "huggingface.co", url.port or (443 if url.scheme in ("https", "") else 80)


def reachable(host: str | None = None, port: int | None = None) -> bool:
    if host is None or port is None:
        host, port = endpoint()
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False
