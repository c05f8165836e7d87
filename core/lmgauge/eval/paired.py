"""Paired significance tests between two eval runs of the same questions (pure statistics).

Two paths, chosen by the data (:func:`paired_test`):

- **Binary** (every per-question value is 0 or 1; single-repeat runs): the exact McNemar test,
  i.e. a two-sided exact binomial test on the discordant questions (B right and A wrong vs A
  right and B wrong, each 1/2 under the null), and Newcombe's square-and-add interval for the
  difference of paired proportions (Newcombe 1998, method 10, with the correlation estimate
  as recommended by Fagerland, Lydersen & Laake 2013: Wilson intervals of both accuracies,
  combined with a continuity-adjusted phi).
- **Mean scores** (AveragePass@1 over repeats; the runs may have different repeat counts):
  a paired sign-flip permutation test over questions on the mean difference (exact
  enumeration when at most :data:`EXACT_MAX_NONZERO` questions differ, else Monte Carlo
  with ``resamples`` random sign vectors and the (1 + hits) / (1 + resamples) p-value), and a
  paired bootstrap over questions for the 95% CI of the mean difference (expanded percentile
  interval, which keeps its coverage on small subsets; see :func:`bootstrap_ci`).

On 0/1 data both tests are the same test (a sign flip of a ±1 difference is a fair coin), so
the choice changes only the interval. Everything is vectorised with numpy and seeded: the
same inputs and seed give the same numbers.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
from scipy import stats

EXACT_MAX_NONZERO = 20  # 2**20 sign vectors, ~8 MB, a few ms
DEFAULT_RESAMPLES = 10_000  # random sign flips and bootstrap resamples (lmgauge compare --resamples)
_CHUNK = 2_000  # rows of random signs / bootstrap indices per block (bounds memory)

MCNEMAR = "exact McNemar"
PERMUTATION_EXACT = "paired permutation (exact)"
PERMUTATION_MC = "paired permutation"
NEWCOMBE = "Newcombe square-and-add"
BOOTSTRAP = "paired bootstrap (expanded percentile)"


@dataclass
class PairedResult:
    """One paired comparison. Scores are fractions (0..1); ``diff`` = ``mean_b - mean_a``."""

    n: int
    mean_a: float
    mean_b: float
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    alpha: float
    test: str
    ci_method: str
    resamples: int | None = None       # Monte Carlo sign vectors (None: exact)
    b_only: int | None = None          # McNemar: questions only B got right
    a_only: int | None = None          # McNemar: questions only A got right
    differing: int = 0                 # questions whose values differ
    min_p: float = 0.0                 # the smallest p-value this many differing questions allow

    @property
    def significant(self) -> bool:
        return self.p_value < self.alpha

    @property
    def underpowered(self) -> bool:
        """True when no outcome with this many differing questions could be significant."""
        return self.min_p >= self.alpha

    def verdict(self, a: str = "A", b: str = "B") -> str:
        return verdict_text(self, a, b)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["significant"] = self.significant
        return d


# --------------------------------------------------------------------------------------
# binary path
def mcnemar_exact(b_only: int, a_only: int) -> float:
    """Two-sided exact McNemar p-value: twice the smaller binomial tail of the discordant
    counts under p = 1/2 (capped at 1)."""
    n = b_only + a_only
    if n == 0:
        return 1.0
    return float(min(1.0, 2.0 * stats.binom.cdf(min(b_only, a_only), n, 0.5)))


def _wilson(successes: int, n: int, z: float) -> tuple[float, float]:
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return centre - half, centre + half


def newcombe_paired_ci(both: int, b_only: int, a_only: int, neither: int,
                       level: float = 0.95) -> tuple[float, float]:
    """Newcombe's square-and-add interval for accuracy(B) - accuracy(A) on paired 0/1 data.

    The 2x2 table has B's outcome in rows and A's in columns: ``both`` right, ``b_only``,
    ``a_only``, ``neither``. Each accuracy gets a Wilson score interval; the two are combined
    with the estimated correlation phi between them (set to 0 when 0 <= ad - bc <= n/2,
    reduced by n/2 when larger, as in Fagerland et al. 2013).
    """
    n = both + b_only + a_only + neither
    if n == 0:
        return (math.nan, math.nan)
    z = float(stats.norm.ppf(0.5 + level / 2))
    p_b, p_a = (both + b_only) / n, (both + a_only) / n
    l_b, u_b = _wilson(both + b_only, n, z)
    l_a, u_a = _wilson(both + a_only, n, z)
    margins = (both + b_only) * (a_only + neither) * (both + a_only) * (b_only + neither)
    cross = both * neither - b_only * a_only
    if margins == 0 or 0 <= cross <= n / 2:
        phi = 0.0
    elif cross > n / 2:
        phi = (cross - n / 2) / math.sqrt(margins)
    else:
        phi = cross / math.sqrt(margins)
    diff = p_b - p_a
    lower = diff - math.sqrt(max(0.0, (p_b - l_b) ** 2 + (u_a - p_a) ** 2 - 2 * phi * (p_b - l_b) * (u_a - p_a)))
    upper = diff + math.sqrt(max(0.0, (p_a - l_a) ** 2 + (u_b - p_b) ** 2 - 2 * phi * (p_a - l_a) * (u_b - p_b)))
    return (max(-1.0, lower), min(1.0, upper))


def paired_binary(a: np.ndarray, b: np.ndarray, alpha: float = 0.05) -> PairedResult:
    """Exact McNemar test + Newcombe interval for paired 0/1 outcomes."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    _check_pairs(a, b)
    both = int(np.sum(a & b))
    b_only = int(np.sum(b & ~a))
    a_only = int(np.sum(a & ~b))
    neither = int(a.size - both - b_only - a_only)
    lo, hi = newcombe_paired_ci(both, b_only, a_only, neither, 1 - alpha)
    k = b_only + a_only
    return PairedResult(n=int(a.size), mean_a=float(a.mean()), mean_b=float(b.mean()),
                        diff=(b_only - a_only) / a.size, ci_low=lo, ci_high=hi,
                        p_value=mcnemar_exact(b_only, a_only), alpha=alpha, test=MCNEMAR, ci_method=NEWCOMBE,
                        b_only=b_only, a_only=a_only, differing=k, min_p=min(1.0, 2.0 * 0.5 ** k) if k else 1.0)


# --------------------------------------------------------------------------------------
# mean-score path
def _exact_sign_sums(d: np.ndarray) -> np.ndarray:
    """All 2**k sums of +-d_i (k = len(d)), built by doubling."""
    sums = np.zeros(1)
    for x in d:
        sums = np.concatenate((sums + x, sums - x))
    return sums


def sign_flip_pvalue(d: np.ndarray, rng: np.random.Generator, resamples: int = DEFAULT_RESAMPLES,
                     ) -> tuple[float, int | None]:
    """Two-sided p-value of the paired sign-flip test on the differences ``d`` (statistic:
    their sum). Returns (p, resamples used; None when exact)."""
    nz = d[d != 0]
    if nz.size == 0:
        return 1.0, None
    observed = abs(float(nz.sum()))
    tol = 1e-9 * max(1.0, float(np.abs(nz).sum()))  # float ties count as ties
    if nz.size <= EXACT_MAX_NONZERO:
        sums = _exact_sign_sums(nz)
        return float(np.mean(np.abs(sums) >= observed - tol)), None
    hits, done = 0, 0
    total = float(nz.sum())
    while done < resamples:
        m = min(_CHUNK, resamples - done)
        plus = rng.random((m, nz.size)) < 0.5
        sums = 2.0 * (plus @ nz) - total
        hits += int(np.count_nonzero(np.abs(sums) >= observed - tol))
        done += m
    return (1 + hits) / (1 + resamples), resamples


def bootstrap_ci(d: np.ndarray, rng: np.random.Generator, resamples: int = DEFAULT_RESAMPLES,
                 level: float = 0.95) -> tuple[float, float]:
    """Expanded percentile interval of mean(d) from a paired bootstrap over questions (rows
    resampled with replacement).

    The plain percentile (and BCa) interval is too narrow for few questions: it covers like a
    z interval with the n-denominator SD. The expanded interval (Hesterberg 2015) takes the
    bootstrap quantiles at Phi(+-sqrt(n/(n-1)) * t_{n-1}) instead of (1 +- level)/2; it is the
    percentile interval for large n and keeps ~95% coverage down to AIME-sized subsets.
    """
    n = d.size
    mean = float(d.mean())
    if n < 2 or np.all(d == d[0]):
        return mean, mean
    boot = np.empty(resamples)
    done = 0
    while done < resamples:
        m = min(_CHUNK, resamples - done)
        idx = rng.integers(0, n, size=(m, n))
        boot[done:done + m] = d[idx].mean(axis=1)
        done += m
    z = math.sqrt(n / (n - 1)) * float(stats.t.ppf((1 + level) / 2, n - 1))
    lo, hi = np.quantile(boot, [float(stats.norm.cdf(-z)), float(stats.norm.cdf(z))])
    return float(lo), float(hi)


def paired_means(a: np.ndarray, b: np.ndarray, alpha: float = 0.05, seed: int | Sequence[int] = 0,
                 resamples: int = DEFAULT_RESAMPLES) -> PairedResult:
    """Sign-flip permutation test + paired bootstrap interval for per-question mean scores."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    _check_pairs(a, b)
    if resamples < 100:
        raise ValueError(f"resamples must be at least 100, got {resamples}")
    d = b - a
    rng = np.random.default_rng(seed)
    p, used = sign_flip_pvalue(d, rng, resamples)
    lo, hi = bootstrap_ci(d, rng, resamples, 1 - alpha)
    k = int(np.count_nonzero(d))
    min_p = (2.0 * 0.5 ** k if k <= EXACT_MAX_NONZERO else 1.0 / (1 + resamples)) if k else 1.0
    return PairedResult(n=int(d.size), mean_a=float(a.mean()), mean_b=float(b.mean()), diff=float(d.mean()),
                        ci_low=lo, ci_high=hi, p_value=p, alpha=alpha,
                        test=PERMUTATION_EXACT if used is None else PERMUTATION_MC, ci_method=BOOTSTRAP,
                        resamples=used, differing=k, min_p=min(1.0, min_p))


def paired_test(a: np.ndarray, b: np.ndarray, alpha: float = 0.05, seed: int | Sequence[int] = 0,
                resamples: int = DEFAULT_RESAMPLES) -> PairedResult:
    """McNemar + Newcombe when every value is 0 or 1, else permutation + bootstrap."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    binary = np.isin(a, (0.0, 1.0)).all() and np.isin(b, (0.0, 1.0)).all()
    if binary:
        return paired_binary(a, b, alpha)
    return paired_means(a, b, alpha, seed, resamples)


def _check_pairs(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired data must be two 1-d arrays of one length, got {a.shape} and {b.shape}")
    if a.size == 0:
        raise ValueError("no paired questions")


# --------------------------------------------------------------------------------------
# words
def format_p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def format_points(x: float, sign: bool = True) -> str:
    """A fraction as percentage points, one decimal (``+3.2``)."""
    return f"{100 * x:+.1f}" if sign else f"{100 * x:.1f}"


def verdict_text(r: PairedResult, a: str = "A", b: str = "B") -> str:
    """E.g. ``B is 3.2 points higher than A (95% CI +1.1 to +5.3); significant at 5% (p = 0.004,
    exact McNemar)``."""
    ci = f"{100 * (1 - r.alpha):g}% CI {format_points(r.ci_low)} to {format_points(r.ci_high)}"
    pts = abs(100 * r.diff)
    if round(pts, 1) == 0:
        head = f"{b} and {a} score the same ({format_points(r.diff)} points, {ci})"
    else:
        head = f"{b} is {pts:.1f} points {'higher' if r.diff > 0 else 'lower'} than {a} ({ci})"
    alpha = f"{100 * r.alpha:g}%"
    p = format_p(r.p_value)
    pstr = f"p {p}" if p.startswith("<") else f"p = {p}"
    sig = "significant" if r.significant else "not significant"
    tail = f"{sig} at {alpha} ({pstr}, {r.test})"
    if r.differing == 0:
        tail += "; the runs agree on every question"
    elif r.underpowered:
        tail += (f"; with {r.differing} differing question{'' if r.differing == 1 else 's'} "
                 f"no result could reach {alpha}")
    return f"{head}; {tail}"
