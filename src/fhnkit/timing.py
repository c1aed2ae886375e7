"""Side-by-side timing: warm-ups excluded, repeats interleaved, median and spread.

Both contestants are timed with the same monotonic clock, alternating in each
repeat so that a noisy neighbour slows both rather than one of them.
"""

from __future__ import annotations

import time

import numpy as np


def summarise(samples) -> dict:
    """Median, quartiles, min and the raw samples (seconds)."""
    s = np.asarray(samples, float)
    return {"median": float(np.median(s)), "q25": float(np.percentile(s, 25)),
            "q75": float(np.percentile(s, 75)), "min": float(s.min()), "samples": s.tolist()}


def time_interleaved(contestants: dict, repeats: int, warmup: int) -> dict:
    """Time each zero-argument callable `repeats` times after `warmup` untimed calls.

    Returns {name: summarise(samples)}; call order alternates each repeat.
    """
    names = list(contestants)
    for _ in range(warmup):
        for name in names:
            contestants[name]()
    samples = {name: [] for name in names}
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            t0 = time.perf_counter()
            contestants[name]()
            samples[name].append(time.perf_counter() - t0)
    return {name: summarise(s) for name, s in samples.items()}
