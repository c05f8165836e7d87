"""The installed perf metrics (``register_perf_metrics``: lmgauge's own and every plugin's),
in table order, and what follows from their declarations: perf.sqlite columns, ``--sla``
names."""
from __future__ import annotations

import copy
from typing import Any

from ..interfaces import PerfMetric
from ..runfolder.perfstore import MetricColumn

_CACHE: dict[int, list[PerfMetric]] = {}


def perf_metrics(pm: Any = None) -> list[PerfMetric]:
    """Every installed perf metric (instances, with their option values at their defaults),
    ordered by ``order`` then name. Computed once per plugin manager."""
    from ..options import values_for
    from ..plugins import get_manager

    pm = pm or get_manager()
    found = _CACHE.get(id(pm))
    if found is None:
        found = []
        for name in pm.names("perf_metrics"):
            obj = pm.get("perf_metrics", name)
            metric = obj() if isinstance(obj, type) else copy.copy(obj)
            metric.options = values_for(metric, {})
            found.append(metric)
        found.sort(key=lambda m: (m.order, m.name))
        _CACHE[id(pm)] = found
    return found


def computation_order(metrics: list[PerfMetric]) -> list[PerfMetric]:
    """The per-request metrics in the order their values are computed: the core's own first,
    in lmgauge.perf.builtin_metrics order (TPOT reads TTFT and latency), then the plugins'."""
    from .builtin_metrics import BUILTIN

    own = {cls.name: i for i, cls in enumerate(BUILTIN)}
    return sorted((m for m in metrics if m.kind == "request"), key=lambda m: (m.name not in own, own.get(m.name, 0)))


def metric_columns(metrics: list[PerfMetric] | None = None) -> list[MetricColumn]:
    """The perf.sqlite columns of the stored per-request metrics: ``itl_s`` is stored as
    ``itl_json`` (schema 1's name), every other one under its key."""
    out = []
    for m in metrics if metrics is not None else perf_metrics():
        if m.kind == "request" and m.stored:
            key = m.summary_key
            name = key[:-2] + "_json" if m.is_list and key.endswith("_s") else key
            out.append(MetricColumn(key, name, m.is_list))
    return out


def sla_names(metrics: list[PerfMetric] | None = None) -> dict[str, PerfMetric]:
    """``--sla`` name (and alias) → metric."""
    out: dict[str, PerfMetric] = {}
    for m in metrics if metrics is not None else perf_metrics():
        for n in (m.name, *m.aliases):
            out.setdefault(n, m)
    return out
