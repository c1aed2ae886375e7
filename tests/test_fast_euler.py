"""The benchmark's fast numba Euler kernel (fhnkit.solvers.fast): its step, its contract, its machine code.

References: the exact kernel (`euler`), the folded step written here in NumPy float64 from the algebra of
fhn_euler.cu's comment, and `FastEuler` of the .cu itself built for the host with g++.
"""

from __future__ import annotations

import re

import numba
import numpy as np
import pytest

from conftest import fast_steps_cu
from fhnkit.cell.model import FHNParams
from fhnkit.solvers import euler, fast_euler
from fhnkit.solvers import fast as fast_module
from fhnkit.solvers.cpu import _euler_kernel

PARAMS = FHNParams()
OTHER = FHNParams(k=8.0, a=0.13, epsilon=0.05, beta=0.5, gamma=1.1)


def cells(n, seed, dtype=np.float64):
    """States and currents around the study's ranges, all stable with dt <= 0.01."""
    rng = np.random.default_rng(seed)
    return [rng.uniform(lo, hi, n).astype(dtype) for lo, hi in ((-0.2, 1.0), (-0.2, 1.0), (-0.2, 0.3))]


def folded_numpy(u, w, c, p: FHNParams, dt: float, n_steps: int):
    """`n_steps` of the folded step in NumPy float64, each product and sum rounded on its own (no FMA)."""
    h, e = dt * p.k, dt * p.epsilon
    c3, c2, c1, c0 = -h, h * (1 + p.a), -h * p.a, h * c
    wu, ww = e * p.beta, -e * p.gamma
    for _ in range(n_steps):
        du = ((c3 * u + c2) * u + c1) * u + (c3 * w + c0)
        u, w = u + du, (w + ww * w) + wu * u
    return u, w


# --------------------------------------------------------------------------- the step


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("dt", "n_steps"), [(0.01, 300), (0.001, 1000), (0.01, 1000)])
def test_fast_kernel_stays_within_rounding_of_the_exact_kernel(dtype, dt, n_steps):
    """The two differ in the last bits of each step's increment (~eps dt k), accumulated over the time
    n_steps dt: allowed 2 eps (1 + k n dt) on average and 100 eps (1 + k n dt) at worst (a cell near the
    threshold amplifies its difference); measured ~30x and ~5x below."""
    u, w, c = cells(20_000, seed=1, dtype=dtype)
    _, fu, fw = fast_euler(u, w, c, PARAMS, dt, n_steps, n_steps, dtype)
    _, eu, ew = euler(u, w, c, PARAMS, dt, n_steps, n_steps, dtype)
    scale = float(np.finfo(dtype).eps) * (1 + PARAMS.k * n_steps * dt)
    for fast, exact in ((fu[1], eu[1]), (fw[1], ew[1])):
        diff = np.abs(fast.astype(float) - exact)
        assert np.all(np.isfinite(exact)) and diff.mean() <= 2 * scale and diff.max() <= 100 * scale
    assert not np.array_equal(fu, eu)  # it is another arithmetic, not the exact kernel under another name


@pytest.mark.parametrize("p", [PARAMS, OTHER], ids=["spec", "other"])
def test_fast_kernel_in_float64_is_the_folded_formula(p):
    u, w, c = cells(4000, seed=2)
    _, got_u, got_w = fast_euler(u, w, c, p, 0.01, 300, 300)
    want_u, want_w = folded_numpy(u, w, c, p, 0.01, 300)
    np.testing.assert_allclose(got_u[1], want_u, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got_w[1], want_w, rtol=0, atol=1e-12)


@pytest.mark.parametrize("p", [PARAMS, OTHER], ids=["spec", "other"])
def test_fast_kernel_in_float32_is_about_as_accurate_as_the_exact_kernel(p):
    """Against float64, folded once in double and rounded once, the fast float32 step drifts about as much as
    the exact one (allowed 3x): coefficients folded in float32 or the state folded into one would not."""
    u, w, c = cells(4000, seed=3, dtype=np.float32)
    dt, n_steps = 0.01, 300
    _, fu, fw = fast_euler(u, w, c, p, dt, n_steps, n_steps, np.float32)
    _, eu, ew = euler(u, w, c, p, dt, n_steps, n_steps, np.float32)
    ref_u, ref_w = folded_numpy(u.astype(float), w.astype(float), c.astype(float), p, float(np.float32(dt)), n_steps)
    for fast, exact, ref in ((fu[1], eu[1], ref_u), (fw[1], ew[1], ref_w)):
        assert np.mean(np.abs(fast - ref)) <= 3 * np.mean(np.abs(exact - ref))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [PARAMS, OTHER], ids=["spec", "other"])
def test_fast_kernel_equals_the_cuda_files_fast_step_bit_for_bit(fast_host_lib, dtype, p):
    """The same folding (the parameters rounded to the dtype, folded in double, rounded once) and the same
    fusions (`fhn_fma` in the .cu, contraction here): the CPU and GPU benchmarks time one arithmetic."""
    u, w, c = cells(3000, seed=4, dtype=dtype)
    want_u, want_w = fast_steps_cu(fast_host_lib, u, w, c, p, 0.01, 300)
    _, got_u, got_w = fast_euler(u, w, c, p, 0.01, 300, 300, dtype)
    np.testing.assert_array_equal(got_u[1], want_u)
    np.testing.assert_array_equal(got_w[1], want_w)


# --------------------------------------------------------------------------- the contract of `euler`


@pytest.mark.parametrize("store_initial", [True, False])
def test_snapshots_times_and_preallocated_outputs(store_initial):
    u, w, c = cells(2500, seed=5, dtype=np.float32)  # not a multiple of the block: the tail block runs
    times, U, W = fast_euler(u, w, c, PARAMS, 0.01, 100, 10, np.float32, store_initial)
    n_snap = 10 + store_initial
    assert U.shape == W.shape == (n_snap, 2500) and U.dtype == np.float32
    np.testing.assert_allclose(times, np.arange(1 - store_initial, 11) * 0.1)
    every = fast_euler(u, w, c, PARAMS, 0.01, 100, 1, np.float32, store_initial)[1]
    np.testing.assert_array_equal(U, every[9 + store_initial::10] if not store_initial else every[::10])
    if store_initial:
        np.testing.assert_array_equal(U[0], u)
    out = (np.full((n_snap, 2500), np.nan, np.float32), np.full((n_snap, 2500), np.nan, np.float32))
    _, U2, W2 = fast_euler(u, w, c, PARAMS, 0.01, 100, 10, np.float32, store_initial, out)
    assert U2.ctypes.data == out[0].ctypes.data and W2.ctypes.data == out[1].ctypes.data
    np.testing.assert_array_equal(U2, U)
    np.testing.assert_array_equal(W2, W)


def test_broadcasting_and_inputs_left_alone():
    u = np.linspace(0.0, 1.0, 12).reshape(3, 4)
    before = u.copy()
    _, U, W = fast_euler(u, 0.0, 0.1, PARAMS, 0.01, 20, 5)
    assert U.shape == W.shape == (5, 3, 4)
    np.testing.assert_array_equal(u, before)
    np.testing.assert_array_equal(U[:, 1, 2], fast_euler(u[1, 2], 0.0, 0.1, PARAMS, 0.01, 20, 5)[1])


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"dtype": np.float16}, "dtype"), ({"dt": 0.0}, "dt"), ({"save_every": 0}, "save_every"),
    ({"n_steps": 2.5}, "n_steps"), ({"out": (np.empty((3, 4)), np.empty((3, 4)))}, "out arrays")])
def test_refusals(kwargs, match):
    args = {"dt": 0.01, "n_steps": 20, "save_every": 10, "dtype": np.float64} | kwargs
    with pytest.raises(ValueError, match=match):
        fast_euler(np.zeros(5), 0.0, 0.1, PARAMS, **args)


# --------------------------------------------------------------------------- the machine code


def step_loops(kernel, dtype) -> list[str]:
    """The x86 loops (a label to its own backward branch) of `kernel`, compiled afresh with its own options
    for `dtype` (numba shows no assembly for a kernel loaded from its on-disk cache)."""
    options = {k: v for k, v in kernel.targetoptions.items() if k not in ("cache", "nopython")}
    copy = numba.njit(**options)(kernel.py_func)
    u, w, c = cells(2048, seed=6, dtype=dtype)
    out = np.empty((1, 2048), dtype), np.empty((1, 2048), dtype)
    if kernel is _euler_kernel:
        t = np.dtype(dtype).type
        copy(u, w, c, *(t(x) for x in (10.0, 0.4, 0.2, 0.2, 0.8, 0.01)), 10, 10, False, *out)
    else:
        copy(u, w, c, 0.1, *(np.dtype(dtype).type(x) for x in (-0.1, 0.14, -0.04, 0.0004, -0.0016)), 10, 10, False,
             *out)
    asm = copy.inspect_asm(copy.signatures[0])
    parts = re.split(r"^(\.LBB\w+):.*$", asm, flags=re.M)
    return [text for label, text in zip(parts[1::2], parts[2::2], strict=True)
            if re.search(rf"^\s*j\w+\s+{re.escape(label)}\s*$", text, flags=re.M)]


def has_fma() -> bool:
    import llvmlite.binding as llvm

    return bool(llvm.get_host_cpu_features().get("fma"))


@pytest.mark.skipif(not has_fma(), reason="the host has no FMA instructions")
@pytest.mark.parametrize(("dtype", "suffix"), [(np.float32, "ps"), (np.float64, "pd")])
def test_fast_step_loop_is_vectorised_with_six_fmas_and_one_add(dtype, suffix):
    loops = step_loops(fast_module._fast_euler_kernel, dtype)
    packed = [loop for loop in loops if re.search(rf"\bvfmadd\w*{suffix}\s+%[yz]mm", loop)]
    assert packed, "no loop of packed FMAs on ymm/zmm registers: the step loop did not vectorise"
    counts = {(len(re.findall(rf"\bvfmadd\w*{suffix}\b", loop)), len(re.findall(rf"\bvadd{suffix}\b", loop)))
              for loop in packed}
    assert (6, 1) in counts, counts


@pytest.mark.skipif(not has_fma(), reason="the host has no FMA instructions")
def test_exact_kernel_fuses_nothing():
    """The exact kernel (data generation) must stay free of FMA: the contrast that makes the test above mean
    something, and the promise of bit-identical data."""
    loops = step_loops(_euler_kernel, np.float32)
    assert loops and any(re.search(r"\bvmulps\s+%[yz]mm", loop) for loop in loops)
    assert not any("vfmadd" in loop for loop in loops)
