"""95% intervals for the held-out figures: on a small test set a number is a range, not a point.

- `wilson(k, n)`: a rate (face detection, coverage) from k successes in n independent trials.
- `bootstrap(stat, groups)`: any statistic (macro F1, cry F1), resampling whole groups with replacement: people for
  the eyes, recordings for the cry model, images for crops of one image. Crops of one person are not independent
  trials, and resampling crops would make the interval far too narrow. Percentile interval of 2000 seeded resamples.
- `poisson_rate(k, exposure)`: the exact (Garwood) interval of a rate, e.g. false alarms per hour of audio.

Numpy and the standard library only, so the evaluation needs nothing more.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Z95 = 1.959964
RESAMPLES = 2000
SEED = 0


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of the rate k/n; (0, 1) when n is 0 (nothing is known)."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap(
    stat: Callable[[np.ndarray], float], groups: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED
) -> tuple[float, float]:
    """Percentile 95% interval of `stat(mask)` over resamples of whole groups.

    `groups` names each item's group (a person, a recording); `stat` receives an index array of the items drawn
    (a group drawn twice gives its items twice) and returns the statistic on them. With one group the interval is
    that group's value: no more can be said."""
    names, inverse = np.unique(np.asarray(groups), return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(names))]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        drawn = rng.integers(len(members), size=len(members))
        values.append(stat(np.concatenate([members[g] for g in drawn])))
    lo, hi = np.percentile(values, [2.5, 97.5])
    return float(lo), float(hi)


def poisson_rate(k: int, exposure: float) -> tuple[float, float]:
    """Exact (Garwood) 95% interval of a rate from k events in `exposure` units (hours)."""
    lower = 0.0 if k == 0 else _solve(lambda lam: 1 - _poisson_cdf(k - 1, lam), 0.025, rising=True)
    upper = _solve(lambda lam: _poisson_cdf(k, lam), 0.025, rising=False)
    return lower / exposure, upper / exposure


def _poisson_cdf(k: int, lam: float) -> float:
    term = total = math.exp(-lam)
    for i in range(1, k + 1):
        term *= lam / i
        total += term
    return total


def _solve(f: Callable[[float], float], target: float, *, rising: bool) -> float:
    """The λ >= 0 where the monotonic f (rising or falling with λ) reaches `target`, by bisection."""

    def past(lam: float) -> bool:
        return f(lam) >= target if rising else f(lam) <= target

    lo, hi = 0.0, 1.0
    while not past(hi):
        hi *= 2
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if past(mid) else (mid, hi)
    return (lo + hi) / 2
