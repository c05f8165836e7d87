"""Scale-out on Ray (optional: ``pip install 'lmgauge[ray]'``).

- ``ray_perf``: ``lmgauge perf --workers N --ray``: the perf worker shards as Ray actors
  spread over the cluster's nodes.
- ``replicas``: ``--replicas N``: N copies of an in-process backend (transformers, lmdeploy)
  as Ray actors, one GPU each where GPUs exist.

``cluster`` connects and holds what both share. Ray is imported only there, inside functions, and only when ``--ray`` or ``--replicas`` is
given; without it installed those flags fail in one line that says how to install it.
"""
from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from .cluster import INSTALL_HINT, boot_id, connect, import_ray, node_info, short_reason  # noqa: F401


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
