"""Explicit Euler solver of the FHN model, compiled with numba, vectorised over cells.

Every cell (one parameter set: U0, W0, I_app) is advanced independently with
the same time step. The state is stored every `save_every` steps, starting
with the initial state at t = 0, so `n_steps // save_every + 1` snapshots are
returned. Arithmetic is done in the precision of the inputs (float32 or
float64); the kernel loops over cells in parallel blocks so that the inner
loop vectorises.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import math
from pathlib import Path

import numba
import numpy as np

from ..cell.model import FHNParams, fhn_rhs

log = logging.getLogger(__name__)

# The model's right-hand side, defined once in fhnkit.cell.model and compiled here for the kernels.
# Inlined, without fastmath: the kernels do exactly its IEEE operations in its order.
# numba's on-disk cache of the kernels is keyed on this file only, not on cell/model.py:
# `forget_kernels_of_another_rhs` (called at the end of this module) keeps them in step with `fhn_rhs`.
_rhs = numba.njit(inline="always")(fhn_rhs)

_BLOCK = 1024  # cells per parallel block: a block's state stays in L1 for all steps


@numba.njit(inline="always")
def _advance(bu, bw, bi, m, k, a, eps, beta, gamma, dt, one):
    """One Euler step of the first `m` cells of a block (the loop the compiler vectorises)."""
    for j in range(m):
        uj = bu[j]
        wj = bw[j]
        du, dw = _rhs(uj, wj, bi[j], k, a, eps, beta, gamma, one)
        bu[j] = uj + dt * du
        bw[j] = wj + dt * dw


@numba.njit(parallel=True, fastmath=False, cache=True)
def _euler_kernel(u, w, i_app, k, a, eps, beta, gamma, dt, n_steps, save_every, store_initial, out_u, out_w):
    n = u.shape[0]
    n_blocks = (n + _BLOCK - 1) // _BLOCK
    one = u.dtype.type(1.0)
    for b in numba.prange(n_blocks):
        lo = b * _BLOCK
        m = min(_BLOCK, n - lo)
        bu = np.empty(_BLOCK, u.dtype)
        bw = np.empty(_BLOCK, u.dtype)
        bi = np.empty(_BLOCK, u.dtype)
        for j in range(m):
            bu[j] = u[lo + j]
            bw[j] = w[lo + j]
            bi[j] = i_app[lo + j]
        slot = 0
        if store_initial:
            for j in range(m):
                out_u[0, lo + j] = bu[j]
                out_w[0, lo + j] = bw[j]
            slot = 1
        until_save = save_every
        for _ in range(n_steps):
            if m == _BLOCK:  # a constant trip count: no remainder loop in the hot path
                _advance(bu, bw, bi, _BLOCK, k, a, eps, beta, gamma, dt, one)
            else:
                _advance(bu, bw, bi, m, k, a, eps, beta, gamma, dt, one)
            until_save -= 1
            if until_save == 0:
                until_save = save_every
                for j in range(m):
                    out_u[slot, lo + j] = bu[j]
                    out_w[slot, lo + j] = bw[j]
                slot += 1


def n_snapshots(n_steps: int, save_every: int, store_initial: bool = True) -> int:
    """Number of stored states."""
    return n_steps // save_every + int(store_initial)


def checked_cells(u0, w0, i_app, dt, n_steps, save_every, dtype):
    """The cells' inputs as flat contiguous arrays of `dtype`, and their broadcast shape, after the checks of an
    Euler solve's arguments (dtype, step counts, dt) that `euler` and `fast_euler` share."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    if int(n_steps) != n_steps or int(save_every) != save_every or n_steps < 0 or save_every < 1:
        raise ValueError(f"n_steps must be an integer >= 0 and save_every an integer >= 1, "
                         f"got n_steps={n_steps!r}, save_every={save_every!r}")
    if not (dt > 0 and math.isfinite(dt)):
        raise ValueError(f"dt must be a positive finite number, got {dt}")
    arrays = np.broadcast_arrays(np.asarray(u0, dtype), np.asarray(w0, dtype), np.asarray(i_app, dtype))
    return [np.ascontiguousarray(x.reshape(-1)) for x in arrays], arrays[0].shape


def snapshot_outputs(out, n_snap: int, n_cells: int, dtype):
    """`out` checked against the shape and dtype the solve writes, or new arrays."""
    if out is None:
        return np.empty((n_snap, n_cells), dtype), np.empty((n_snap, n_cells), dtype)
    for arr in out:
        if arr.shape != (n_snap, n_cells) or arr.dtype != dtype or not arr.flags.c_contiguous:
            raise ValueError(f"out arrays must be C-contiguous {dtype} of shape {(n_snap, n_cells)}")
    return out


def euler(u0, w0, i_app, params: FHNParams, dt: float, n_steps: int, save_every: int = 1,
          dtype=np.float64, store_initial: bool = True, out=None):
    """Integrate the FHN model with explicit Euler for every cell.

    Parameters
    ----------
    u0, w0, i_app : array-like, shape (n_cells,) or scalars broadcast to it
        Initial state and applied current of each cell (dimensionless).
    params : FHNParams
    dt : float
        Time step (model time units).
    n_steps : int
        Number of Euler steps; the final time is `n_steps * dt`.
    save_every : int
        Store the state every this many steps (and at t = 0).
    dtype : numpy dtype, float32 or float64
        Precision of the arithmetic and of the outputs.
    store_initial : bool
        Also store the state at t = 0 (as snapshot 0).
    out : (U, W) preallocated C-contiguous arrays of shape (n_snapshots, n_cells) and `dtype`, or None
        Write into these instead of allocating (what a benchmark of the kernel alone wants).

    Returns
    -------
    times : ndarray (n_snapshots,) in model time units (float64)
    U, W : ndarray (n_snapshots, n_cells) of `dtype`
    """
    (u0, w0, i_app), shape = checked_cells(u0, w0, i_app, dt, n_steps, save_every, dtype)
    dtype = u0.dtype
    n_snap = n_snapshots(int(n_steps), int(save_every), store_initial)
    out_u, out_w = snapshot_outputs(out, n_snap, u0.size, dtype)
    c = dtype.type
    _euler_kernel(u0, w0, i_app, c(params.k), c(params.a), c(params.epsilon), c(params.beta),
                  c(params.gamma), c(dt), int(n_steps), int(save_every), bool(store_initial), out_u, out_w)
    times = (np.arange(n_snap, dtype=np.float64) + (not store_initial)) * (save_every * dt)
    return times, out_u.reshape((n_snap,) + shape), out_w.reshape((n_snap,) + shape)


def steps_for(t_end: float, dt: float) -> int:
    """Number of steps of size `dt` that reach `t_end`, refusing a dt that does not divide it."""
    if not (dt > 0 and t_end >= 0 and math.isfinite(dt) and math.isfinite(t_end)):
        raise ValueError(f"need dt > 0 and t_end >= 0, got dt={dt}, t_end={t_end}")
    n = round(t_end / dt)
    if abs(n * dt - t_end) > 1e-9 * max(1.0, t_end):
        raise ValueError(f"dt={dt} does not divide t_end={t_end}")
    return int(n)


@numba.njit(parallel=True, cache=True)
def _rk4_kernel(u, w, i_app, k, a, eps, beta, gamma, dt, half, sixth, two, n_steps, save_every, out_u, out_w):
    # every constant comes in the inputs' precision: `dt / 2` or `2 * k2u` here would be float64 arithmetic
    one = u.dtype.type(1.0)
    for i in numba.prange(u.shape[0]):
        ui, wi, ci = u[i], w[i], i_app[i]
        out_u[0, i] = ui
        out_w[0, i] = wi
        slot = 1
        for s in range(1, n_steps + 1):
            k1u, k1w = _rhs(ui, wi, ci, k, a, eps, beta, gamma, one)
            u2, w2 = ui + half * k1u, wi + half * k1w
            k2u, k2w = _rhs(u2, w2, ci, k, a, eps, beta, gamma, one)
            u3, w3 = ui + half * k2u, wi + half * k2w
            k3u, k3w = _rhs(u3, w3, ci, k, a, eps, beta, gamma, one)
            u4, w4 = ui + dt * k3u, wi + dt * k3w
            k4u, k4w = _rhs(u4, w4, ci, k, a, eps, beta, gamma, one)
            ui += sixth * (k1u + two * k2u + two * k3u + k4u)
            wi += sixth * (k1w + two * k2w + two * k3w + k4w)
            if s % save_every == 0:
                out_u[slot, i] = ui
                out_w[slot, i] = wi
                slot += 1


def rk4(u0, w0, i_app, params: FHNParams, dt: float, n_steps: int, save_every: int = 1, dtype=np.float64):
    """Classical fourth-order Runge-Kutta; same contract as `euler` (initial state stored).

    The accurate reference for training data: global error O(dt^4) instead of Euler's O(dt). Its arithmetic
    is in `dtype` throughout (dt / 2 and dt / 6 rounded to it once).
    """
    dtype = np.dtype(dtype)
    u0, w0, i_app = (np.ascontiguousarray(x.reshape(-1)) for x in np.broadcast_arrays(
        np.asarray(u0, dtype), np.asarray(w0, dtype), np.asarray(i_app, dtype)))
    steps_ok = int(n_steps) == n_steps and n_steps >= 0 and int(save_every) == save_every and save_every >= 1
    if not steps_ok or not dt > 0:
        raise ValueError(f"need integer n_steps >= 0, save_every >= 1 and dt > 0; got {n_steps}, {save_every}, {dt}")
    n_snap = n_snapshots(int(n_steps), int(save_every))
    out_u, out_w = np.empty((n_snap, u0.size), dtype), np.empty((n_snap, u0.size), dtype)
    c = dtype.type
    _rk4_kernel(u0, w0, i_app, c(params.k), c(params.a), c(params.epsilon), c(params.beta), c(params.gamma),
                c(dt), c(dt / 2), c(dt / 6), c(2.0), int(n_steps), int(save_every), out_u, out_w)
    return np.arange(n_snap, dtype=np.float64) * (save_every * dt), out_u, out_w


BACKENDS = ("auto", "cpu", "cuda")
METHODS = ("euler", "rk4")


def solve(u0, w0, i_app, params: FHNParams, dt: float, n_steps: int, save_every: int = 1,
          dtype=np.float64, store_initial: bool = True, backend: str = "auto", method: str = "euler"):
    """Integrate with `method` ("euler" or "rk4") on `backend`: "cpu" (numba), "cuda" (CuPy kernel),
    or "auto" (CUDA if usable, for Euler).

    The exact CUDA kernel runs here (no FMA contraction, float32 subnormals kept), so both backends
    do the same IEEE operations in the same order; results are returned as numpy arrays. "auto" falls
    back to numba where CuPy, a device or the kernel is unusable, with a logged warning where a device
    is seen but the kernel cannot be compiled or loaded. RK4 runs on the CPU kernel only.
    """
    if solver_backend(backend, method) == "cuda":
        from .cuda import euler_cuda

        return euler_cuda(u0, w0, i_app, params, dt, n_steps, save_every, dtype, store_initial, exact=True)
    if method == "rk4":
        times, U, W = rk4(u0, w0, i_app, params, dt, n_steps, save_every, dtype)
        return (times, U, W) if store_initial else (times[1:], U[1:], W[1:])
    return euler(u0, w0, i_app, params, dt, n_steps, save_every, dtype, store_initial)


def solver_backend(backend: str, method: str) -> str:
    """Where `solve` runs `method` when asked for `backend`: "cuda" (the exact CUDA kernel) or "cpu" (numba).

    The two give the same numbers bit for bit, so this is provenance, never part of a data set's identity.
    "cuda" that cannot run raises CudaUnavailable saying why; "auto" falls back to the CPU, with a logged
    warning where a device is seen but the kernel cannot be compiled or loaded.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "rk4":
        if backend == "cuda":
            raise ValueError("method rk4 runs on the CPU only; use backend: cpu or auto")
        return "cpu"
    if backend == "cpu":
        return "cpu"
    from .cuda import CudaUnavailable, KernelUnavailable, kernel_module

    try:
        kernel_module(exact=True)
    except CudaUnavailable as exc:
        if backend == "cuda":
            raise CudaUnavailable(f"backend 'cuda' was asked for, but {exc}; use backend: cpu or auto") from exc
        # a GPU that cannot run the kernel deserves a warning; a machine without one is the ordinary case
        level = logging.WARNING if isinstance(exc, KernelUnavailable) else logging.INFO
        log.log(level, "Euler runs on the CPU (numba): the CUDA backend is unusable (%s)", exc)
        return "cpu"
    return "cuda"


def forget_kernels_of_another_rhs(*kernels) -> list[str]:
    """Flush the on-disk cache of `kernels` where it was compiled against another `fhn_rhs`.

    numba invalidates a cached kernel when the file that defines it changes (this one), but not
    when a function it inlines from another file does: after an edit of `fhn_rhs` (or an upgrade
    that changes only cell/model.py) it would go on running the old equations. A stamp of the
    source of `fhn_rhs` beside each kernel's cache says which equations it holds. Returns the
    names of the kernels whose cache was flushed."""
    tag = hashlib.sha256(inspect.getsource(fhn_rhs).encode()).hexdigest()
    flushed = []
    for kernel in kernels:
        cache = getattr(kernel, "_cache", None)  # numba's FunctionCache of a cache=True dispatcher
        if cache is None or not hasattr(cache, "cache_path"):
            continue
        stamp = Path(cache.cache_path) / f"{kernel.py_func.__qualname__}.fhn_rhs.sha256"
        try:
            if stamp.is_file() and stamp.read_text() == tag:
                continue
            cache.flush()
            stamp.parent.mkdir(parents=True, exist_ok=True)
            stamp.write_text(tag)
            flushed.append(kernel.py_func.__qualname__)
        except OSError:  # a read-only install: numba then caches elsewhere or not at all
            pass
    return flushed


forget_kernels_of_another_rhs(_euler_kernel, _rk4_kernel)
