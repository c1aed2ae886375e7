"""The largest explicit-Euler step before the FHN model's fastest decaying mode blows up.

Euler's step multiplies a perturbation by 1 + dt*lambda for each eigenvalue lambda of the
Jacobian [[k(-3U^2 + 2(1+a)U - a), -k], [epsilon*beta, -epsilon*gamma]]. A fast decaying mode
(lambda about -k(1-a) at the excited state U = 1) makes the step diverge once dt > 2/|lambda|;
that bound, over the states a run reaches, is what a step must stay below. (Slow oscillating
modes near the threshold are only damped a little less by Euler: they set no useful bound.)
"""

from __future__ import annotations

import numpy as np

from .model import FHNParams


def euler_stable_dt(params: FHNParams, u_lo: float = 0.0, u_hi: float = 1.0, points: int = 401) -> float:
    """2 / the largest |lambda| of a decaying mode for states with U in [u_lo, u_hi] (default: from rest
    to the excited state), in model time units; inf when no mode decays."""
    p = params
    u = np.linspace(u_lo, u_hi, points)
    a11 = p.k * (-3.0 * u**2 + 2.0 * (1.0 + p.a) * u - p.a)
    jac = np.zeros((points, 2, 2))
    jac[:, 0, 0], jac[:, 0, 1] = a11, -p.k
    jac[:, 1, 0], jac[:, 1, 1] = p.epsilon * p.beta, -p.epsilon * p.gamma
    lam = np.linalg.eigvals(jac).ravel()
    decaying = lam[lam.real < 0]
    if decaying.size == 0:
        return float("inf")
    return float(2.0 / np.max(np.abs(decaying)))
