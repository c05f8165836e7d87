"""Scale-out on Ray (optional: ``pip install 'lmgauge[ray]'``).

- ``ray_perf``: ``lmgauge perf --workers N --ray``: the perf worker shards as Ray actors
  spread over the cluster's nodes.
- ``replicas``: ``--replicas N``: N copies of an in-process backend (transformers, lmdeploy)
  as Ray actors, one GPU each where GPUs exist.

Ray is imported only here, inside functions, and only when ``--ray`` or ``--replicas`` is
given; without it installed those flags fail in one line that says how to install it.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError

INSTALL_HINT = "pip install 'lmgauge[ray]'"


def ray_perf_workers(n: int, backend_name: str, config: Any, tokenizer_spec: str | None, source: Any, load: Any,
                     address: str | None = None) -> Any:
    """``perf --workers N --ray``: see :func:`lmgauge.scale.ray_perf.run_ray_workers`."""
    from .ray_perf import run_ray_workers

    return run_ray_workers(n, backend_name, config, tokenizer_spec, source, load, address)


def replica_backend(backend_name: str, config: Any, replicas: int, gpus_per_replica: float | None = None,
                    address: str | None = None) -> Any:
    """``--replicas N``: see :class:`lmgauge.scale.replicas.ReplicaBackend`."""
    from ..plugins import get_manager
    from .replicas import ReplicaBackend

    if not getattr(get_manager().get("backends", backend_name), "process_local", False):
        raise ConfigError(f"--replicas runs copies of an in-process model; the {backend_name} backend talks to a server",
                          "give the server's replicas as several --base-url / --url instead")
    return ReplicaBackend(backend_name, config, replicas, gpus_per_replica, address)


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
