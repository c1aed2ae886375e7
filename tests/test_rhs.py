"""The FHN right-hand side is defined once, in fhnkit.cell.model.fhn_rhs, and every solver does exactly it.

- The CUDA source's `fhn_rhs` and `fhn_step` (src/fhnkit/solvers/fhn_euler.cu), built for the host
  (nvcc, else g++) without FMA contraction, equal the Python function bit for bit, float32 and float64.
- The numba Euler and RK4 kernels (fhnkit.solvers.cpu) equal steps written with fhn_rhs in numpy, bit for bit.

The C benchmark reference (src/fhnkit/inference/fhn_euler_ref.c) is an independent implementation by
design and is not tested here; tests/test_solver.py checks the solver against references written from
SPEC.md without fhnkit.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from fhnkit.cell.model import FHNParams, fhn_rhs, rhs
from fhnkit.solvers import cuda as cuda_solver
from fhnkit.solvers.cpu import euler, rk4

CU = Path(cuda_solver.__file__).with_name("fhn_euler.cu")
DTYPES = [np.float32, np.float64]
NAMES = ("k", "a", "epsilon", "beta", "gamma")
PARAM_SETS = [FHNParams(), FHNParams(k=8.0, a=0.3, epsilon=0.1, beta=0.3, gamma=0.5),
              FHNParams(k=13.7, a=0.13, epsilon=0.37, beta=0.61, gamma=1.3)]

# extern "C" wrappers around the .cu's templates, one loop over n cells each.
WRAPPERS = r"""
#include "{cu}"
#define FHN_EXPORT(T, S)                                                                                  \
    extern "C" void rhs_##S(long long n, const T *u, const T *w, const T *c, const T *k, const T *a,       \
                            const T *eps, const T *beta, const T *gamma, T *du, T *dw) {                 \
        for (long long i = 0; i < n; ++i)                                                                 \
            fhn_rhs<T>(u[i], w[i], c[i], k[i], a[i], eps[i], beta[i], gamma[i], du[i], dw[i]);            \
    }                                                                                                     \
    extern "C" void step_##S(long long n, T *u, T *w, const T *c, T k, T a, T eps, T beta, T gamma, T dt) { \
        for (long long i = 0; i < n; ++i) fhn_step<T>(u[i], w[i], c[i], k, a, eps, beta, gamma, dt);      \
    }
FHN_EXPORT(float, f32)
FHN_EXPORT(double, f64)
"""

# Host builds of the .cu without contraction of a*b+c (FMA): nvcc for its host code and for device code
# (which the library does not run), g++ as plain C++ (the .cu then defines the CUDA qualifiers away).
COMPILERS = {
    "nvcc": ["-std=c++17", "-O2", "--fmad=false", "-Xcompiler", "-fPIC,-ffp-contract=off", "-shared"],
    "g++": ["-x", "c++", "-std=c++17", "-O2", "-fPIC", "-ffp-contract=off", "-shared"],
}


@pytest.fixture(scope="module", params=list(COMPILERS))
def cu_host_lib(request, tmp_path_factory):
    exe = shutil.which(request.param)
    if exe is None:
        pytest.skip(f"{request.param} is not on PATH: cannot build fhn_euler.cu for the host")
    tmp = tmp_path_factory.mktemp(f"cu_host_{request.param}")
    src = tmp / ("wrappers.cu" if request.param == "nvcc" else "wrappers.cpp")
    src.write_text(WRAPPERS.replace("{cu}", str(CU)))
    lib = tmp / "libfhn_host.so"
    proc = subprocess.run([exe, *COMPILERS[request.param], "-o", str(lib), str(src)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"{request.param} could not build {CU.name} for the host:\n{proc.stderr}"
    return ctypes.CDLL(str(lib))


def random_inputs(n, dtype, seed):
    """States, currents and per-cell parameters well around the study's ranges."""
    rng = np.random.default_rng(seed)
    cols = [rng.uniform(-1.0, 2.0, n), rng.uniform(-0.5, 1.0, n), rng.uniform(-0.2, 0.3, n),  # u, w, i_app
            rng.uniform(5, 15, n), rng.uniform(0.05, 0.7, n), rng.uniform(0.01, 0.5, n),     # k, a, eps
            rng.uniform(0.05, 0.8, n), rng.uniform(0.2, 1.5, n)]                              # beta, gamma
    cols[3][:3], cols[4][:3] = 10.0, 0.4  # a few cells with the default k and a, and u = 0, 1, a
    cols[0][:3] = [0.0, 1.0, 0.4]
    return [np.ascontiguousarray(c, dtype=dtype) for c in cols]


def as_bits(x):
    x = np.asarray(x)
    return x.view(np.uint32 if x.dtype == np.float32 else np.uint64)


def assert_bitwise(got, want, what):
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype, (what, got.dtype, want.dtype)
    diff = np.flatnonzero(as_bits(got) != as_bits(want))
    example = f"{got.flat[diff[0]]!r} != {want.flat[diff[0]]!r}" if diff.size else ""
    assert diff.size == 0, f"{what}: {diff.size} of {got.size} differ, e.g. {example}"


def _ptrs(dtype, *arrays):
    ctype = ctypes.POINTER(ctypes.c_float if dtype == np.float32 else ctypes.c_double)
    return [a.ctypes.data_as(ctype) for a in arrays]


# --------------------------------------------------------------------------- the CUDA source


@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_rhs_equals_python_rhs_bit_for_bit(cu_host_lib, dtype):
    n = 4000
    cols = random_inputs(n, dtype, seed=11)
    du, dw = np.empty(n, dtype), np.empty(n, dtype)
    fn = cu_host_lib["rhs_f32" if dtype == np.float32 else "rhs_f64"]
    fn(ctypes.c_longlong(n), *_ptrs(dtype, *cols, du, dw))
    want_du, want_dw = fhn_rhs(*cols)  # numpy in the arrays' precision
    assert want_du.dtype == dtype
    assert_bitwise(du, want_du, f"dU/dt {np.dtype(dtype).name}")
    assert_bitwise(dw, want_dw, f"dW/dt {np.dtype(dtype).name}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", PARAM_SETS, ids=["default", "set1", "set2"])
def test_cuda_euler_step_equals_numba_and_python_steps(cu_host_lib, dtype, p):
    """The .cu's fhn_step (what each kernel thread does per step) = the numba kernel's step = u + dt * rhs."""
    n, dt = 3000, 0.01
    u0, w0, c = random_inputs(n, dtype, seed=12)[:3]
    c_ = np.dtype(dtype).type
    u, w = u0.copy(), w0.copy()
    pars = [c_(getattr(p, name)) for name in NAMES]
    fn = cu_host_lib["step_f32" if dtype == np.float32 else "step_f64"]
    ctype = ctypes.c_float if dtype == np.float32 else ctypes.c_double
    fn(ctypes.c_longlong(n), *_ptrs(dtype, u, w, c), *(ctype(x) for x in pars), ctype(c_(dt)))
    du, dw = fhn_rhs(u0, w0, c, *pars)
    assert_bitwise(u, u0 + c_(dt) * du, "U after one CUDA step vs numpy")
    assert_bitwise(w, w0 + c_(dt) * dw, "W after one CUDA step vs numpy")
    _, U, W = euler(u0, w0, c, p, dt, 1, 1, dtype)
    assert_bitwise(U[1], u, "U after one step, numba vs CUDA source")
    assert_bitwise(W[1], w, "W after one step, numba vs CUDA source")


# --------------------------------------------------------------------------- the numba kernels


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", PARAM_SETS, ids=["default", "set1", "set2"])
def test_numba_euler_equals_steps_of_fhn_rhs(dtype, p):
    """Euler in the inputs' precision: each step is u + dt * fhn_rhs(u, ...), bit for bit, and so are 40."""
    n, dt, n_steps = 2500, 0.01, 40  # 2500: two full blocks of the kernel and a partial one
    u, w, c = random_inputs(n, dtype, seed=13)[:3]
    c_ = np.dtype(dtype).type
    pars, h = [c_(getattr(p, name)) for name in NAMES], c_(dt)
    _, U, W = euler(u, w, c, p, dt, n_steps, 1, dtype)
    for s in range(1, n_steps + 1):
        du, dw = fhn_rhs(u, w, c, *pars)
        u, w = u + h * du, w + h * dw
        assert_bitwise(U[s], u, f"U at step {s}")
        assert_bitwise(W[s], w, f"W at step {s}")


def rk4_reference(u, w, c, pars, dt, n_steps):
    """Classical RK4 with fhn_rhs, in the operation order of fhnkit.solvers.cpu._rk4_kernel, in the precision
    of `u` (every constant in it: dt, dt / 2 and dt / 6 rounded once, and 2)."""
    real = u.dtype.type
    pars = [real(p) for p in pars]
    step, half, sixth, two, one = real(dt), real(dt / 2), real(dt / 6), real(2.0), real(1.0)
    for _ in range(n_steps):
        k1u, k1w = fhn_rhs(u, w, c, *pars, one)
        k2u, k2w = fhn_rhs(u + half * k1u, w + half * k1w, c, *pars, one)
        k3u, k3w = fhn_rhs(u + half * k2u, w + half * k2w, c, *pars, one)
        k4u, k4w = fhn_rhs(u + step * k3u, w + step * k3w, c, *pars, one)
        u = u + sixth * (k1u + two * k2u + two * k3u + k4u)
        w = w + sixth * (k1w + two * k2w + two * k3w + k4w)
    return u, w


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_steps", [1, 25])
def test_numba_rk4_equals_rk4_of_fhn_rhs(dtype, n_steps):
    """RK4 with fhn_rhs in numpy, in the inputs' precision, bit for bit: with float32 inputs the kernel
    computes in float32 throughout (it once computed in float64, its dt / 2 and 2 * k terms promoting
    the state, against its documentation)."""
    n, dt = 2000, 0.01
    for p in PARAM_SETS:
        u, w, c = random_inputs(n, dtype, seed=14)[:3]
        pars = [getattr(p, name) for name in NAMES]
        _, U, W = rk4(u, w, c, p, dt, n_steps, n_steps, dtype)
        ref_u, ref_w = rk4_reference(u, w, c, pars, dt, n_steps)
        assert ref_u.dtype == dtype
        assert_bitwise(U[1], ref_u, f"U after {n_steps} RK4 step(s), {p}")
        assert_bitwise(W[1], ref_w, f"W after {n_steps} RK4 step(s), {p}")


# --------------------------------------------------------------------------- the PINN residual's rhs


def test_rhs_wrapper_is_fhn_rhs_with_the_params_and_works_on_tensors():
    torch = pytest.importorskip("torch")
    u, w, c = random_inputs(500, np.float32, seed=15)[:3]
    p = PARAM_SETS[1]
    want = fhn_rhs(u, w, c, *(getattr(p, name) for name in NAMES))
    for got, ref in zip(rhs(u, w, c, p), want, strict=True):
        assert_bitwise(got, ref, "rhs(u, w, i_app, p) on numpy")
    got_t = rhs(torch.from_numpy(u), torch.from_numpy(w), torch.from_numpy(c), p)
    for got, ref in zip(got_t, want, strict=True):
        assert got.dtype == torch.float32
        assert_bitwise(got.numpy(), ref, "rhs on float32 torch tensors")


# --------------------------------------------------------------------------- problem C's K -> I_app


def test_k_to_i_app_is_one_map_with_one_default():
    from fhnkit.cell.problems import K_TO_I_APP, i_app, i_app_of_k
    from fhnkit.plan.config import load_schema

    schema_default = load_schema()["definitions"]["study"]["properties"]["k_to_i_app"]["default"]
    assert tuple(schema_default) == K_TO_I_APP
    K = np.linspace(0, 1, 11)
    assert_bitwise(i_app({"problem": "C", "k_to_i_app": [0.08, 0.04]}, K), 0.08 + 0.04 * K, "i_app of K")
    assert_bitwise(i_app_of_k(K), 0.08 + 0.04 * K, "i_app_of_k with the default map")
    assert i_app({"problem": "B", "i_app": 0.1, "k_to_i_app": [0.08, 0.04]}) == 0.1
    with pytest.raises(ValueError, match="pass K"):
        i_app({"problem": "C", "k_to_i_app": [0.08, 0.04]})


def test_kernel_cache_follows_the_rhs_source():
    """numba re-validates a cached kernel against solvers/cpu.py only; a stamp of fhn_rhs's source
    makes a kernel compiled against other equations (an edit of cell/model.py) be compiled again."""
    from pathlib import Path

    from fhnkit.solvers import cpu

    kernel = cpu._euler_kernel
    stamp = Path(kernel._cache.cache_path) / f"{kernel.py_func.__qualname__}.fhn_rhs.sha256"
    assert cpu.forget_kernels_of_another_rhs(kernel) == []  # in step after the import
    stamp.write_text("the stamp of another fhn_rhs")
    assert cpu.forget_kernels_of_another_rhs(kernel) == ["_euler_kernel"]
    assert stamp.read_text() != "the stamp of another fhn_rhs"
    assert cpu.forget_kernels_of_another_rhs(kernel) == []
