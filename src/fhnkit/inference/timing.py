"""Side-by-side timing: warm-ups excluded, repeats interleaved, median and spread.

Contestants are timed alternating in each repeat so that a noisy neighbour
slows both rather than one of them, each by the clock of its device: the
monotonic clock on a CPU, CUDA events on a GPU (recorded on the current stream
around the call, then synchronised, so that queued kernels are counted and
host-side launch gaps are too).
"""

from __future__ import annotations

import time

import numpy as np


def summarise(samples) -> dict:
    """Median, quartiles, min and the raw samples (seconds)."""
    s = np.asarray(samples, float)
    return {"median": float(np.median(s)), "q25": float(np.percentile(s, 25)),
            "q75": float(np.percentile(s, 75)), "min": float(s.min()), "samples": s.tolist()}


def monotonic_clock(call) -> float:
    """Seconds `call()` takes by the monotonic clock."""
    t0 = time.perf_counter()
    call()
    return time.perf_counter() - t0


def cuda_event_clock(call) -> float:
    """Seconds between CUDA events recorded before and after `call()` on the default stream: torch's events
    where torch has CUDA, else CuPy's (the CUDA solver needs no CUDA build of torch)."""
    import torch

    if torch.cuda.is_available():
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        elapsed_ms = lambda: start.elapsed_time(stop)  # noqa: E731
    else:
        import cupy

        start, stop = cupy.cuda.Event(), cupy.cuda.Event()
        elapsed_ms = lambda: cupy.cuda.get_elapsed_time(start, stop)  # noqa: E731
    start.record()
    call()
    stop.record()
    stop.synchronize()
    return elapsed_ms() / 1e3


CLOCKS = {"perf_counter": monotonic_clock, "cuda_events": cuda_event_clock}


def clock_for(device: str) -> str:
    """The clock a contestant on `device` ("cpu" or "cuda") is timed with."""
    return "cuda_events" if device == "cuda" else "perf_counter"


def time_interleaved(contestants: dict, repeats: int, warmup: int, clocks: dict | None = None) -> dict:
    """Time each zero-argument callable `repeats` times after `warmup` untimed calls.

    `clocks` maps a contestant's name to a name of CLOCKS (default perf_counter).
    Returns {name: summarise(samples) | {"clock": its clock}}; call order alternates each repeat.
    """
    names = list(contestants)
    chosen = {name: (clocks or {}).get(name, "perf_counter") for name in names}
    for _ in range(warmup):
        for name in names:
            contestants[name]()
    samples = {name: [] for name in names}
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            samples[name].append(CLOCKS[chosen[name]](contestants[name]))
    return {name: summarise(s) | {"clock": chosen[name]} for name, s in samples.items()}
