"""The one timing loop the benchmarks share: warm up, then time each call, report median (and p90)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def timed(fn: Callable[[], object], runs: int, warmup: int = 5) -> tuple[float, float]:
    """(median ms, p90 ms) over `runs` calls after `warmup` untimed ones (caches, lazy init, JIT-ish paths)."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000.0)
    samples.sort()
    return statistics.median(samples), samples[int(0.9 * (len(samples) - 1))]


def median_ms(fn: Callable[[], object], runs: int, warmup: int = 5) -> float:
    return timed(fn, runs, warmup)[0]
