"""Seeded sampling of parameter spaces: uniform, Latin hypercube, or a regular grid."""

from __future__ import annotations

import numpy as np


def sample_box(n: int, lo, hi, sampler: str, seed: int) -> np.ndarray:
    """`n` points in the box [lo, hi] (one column per dimension), float64.

    `grid` places ceil(n ** (1/d)) points per dimension on a regular lattice
    (endpoints included) and keeps the first `n`, so for d = 1 it is linspace.
    """
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    d = lo.size
    if sampler == "uniform":
        unit = np.random.default_rng(seed).random((n, d))
    elif sampler == "lhs":
        from scipy.stats import qmc  # scipy is slow to import: only where a set is drawn by LHS

        unit = qmc.LatinHypercube(d=d, rng=np.random.default_rng(seed)).random(n)
    elif sampler == "grid":
        per_dim = int(np.ceil(n ** (1.0 / d) - 1e-9))
        axes = [np.linspace(0.0, 1.0, per_dim)] * d
        unit = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, d)[:n]
    else:
        raise ValueError(f"unknown sampler {sampler!r}; choose uniform, lhs or grid")
    return lo + unit * (hi - lo)
