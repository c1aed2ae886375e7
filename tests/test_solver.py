"""Tests of the explicit-Euler FHN solver (fhnkit.solvers.cpu) against independent references.

The references here are written from SPEC.md section 1 directly and do not use
fhnkit: a plain numpy Euler loop, and scipy's adaptive Runge-Kutta with tight
tolerances.
"""

from __future__ import annotations

import contextlib
import itertools

import numba
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from fhnkit.cell.model import FHNParams
from fhnkit.solvers.cpu import euler, steps_for

# SPEC.md section 1 defaults, spelled out so that the references do not depend on fhnkit.
K, A, EPS, BETA, GAMMA = 10.0, 0.4, 0.2, 0.2, 0.8
PARAMS = FHNParams()

U32 = np.finfo(np.float32).eps / 2  # float32 unit roundoff, 6.0e-8


# --------------------------------------------------------------------------- references


def reference_euler(u0, w0, i_app, dt, n_steps, save_every, dtype=np.float64):
    """Plain numpy explicit Euler, vectorised over cells, same storage convention as euler()."""
    c = np.dtype(dtype).type
    u, w, i = (np.array(x, dtype=dtype) for x in (u0, w0, i_app))
    k, a, eps, beta, gamma, h = (c(x) for x in (K, A, EPS, BETA, GAMMA, dt))
    us, ws = [u.copy()], [w.copy()]
    for step in range(1, n_steps + 1):
        du = k * (u * (u - a) * (c(1.0) - u) - w + i)
        dw = eps * (beta * u - gamma * w)
        u, w = u + h * du, w + h * dw
        if step % save_every == 0:
            us.append(u.copy())
            ws.append(w.copy())
    return np.array(us), np.array(ws)


def reference_rk(u0, w0, i_app, t_end, method="RK45"):
    """(U, W) at t_end from scipy's adaptive Runge-Kutta at rtol=1e-11, atol=1e-12."""

    def f(_t, y):
        u, w = y
        return [K * (u * (u - A) * (1.0 - u) - w + i_app), EPS * (BETA * u - GAMMA * w)]

    sol = solve_ivp(f, (0.0, t_end), [u0, w0], method=method, rtol=1e-11, atol=1e-12)
    assert sol.success, sol.message
    return sol.y[:, -1]


def random_cells(n, seed=0):
    """Initial states and currents over the ranges of SPEC.md section 2 (Problems B and C)."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, n), rng.uniform(0, 0.18, n), rng.uniform(0, 0.12, n)


def final_state(u0, w0, i_app, dt, t_end, dtype=np.float64):
    """Euler state at t_end only (save_every = n_steps keeps just the first and last)."""
    n = steps_for(t_end, dt)
    _, u, w = euler(u0, w0, i_app, PARAMS, dt, n, save_every=n, dtype=dtype)
    return u[-1], w[-1]


def upward_crossings(t, u, level=0.5):
    """Times where u goes from <= level to > level, linearly interpolated between samples.

    The `<=` side counts a trajectory that starts exactly at `level` and rises
    (the stimulus from U0 = 0.5) as one crossing at t = 0.
    """
    idx = np.nonzero((u[:-1] <= level) & (u[1:] > level))[0]
    frac = (level - u[idx]) / (u[idx + 1] - u[idx])
    return t[idx] + frac * (t[idx + 1] - t[idx]), idx


# --------------------------------------------------------------------------- exact reference


@pytest.mark.parametrize("save_every", [1, 3, 7, 250, 400, 401])
def test_matches_plain_numpy_euler_float64(save_every):
    u0, w0, i_app = random_cells(64, seed=1)
    n_steps, dt = 400, 0.01
    times, u, w = euler(u0, w0, i_app, PARAMS, dt, n_steps, save_every=save_every)
    ref_u, ref_w = reference_euler(u0, w0, i_app, dt, n_steps, save_every)
    assert u.shape == w.shape == ref_u.shape == (n_steps // save_every + 1, 64)
    # The same IEEE operations in the same order, no fast-math, no FMA: bit for bit.
    np.testing.assert_array_equal(u, ref_u)
    np.testing.assert_array_equal(w, ref_w)
    np.testing.assert_allclose(times, dt * save_every * np.arange(len(times)), rtol=1e-15)


def test_matches_plain_numpy_euler_float32():
    """The float32 kernel really computes in float32, op for op like a numpy float32 loop."""
    u0, w0, i_app = random_cells(64, seed=2)
    _, u, w = euler(u0, w0, i_app, PARAMS, 0.01, 300, save_every=10, dtype=np.float32)
    ref_u, ref_w = reference_euler(u0, w0, i_app, 0.01, 300, 10, dtype=np.float32)
    # Same operations in the same order, no fast-math, no FMA: bit for bit.
    assert u.dtype == ref_u.dtype == np.float32
    np.testing.assert_array_equal(u, ref_u)
    np.testing.assert_array_equal(w, ref_w)


# Float32 vs float64 tolerance. Each Euler step rounds the state by about
# u32 = 6e-8; accumulated linearly over n steps that is n * u32 (3e-4 for the
# 5,000 steps to t = 50 at dt = 0.01). Away from the excitation threshold the
# dynamics contract, so real trajectories stay well inside n * u32 (observed
# 1.5e-5 on the autopacing cycle, 4e-7 on the single action potential). Cells
# that start near the threshold amplify any perturbation, rounding included
# (observed up to 2e-3 in a random batch to t = 20); for those we only require
# the float32 error to stay below Euler's own discretisation error at
# dt = 0.01, which is of order 1e-2 (SPEC.md section 2).
@pytest.mark.parametrize("i_app", [0.0, 0.1])
def test_float32_close_to_float64_on_spec_trajectories(i_app):
    n_steps = steps_for(50.0, 0.01)
    _, u64, w64 = euler(0.5, 0.0, i_app, PARAMS, 0.01, n_steps)
    _, u32, w32 = euler(0.5, 0.0, i_app, PARAMS, 0.01, n_steps, dtype=np.float32)
    assert u32.dtype == w32.dtype == np.float32
    tol = n_steps * U32
    assert np.abs(u32 - u64).max() < tol
    assert np.abs(w32 - w64).max() < tol


def test_float32_close_to_float64_on_random_batch():
    u0, w0, i_app = random_cells(2000, seed=3)
    n_steps = steps_for(20.0, 0.01)
    _, u64, w64 = euler(u0, w0, i_app, PARAMS, 0.01, n_steps, save_every=10)
    _, u32, w32 = euler(u0, w0, i_app, PARAMS, 0.01, n_steps, save_every=10, dtype=np.float32)
    per_cell = np.maximum(np.abs(u32 - u64), np.abs(w32 - w64)).max(axis=0)
    assert np.quantile(per_cell, 0.99) < n_steps * U32
    assert per_cell.max() < 1e-2


# --------------------------------------------------------------------------- convergence

# (U0, W0) below and above the excitation threshold a = 0.4, each with I_app 0 and 0.1.
CONVERGENCE_CASES = [(0.3, 0.0, 0.0), (0.3, 0.0, 0.1), (0.6, 0.0, 0.0), (0.6, 0.0, 0.1)]
CONVERGENCE_DTS = (0.004, 0.002, 0.001, 0.0005)


@pytest.fixture(scope="module")
def rk_reference():
    """RK45 states at t = 10, cross-checked against DOP853 (both at rtol=1e-11, atol=1e-12)."""
    refs = np.array([reference_rk(*case, 10.0) for case in CONVERGENCE_CASES])
    dop = np.array([reference_rk(*case, 10.0, method="DOP853") for case in CONVERGENCE_CASES])
    # The two methods agree to ~1e-12, far below the smallest Euler error tested (~1e-6).
    np.testing.assert_allclose(refs, dop, rtol=0, atol=1e-9)
    return refs


def _errors_at_t10(dt, rk_reference):
    u0, w0, i_app = (np.array(x) for x in zip(*CONVERGENCE_CASES, strict=True))
    u, w = final_state(u0, w0, i_app, dt, 10.0)
    return np.maximum(np.abs(u - rk_reference[:, 0]), np.abs(w - rk_reference[:, 1]))


def test_first_order_convergence(rk_reference):
    errors = np.array([_errors_at_t10(dt, rk_reference) for dt in CONVERGENCE_DTS])
    orders = np.log2(errors[:-1] / errors[1:])  # dt halves between rows
    assert np.all((orders > 0.85) & (orders < 1.15)), orders


# Bound on the distance to RK45 at dt = 1e-4. The Euler error is C * dt with
# C <= 0.11 for these four cases (measured from the dt series above), i.e.
# <= 1.1e-5 at dt = 1e-4; 5e-5 leaves a ~4x margin. The error must also be what
# first order predicts from dt = 5e-4, which pins the constant per case.
RK45_BOUND = 5e-5


def test_close_to_rk45_at_small_dt(rk_reference):
    err_fine = _errors_at_t10(1e-4, rk_reference)
    err_coarse = _errors_at_t10(5e-4, rk_reference)
    assert np.all(err_fine < RK45_BOUND), err_fine
    np.testing.assert_allclose(err_fine, err_coarse / 5, rtol=0.05)


# --------------------------------------------------------------------------- SPEC regimes


def test_single_action_potential_then_rest():
    t, u, _ = euler(0.5, 0.0, 0.0, PARAMS, 0.01, steps_for(100.0, 0.01))
    crossings, _ = upward_crossings(t, u)
    assert len(crossings) == 1 and crossings[0] == 0.0
    assert 0.85 <= u.max() <= 0.95
    assert abs(u[-1]) < 1e-3 and t[-1] == pytest.approx(100.0)


@pytest.mark.parametrize("i_app", [0.08, 0.1, 0.12])
def test_autopacing_limit_cycle(i_app):
    t, u, _ = euler(0.5, 0.0, i_app, PARAMS, 0.01, steps_for(200.0, 0.01))
    crossings, idx = upward_crossings(t, u)
    settled = crossings > 30.0  # skip the first, stimulus-driven beat and its transient
    periods = np.diff(crossings[settled])
    assert len(periods) >= 5
    assert np.all((periods > 18.0) & (periods < 22.0)), periods
    assert np.ptp(periods) < 0.05  # a limit cycle: the period does not drift
    peaks = np.array([u[a:b].max() for a, b in itertools.pairwise(idx)])
    assert np.all((peaks >= 1.0) & (peaks <= 1.15)), peaks


# --------------------------------------------------------------------------- interface


def test_shapes_times_and_snapshot_zero():
    u0, w0, i_app = random_cells(5)
    times, u, w = euler(u0, w0, i_app, PARAMS, 0.01, 10, save_every=3)
    assert times.shape == (4,) and times.dtype == np.float64
    np.testing.assert_allclose(times, [0.0, 0.03, 0.06, 0.09])
    assert u.shape == w.shape == (4, 5) and u.dtype == np.float64
    np.testing.assert_array_equal(u[0], u0)
    np.testing.assert_array_equal(w[0], w0)


def test_saved_snapshots_are_a_subsample_of_every_step():
    u0, w0, i_app = random_cells(7)
    _, u_all, w_all = euler(u0, w0, i_app, PARAMS, 0.01, 100, save_every=1)
    _, u_sub, w_sub = euler(u0, w0, i_app, PARAMS, 0.01, 100, save_every=7)
    np.testing.assert_array_equal(u_sub, u_all[::7])
    np.testing.assert_array_equal(w_sub, w_all[::7])


@pytest.mark.parametrize("n_steps,save_every,n_snap", [(0, 1, 1), (5, 10, 1), (10, 10, 2)])
def test_snapshot_count_edge_cases(n_steps, save_every, n_snap):
    times, u, _ = euler([0.5, 0.2], 0.0, 0.0, PARAMS, 0.01, n_steps, save_every=save_every)
    assert times.shape == (n_snap,) and u.shape == (n_snap, 2)


def test_zero_cells():
    times, u, w = euler(np.empty(0), np.empty(0), np.empty(0), PARAMS, 0.01, 10)
    assert times.shape == (11,) and u.shape == w.shape == (11, 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, "float32", np.dtype("float64")])
def test_dtype_of_outputs(dtype):
    times, u, w = euler([0.5, 0.1], [0.0, 0.0], [0.0, 0.1], PARAMS, 0.01, 20, dtype=dtype)
    assert u.dtype == w.dtype == np.dtype(dtype)
    assert times.dtype == np.float64


def test_scalar_broadcasting():
    u0 = np.linspace(0.1, 0.9, 6)
    _, u_b, w_b = euler(u0, 0.05, 0.1, PARAMS, 0.01, 50)
    _, u_f, w_f = euler(u0, np.full(6, 0.05), np.full(6, 0.1), PARAMS, 0.01, 50)
    np.testing.assert_array_equal(u_b, u_f)
    np.testing.assert_array_equal(w_b, w_f)
    # all scalars: one cell, outputs of shape (n_snapshots,)
    _, u_s, _ = euler(0.5, 0.0, 0.1, PARAMS, 0.01, 50)
    assert u_s.shape == (51,)
    # grid inputs keep their shape behind the snapshot axis
    _, u_g, _ = euler(u0[:, None], 0.0, np.array([0.0, 0.1])[None, :], PARAMS, 0.01, 50)
    assert u_g.shape == (51, 6, 2)
    np.testing.assert_array_equal(u_g[:, :, 1], euler(u0, 0.0, 0.1, PARAMS, 0.01, 50)[1])


def test_inputs_not_modified():
    u0, w0, i_app = random_cells(10)
    copies = [x.copy() for x in (u0, w0, i_app)]
    euler(u0, w0, i_app, PARAMS, 0.01, 100)
    for x, c in zip((u0, w0, i_app), copies, strict=True):
        np.testing.assert_array_equal(x, c)


def test_params_are_used():
    """A non-default parameter set gives a different trajectory, equal to the reference's."""
    params = FHNParams(k=5.0, a=0.3, epsilon=0.1, beta=0.5, gamma=1.0)
    _, u, w = euler(0.5, 0.0, 0.05, params, 0.01, 200)
    uu, ww = 0.5, 0.0
    for _ in range(200):
        du = 5.0 * (uu * (uu - 0.3) * (1.0 - uu) - ww + 0.05)
        dw = 0.1 * (0.5 * uu - 1.0 * ww)
        uu, ww = uu + 0.01 * du, ww + 0.01 * dw
    assert u[-1] == pytest.approx(uu, abs=1e-12) and w[-1] == pytest.approx(ww, abs=1e-12)


@pytest.mark.parametrize("dtype", [np.int32, np.float16, np.complex128, "int64"])
def test_bad_dtype(dtype):
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        euler(0.5, 0.0, 0.0, PARAMS, 0.01, 10, dtype=dtype)


@pytest.mark.parametrize("dt", [0.0, -0.01, float("nan"), float("inf")])
def test_bad_dt(dt):
    with pytest.raises(ValueError, match="dt must be a positive finite number"):
        euler(0.5, 0.0, 0.0, PARAMS, dt, 10)


@pytest.mark.parametrize("save_every", [0, -1])
def test_bad_save_every(save_every):
    with pytest.raises(ValueError, match="save_every an integer >= 1"):
        euler(0.5, 0.0, 0.0, PARAMS, 0.01, 10, save_every=save_every)


def test_negative_n_steps():
    with pytest.raises(ValueError, match="n_steps must be an integer >= 0"):
        euler(0.5, 0.0, 0.0, PARAMS, 0.01, -1)


@pytest.mark.parametrize("t_end,dt,n", [(10.0, 0.01, 1000), (10.0, 0.004, 2500), (0.3, 0.1, 3),
                                        (10.0, 1e-4, 100_000), (50.0, 2.0, 25), (0.0, 0.01, 0)])
def test_steps_for(t_end, dt, n):
    assert steps_for(t_end, dt) == n


@pytest.mark.parametrize("t_end,dt", [(10.0, 0.003), (10.0, 0.3), (1.0, 0.4), (20.0, 0.0099)])
def test_steps_for_refuses_non_divisor(t_end, dt):
    with pytest.raises(ValueError, match="does not divide"):
        steps_for(t_end, dt)


@pytest.mark.parametrize("t_end,dt", [(10.0, -0.01), (-10.0, 0.01), (10.0, 0.0)])
def test_steps_for_refuses_nonpositive(t_end, dt):
    with pytest.raises(ValueError):
        steps_for(t_end, dt)


# --------------------------------------------------------------------------- determinism


@contextlib.contextmanager
def one_thread():
    """Run numba parallel regions on a single thread inside the block."""
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def test_deterministic_bytes():
    u0, w0, i_app = random_cells(5000, seed=4)
    for dtype in (np.float32, np.float64):
        first = euler(u0, w0, i_app, PARAMS, 0.01, 300, save_every=5, dtype=dtype)
        second = euler(u0, w0, i_app, PARAMS, 0.01, 300, save_every=5, dtype=dtype)
        for a, b in zip(first, second, strict=True):
            assert a.tobytes() == b.tobytes()


def test_parallel_equals_each_cell_alone():
    # More cells than one parallel block (2048) with a partial last block.
    u0, w0, i_app = random_cells(4500, seed=5)
    _, u, w = euler(u0, w0, i_app, PARAMS, 0.01, 150, save_every=10)
    alone_u = np.empty_like(u)
    alone_w = np.empty_like(w)
    with one_thread():  # a parallel launch per single-cell call is slow on a loaded machine
        for j in range(len(u0)):
            _, alone_u[:, j], alone_w[:, j] = euler(u0[j], w0[j], i_app[j], PARAMS, 0.01, 150,
                                                    save_every=10)
    assert u.tobytes() == alone_u.tobytes()
    assert w.tobytes() == alone_w.tobytes()


def test_thread_count_does_not_change_result():
    u0, w0, i_app = random_cells(4500, seed=6)
    _, u_many, _ = euler(u0, w0, i_app, PARAMS, 0.01, 150, save_every=10)
    with one_thread():
        _, u_one, _ = euler(u0, w0, i_app, PARAMS, 0.01, 150, save_every=10)
    assert u_many.tobytes() == u_one.tobytes()


def test_store_initial_false_keeps_only_the_requested_points():
    params = FHNParams()
    times, U, W = euler([0.3, 0.6], 0.0, 0.0, params, 0.1, 100, 10, np.float32, store_initial=False)
    assert U.shape == (10, 2) and np.allclose(times, np.arange(1, 11))
    _, U_all, _ = euler([0.3, 0.6], 0.0, 0.0, params, 0.1, 100, 10, np.float32)
    np.testing.assert_array_equal(U, U_all[1:])


def test_non_integer_step_count_is_refused_clearly():
    with pytest.raises(ValueError, match="n_steps must be an integer"):
        euler(0.5, 0.0, 0.0, FHNParams(), 0.1, 10.5, 1)


@pytest.mark.parametrize("i_app, u0", [(0.0, 0.5), (0.1, 0.3), (0.1, 0.9)])
def test_rk4_is_fourth_order_and_accurate(i_app, u0):
    from fhnkit.cell.model import rhs
    from fhnkit.solvers.cpu import rk4

    ref = solve_ivp(lambda t, y: rhs(y[0], y[1], i_app, PARAMS), (0, 20), [u0, 0.05], method="DOP853",
                    rtol=1e-12, atol=1e-13, t_eval=[20.0]).y[:, -1]
    errs = []
    for dt in (0.04, 0.02, 0.01):
        _, U, W = rk4([u0], [0.05], [i_app], PARAMS, dt, round(20 / dt), round(20 / dt))
        errs.append(max(abs(U[-1, 0] - ref[0]), abs(W[-1, 0] - ref[1])))
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all((orders > 3.7) & (orders < 4.3)), orders
    assert errs[-1] < 1e-7  # dt = 0.01: ~1e-8 measured


def test_solve_dispatches_methods_and_refuses_rk4_on_cuda():
    from fhnkit.solvers.cpu import rk4, solve

    t, U, W = solve([0.5], [0.0], [0.0], PARAMS, 0.01, 100, 10, method="rk4", backend="cpu",
                    store_initial=False)
    np.testing.assert_array_equal(U, rk4([0.5], [0.0], [0.0], PARAMS, 0.01, 100, 10)[1][1:])
    assert t[0] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="CPU only"):
        solve(0.5, 0.0, 0.0, PARAMS, 0.01, 10, method="rk4", backend="cuda")
    with pytest.raises(ValueError, match="method must be one of"):
        solve(0.5, 0.0, 0.0, PARAMS, 0.01, 10, method="heun")

