"""Collections: several benchmarks mixed into one eval (``--collection FILE``).

File format (YAML or JSON)::

    name: R1-Distill-Math-Test
    sampler: stratified        # stratified | weighted | uniform
    seed: 42
    size: null                 # questions in all; null = every question (stratified only)
    benchmarks:
      - {name: math_500, weight: 500}
      - {name: gpqa_diamond, weight: 198, dataset_path: ~/data/gpqa_diamond.csv}
      - aime24                 # shorthand: weight 1

- ``stratified``: each benchmark keeps its share of the pool (all of it when ``size`` is null).
- ``weighted``: benchmark i gets ``size * w_i / sum(w)`` questions.
- ``uniform``: every benchmark gets ``size / B`` questions.
Counts are rounded by largest remainder so they add up to ``size``; a benchmark never gives
more questions than it has (sampling is without replacement, seeded, order kept). The report
adds micro (OVERALL), MACRO and WEIGHTED rows under the collection's name.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import load_yaml
from ..errors import ConfigError
from .report import CollectionSpec

SAMPLERS = ("stratified", "weighted", "uniform")


@dataclass
class CollectionEntry:
    name: str
    weight: float = 1.0
    dataset_path: str | None = None


@dataclass
class Collection:
    name: str
    sampler: str = "stratified"
    seed: int = 42
    size: int | None = None
    entries: list[CollectionEntry] = field(default_factory=list)

    @property
    def spec(self) -> CollectionSpec:
        return CollectionSpec(self.name, {e.name: e.weight for e in self.entries})

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "sampler": self.sampler, "seed": self.seed, "size": self.size,
                "benchmarks": [{"name": e.name, "weight": e.weight, "dataset_path": e.dataset_path}
                               for e in self.entries]}


def load_collection(path: str) -> Collection:
    data = load_yaml(path, "collection file")
    where = f"collection file {path}"
    entries = []
    raw = data.get("benchmarks")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where} has no `benchmarks` list", "list benchmarks as `- name: math_500`")
    for item in raw:
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict) or not item.get("name"):
            raise ConfigError(f"{where}: every benchmark needs a `name`", "e.g. `- {name: aime24, weight: 1}`")
        try:
            weight = float(item.get("weight", 1.0))
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: weight of {item['name']} is not a number") from None
        if weight < 0 or not math.isfinite(weight):
            raise ConfigError(f"{where}: weight of {item['name']} must be ≥ 0")
        dp = item.get("dataset_path")
        if dp:
            dp = str((Path(path).parent / Path(dp).expanduser()).resolve()) if not Path(dp).expanduser().is_absolute() else str(Path(dp).expanduser())
        entries.append(CollectionEntry(str(item["name"]), weight, dp))
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where} lists a benchmark twice", "list each benchmark once")
    if all(e.weight == 0 for e in entries):
        raise ConfigError(f"{where}: every weight is 0", "give at least one benchmark a weight > 0 (default 1)")
    name = str(data.get("name") or Path(path).stem)
    if name in names:
        raise ConfigError(f"{where}: the collection is named {name!r}, like one of its benchmarks",
                          "name it otherwise (its rows would be mistaken for that benchmark's)")
    sampler = str(data.get("sampler", "stratified"))
    if sampler not in SAMPLERS:
        raise ConfigError(f"{where}: unknown sampler {sampler!r}", f"use one of {', '.join(SAMPLERS)}")
    size = data.get("size")
    if size is not None and (not isinstance(size, int) or size < 1):
        raise ConfigError(f"{where}: size must be a positive integer or null")
    if size is None and sampler != "stratified":
        raise ConfigError(f"{where}: the {sampler} sampler needs a `size`", "add e.g. `size: 200`")
    return Collection(name=name, sampler=sampler, seed=int(data.get("seed", 42)), size=size, entries=entries)


def _largest_remainder(total: int, shares: list[float], caps: list[int]) -> list[int]:
    """Split ``total`` by ``shares`` (never above ``caps``), rounding by largest remainder."""
    counts = [0] * len(shares)
    remaining = min(total, sum(caps))
    active = [i for i, s in enumerate(shares) if s > 0 and caps[i] > 0]
    while remaining > 0 and active:
        weight = sum(shares[i] for i in active)
        exact = {i: remaining * shares[i] / weight for i in active}
        give = {i: min(int(exact[i]), caps[i] - counts[i]) for i in active}
        left = remaining - sum(give.values())
        for i in sorted(active, key=lambda i: (-(exact[i] - int(exact[i])), i)):
            if left <= 0:
                break
            if counts[i] + give[i] < caps[i]:
                give[i] += 1
                left -= 1
        for i, g in give.items():
            counts[i] += g
        remaining -= sum(give.values())
        active = [i for i in active if counts[i] < caps[i]]
        if sum(give.values()) == 0:
            break
    return counts


def sample_collection(coll: Collection, pools: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """Pick each benchmark's questions from its full pool, seeded and order-preserving."""
    sizes = [len(pools[e.name]) for e in coll.entries]
    if coll.size is None:
        counts = sizes
    elif coll.sampler == "stratified":
        counts = _largest_remainder(coll.size, [float(s) for s in sizes], sizes)
    elif coll.sampler == "weighted":
        counts = _largest_remainder(coll.size, [e.weight for e in coll.entries], sizes)
    else:
        counts = _largest_remainder(coll.size, [1.0] * len(sizes), sizes)
    rng = random.Random(coll.seed)
    picked = {}
    for e, pool, k in zip(coll.entries, (pools[e.name] for e in coll.entries), counts):
        idx = sorted(rng.sample(range(len(pool)), k)) if k < len(pool) else list(range(len(pool)))
        picked[e.name] = [pool[i] for i in idx]
    return picked
