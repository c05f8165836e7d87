"""Built-in eval metrics (registered through ``register_metrics`` like any plugin's) and the
aggregation with 95% confidence intervals.

- ``AveragePass@1``: mean score over the k repeats of a question.
- ``pass@k``: unbiased estimator 1 - C(n-c, k)/C(n, k) (Chen et al. 2021) with n = k repeats,
  i.e. 1 if any repeat is correct.
- ``maj@k``: score of the most frequent extracted answer (ties: the earliest to reach the top
  count); a question whose repeats extracted nothing scores 0.

A benchmark/subset's score is the mean of its questions' per-question values. The 95% CI is a
Wilson interval when every per-question value is 0 or 1, else a Student-t interval, cut to
[0, 1] when every value lies there (a mean of scores cannot leave it; with few questions the
t-interval alone does: schema-1 reports hold such bounds, e.g. [-3.9, 4.6] over two questions).
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Sequence

from ..hookspecs import hookimpl
from ..interfaces import Metric


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod((n - c - i) / (n - i) for i in range(k))


class AveragePass1(Metric):
    name = "AveragePass@1"
    description = "mean score over repeats (pass@1 estimated from k samples)"
    default = True

    def per_question(self, values, extracted, k):
        return sum(values) / len(values) if values else 0.0


class PassAtK(Metric):
    name = "pass@k"
    description = "unbiased pass@k, k = number of repeats"
    default = True
    min_repeats = 2

    def label(self, k: int) -> str:
        return f"pass@{k}"

    def per_question(self, values, extracted, k):
        n = len(values)
        c = sum(1 for v in values if v >= 1.0)
        return pass_at_k(n, c, min(k, n)) if n else 0.0


class MajAtK(Metric):
    name = "maj@k"
    description = "majority vote over the k extracted answers"
    default = True
    min_repeats = 2

    def label(self, k: int) -> str:
        return f"maj@{k}"

    def per_question(self, values, extracted, k):
        votes = [(e, v) for e, v in zip(extracted, values) if e is not None and e != ""]
        if not votes:
            return 0.0
        counts = Counter(e for e, _ in votes)
        top = max(counts.values())
        for e, v in votes:  # earliest answer reaching the top count wins a tie
            if counts[e] == top:
                return float(v)
        return 0.0


@hookimpl
def register_metrics(register):
    register(AveragePass1())
    register(PassAtK())
    register(MajAtK())


def confidence_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """95% CI of the mean of ``values``: Wilson for 0/1 data, Student-t otherwise."""
    n = len(values)
    if n == 0:
        return (math.nan, math.nan)
    from scipy import stats

    mean = sum(values) / n
    if all(v in (0.0, 1.0) for v in values):
        z = float(stats.norm.ppf(0.5 + level / 2))
        denom = 1 + z * z / n
        centre = (mean + z * z / (2 * n)) / denom
        half = z * math.sqrt(mean * (1 - mean) / n + z * z / (4 * n * n)) / denom
        return (max(0.0, centre - half), min(1.0, centre + half))
    if n == 1:
        return (mean, mean)
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * math.sqrt(var / n)
    lo, hi = mean - half, mean + half
    if all(0.0 <= v <= 1.0 for v in values):  # a mean of scores in [0, 1] lies in [0, 1]
        lo, hi = max(0.0, lo), min(1.0, hi)
    return (lo, hi)
