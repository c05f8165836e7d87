"""Connecting to a Ray cluster and what shards and replicas share: the one-line error
without Ray, the connection (a given address, ``$RAY_ADDRESS``, or a local instance on
loopback), the machine's boot id (one CLOCK_MONOTONIC), where an actor runs, why an actor is
gone."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError

INSTALL_HINT = "pip install 'lmgauge[ray]'"


def import_ray(flag: str = "--ray") -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(f"{flag} needs Ray", INSTALL_HINT) from None
    return ray


def connect(address: str | None, flag: str = "--ray") -> tuple[Any, bool]:
    """Connect to the Ray cluster at ``address`` (HOST:PORT of the head's GCS, or ``ray://``),
    else to ``$RAY_ADDRESS``, else start a local Ray instance. Returns (ray, whether this call
    connected: then the caller calls ``ray.shutdown()`` when done)."""
    ray = import_ray(flag)
    if ray.is_initialized():
        return ray, False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    kwargs: dict[str, Any] = {"logging_level": logging.ERROR}  # Ray's start-up notices are not ours to print
    if not address and not os.environ.get("RAY_ADDRESS"):
        kwargs["include_dashboard"] = False  # a local instance of our own: no web server, on loopback only
        kwargs["_node_ip_address"] = "127.0.0.1"
    try:
        ray.init(address=address or None, **kwargs)
    except (ConnectionError, ValueError, RuntimeError, TimeoutError) as exc:
        where = address or os.environ.get("RAY_ADDRESS") or "a new local instance"
        text = " ".join(str(exc).split())[:200]
        raise ConfigError(f"cannot connect to the Ray cluster at {where}: {text}",
                          "pass --ray-address HOST:6379 of the head node (or ray://HOST:10001); a cluster with "
                          "token authentication also needs RAY_AUTH_MODE=token and its token") from None
    return ray, True


def boot_id() -> str | None:
    """Identifies this machine's boot: processes with the same boot id share CLOCK_MONOTONIC,
    so their ``perf_counter()`` values need no translation."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def node_info() -> dict[str, Any]:
    """Where the calling Ray worker runs (called inside an actor)."""
    import socket

    import ray

    return {"node_id": ray.get_runtime_context().get_node_id(), "ip": ray.util.get_node_ip_address(),
            "host": socket.gethostname(), "pid": os.getpid(), "boot_id": boot_id()}


def short_reason(exc: BaseException) -> str:
    """One short phrase for why a Ray actor is gone (Ray's own messages run to paragraphs)."""
    cause = getattr(exc, "cause", None)  # a RayTaskError carries the exception raised in the actor
    if isinstance(cause, BaseException):
        return f"{cause.__class__.__name__}: {' '.join(str(cause).split())[:160]}"
    text = " ".join(str(exc).split())
    # first match wins: Ray's texts list possible causes (OOM, ray stop) that did not happen
    for needle, phrase in (("node has died", "node died"), ("node was", "node died"), ("NodeDied", "node died"),
                           ("worker process has died", "worker process died"),
                           ("unexpectedly exits", "worker process died"), ("exited unexpectedly", "worker process died"),
                           ("low on memory", "out of memory"), ("ray.kill", "actor killed"),
                           ("unavailable", "actor unreachable")):
        if needle in text:
            return phrase
    return f"{exc.__class__.__name__}: {text[:120]}"
