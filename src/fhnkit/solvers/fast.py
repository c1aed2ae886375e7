"""The benchmark's explicit Euler on the CPU: the folded Horner step of `FastEuler` (fhn_euler.cu), in numba.

Not for data: it differs from the exact kernel (`fhnkit.solvers.cpu.euler`) in the last bits of
each step. With h = dt k and e = dt eps, folded once in float64 and rounded once to the dtype,

    U' = U + (((c3 U + c2) U + c1) U + (c3 W + c0))     c3 = -h, c2 = h (1 + a), c1 = -h a, c0 = h I
    W' = (W + ww W) + wu U                              wu = e beta, ww = -e gamma

is 6 FMA + 1 ADD per step (the exact formulation: 15 operations, no FMA). The kernel is compiled
with `fastmath={"contract"}`, which lets LLVM fuse each product into the sum that takes it (the
pairing above is the only one the expressions allow, as `fhn_fma` spells it in the .cu) and
permits nothing else of fast-math: no reassociation, NaN and infinity kept.

It does not call `fhn_rhs`, so the on-disk cache caveat of `fhnkit.solvers.cpu`
(`forget_kernels_of_another_rhs`) does not apply: this file holds all the arithmetic its cache depends on.
"""

from __future__ import annotations

import numba
import numpy as np

from ..cell.model import FHNParams
from .cpu import checked_cells, n_snapshots, snapshot_outputs

_BLOCK = 1024  # cells per parallel block: a block's state stays in L1 for all steps (as in cpu.py)
_CONTRACT = {"contract"}  # FMA contraction only: not the other fast-math flags


@numba.njit(inline="always", fastmath=_CONTRACT)
def _fast_advance(bu, bw, bc, m, c3, c2, c1, wu, ww):
    """One folded Euler step of the first `m` cells of a block; both updates use the state before the step."""
    for j in range(m):
        uj = bu[j]
        wj = bw[j]
        du = ((c3 * uj + c2) * uj + c1) * uj + (c3 * wj + bc[j])
        bw[j] = (wj + ww * wj) + wu * uj
        bu[j] = uj + du


@numba.njit(parallel=True, fastmath=_CONTRACT, cache=True)
def _fast_euler_kernel(u, w, i_app, h, c3, c2, c1, wu, ww, n_steps, save_every, store_initial, out_u, out_w):
    n = u.shape[0]
    n_blocks = (n + _BLOCK - 1) // _BLOCK
    for b in numba.prange(n_blocks):
        lo = b * _BLOCK
        m = min(_BLOCK, n - lo)
        bu = np.empty(_BLOCK, u.dtype)
        bw = np.empty(_BLOCK, u.dtype)
        bc = np.empty(_BLOCK, u.dtype)
        for j in range(m):
            bu[j] = u[lo + j]
            bw[j] = w[lo + j]
            bc[j] = h * np.float64(i_app[lo + j])  # c0 = h I in float64, rounded once by the store
        slot = 0
        if store_initial:
            for j in range(m):
                out_u[0, lo + j] = bu[j]
                out_w[0, lo + j] = bw[j]
            slot = 1
        until_save = save_every
        for _ in range(n_steps):
            if m == _BLOCK:  # a constant trip count: no remainder loop in the hot path
                _fast_advance(bu, bw, bc, _BLOCK, c3, c2, c1, wu, ww)
            else:
                _fast_advance(bu, bw, bc, m, c3, c2, c1, wu, ww)
            until_save -= 1
            if until_save == 0:
                until_save = save_every
                for j in range(m):
                    out_u[slot, lo + j] = bu[j]
                    out_w[slot, lo + j] = bw[j]
                slot += 1


def folded_coefficients(params: FHNParams, dt: float, dtype=np.float64) -> dict[str, float]:
    """The step's constants in float64 (dimensionless): h = dt k, c3, c2, c1 of U's cubic, wu and ww of W.

    Folded from the parameters and dt rounded to `dtype`, as `FastEuler` folds the kernel's arguments.
    """
    t = np.dtype(dtype).type
    dt, k, a, eps, beta, gamma = (float(t(x)) for x in (dt, params.k, params.a, params.epsilon, params.beta,
                                                         params.gamma))
    h, e = dt * k, dt * eps
    return {"h": h, "c3": -h, "c2": h * (1.0 + a), "c1": -h * a, "wu": e * beta, "ww": -e * gamma}


def fast_euler(u0, w0, i_app, params: FHNParams, dt: float, n_steps: int, save_every: int = 1,
               dtype=np.float64, store_initial: bool = True, out=None):
    """Explicit Euler in the folded FMA form, for benchmarks; the contract of `fhnkit.solvers.euler`.

    u0, w0, i_app are dimensionless (broadcast to one shape), dt in model time units; returns
    times (n_snapshots,) in model time units and U, W (n_snapshots, *shape) of `dtype`, written into
    `out` (preallocated C-contiguous (n_snapshots, n_cells) arrays) when given.
    """
    (u0, w0, i_app), shape = checked_cells(u0, w0, i_app, dt, n_steps, save_every, dtype)
    dtype = u0.dtype
    n_snap = n_snapshots(int(n_steps), int(save_every), store_initial)
    out_u, out_w = snapshot_outputs(out, n_snap, u0.size, dtype)
    k = folded_coefficients(params, dt, dtype)
    c = dtype.type
    _fast_euler_kernel(u0, w0, i_app, k["h"], c(k["c3"]), c(k["c2"]), c(k["c1"]), c(k["wu"]), c(k["ww"]),
                       int(n_steps), int(save_every), bool(store_initial), out_u, out_w)
    times = (np.arange(n_snap, dtype=np.float64) + (not store_initial)) * (save_every * dt)
    return times, out_u.reshape((n_snap,) + shape), out_w.reshape((n_snap,) + shape)
