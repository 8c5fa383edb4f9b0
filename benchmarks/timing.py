"""The one timing rule of the benchmarks: the best of `repeat` runs (the least disturbed by a busy machine)."""

from __future__ import annotations

import time


def best(fn, repeat: int) -> tuple[float, object]:
    """(fastest seconds, the last result) of calling `fn()` `repeat` times."""
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out
