"""The CUDA kernels without a GPU.

- The source compiles (nvcc for sm_90; NVRTC, as CuPy runs it, where its library is found), the exact kernels
  neither contract nor flush subnormals, and the instructions per step are counted in the PTX.
- The fast step's folded constants equal Euler with fhn_rhs (NumPy, and the .cu's FastEuler built for the host).
- The launch configuration, the compile options, and the fallbacks: with a stand-in CuPy that sees a device but
  cannot compile (as without NVRTC), `solve(backend="auto")` and the benchmark run numba and say why.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import fast_steps_cu  # FastEuler of the .cu built for the host (fixture fast_host_lib)
from fhnkit.cell.model import FHNParams, fhn_rhs
from fhnkit.solvers import cuda as cuda_solver
from fhnkit.solvers.cpu import euler, solve

NVCC = shutil.which("nvcc")
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc not on PATH: cannot compile fhn_euler.cu here")
EXACT, FAST = cuda_solver.compile_options(exact=True), cuda_solver.compile_options(exact=False)
ONE_STEP = ("-DFHN_STEP_UNROLL=1",)  # a step loop that does one step per iteration
NAMES = ("k", "a", "epsilon", "beta", "gamma")
PARAM_SETS = [FHNParams(), FHNParams(k=8.0, a=0.3, epsilon=0.1, beta=0.3, gamma=0.5),
              FHNParams(k=13.7, a=0.13, epsilon=0.37, beta=0.61, gamma=1.3)]
PARAM_IDS = ["default", "set1", "set2"]

# Floating-point instructions per Euler step in the PTX for sm_90 (nvcc 13.0), float32 and float64 alike:
#   before: 13, fhn_step with FMA contraction (the kernel before issue 14, which the benchmark ran);
#   exact:  15, fhn_step with --fmad=false (the 11 operations of fhn_rhs and the two updates u + dt * du);
#   after:   7, FastEuler (folded constants, Horner form): 6 FMA + 1 ADD.
EXACT_FP_PER_STEP = 15
FAST_FP_PER_STEP_MAX = 8

# --------------------------------------------------------------------------- the source and its PTX


def test_source_defines_every_kernel_the_loader_calls():
    source = cuda_solver.kernel_source()
    for name in [*cuda_solver.KERNELS.values(), *cuda_solver.FAST_KERNELS.values()]:
        assert re.search(rf'extern "C" __global__ void {name}\(', source), name


@pytest.fixture(scope="module")
def ptx_of(tmp_path_factory):
    """PTX of the packaged fhn_euler.cu for sm_90 with the given nvcc options (each set compiled once)."""
    if NVCC is None:
        pytest.skip("nvcc not on PATH: cannot compile fhn_euler.cu to PTX")
    tmp = tmp_path_factory.mktemp("ptx")
    src = tmp / "fhn_euler.cu"
    src.write_text(cuda_solver.kernel_source())
    built = {}

    def build(*options):
        if options not in built:
            out = tmp / f"fhn_euler_{len(built)}.ptx"
            proc = subprocess.run([NVCC, "-arch=sm_90", "--ptx", *options, "-o", str(out), str(src)],
                                  capture_output=True, text=True, timeout=300)
            assert proc.returncode == 0, f"nvcc {' '.join(options)}:\n{proc.stderr}"
            built[options] = out.read_text()
        return built[options]
    return build


def entry(ptx: str, name: str) -> str:
    """The body of kernel `name` in `ptx`."""
    assert f".entry {name}(" in ptx, name
    return ptx.split(f".entry {name}(")[1].split("\n}\n")[0]


FP_OP = re.compile(r"^\s*(?:@!?%p\d+\s+)?(?:add|sub|mul|fma|neg|abs|min|max|div|rcp|sqrt)(?:\.\w+)*\.f(?:32|64)\s")


def step_loops(ptx: str, name: str) -> list[int]:
    """Floating-point instructions of each single-block loop of kernel `name` that does any: its step loop,
    in every copy the compiler made of it (a basic block, from a label to the first branch after it, whose
    branch goes back to that label)."""
    parts = re.split(r"^(\$L__\w+):\s*$", entry(ptx, name), flags=re.M)
    counts = []
    for label, text in zip(parts[1::2], parts[2::2], strict=True):
        block = re.match(r"(.*?\bbra(?:\.uni)?\s+(\$L__\w+);)", text, flags=re.S)
        if block and block.group(2) == label:
            n_fp = sum(bool(FP_OP.match(line)) for line in block.group(1).splitlines())
            if n_fp:
                counts.append(n_fp)
    return counts


def per_step(ptx: str, name: str) -> int:
    """Floating-point instructions per step of kernel `name`, from a build with FHN_STEP_UNROLL=1."""
    counts = step_loops(ptx, name)
    assert counts and len(set(counts)) == 1, f"{name}: step loops with {counts} FP instructions"
    return counts[0]


@needs_nvcc
@pytest.mark.parametrize("real", ["f32", "f64"])
def test_floating_point_instructions_per_step(ptx_of, real):
    exact = per_step(ptx_of(*EXACT, *ONE_STEP), f"fhn_euler_{real}")
    before = per_step(ptx_of(*FAST, *ONE_STEP), f"fhn_euler_{real}")  # the exact step, contracted
    fast = per_step(ptx_of(*FAST, *ONE_STEP), f"fhn_euler_fast_{real}")
    assert exact == EXACT_FP_PER_STEP, f"the exact step is {exact} instructions, not fhn_rhs's operations"
    assert fast <= FAST_FP_PER_STEP_MAX < before <= exact, (fast, before, exact)


@needs_nvcc
@pytest.mark.parametrize("exact", [True, False], ids=["exact-options", "fast-options"])
def test_the_shipped_step_loop_holds_unroll_steps_and_nothing_else(ptx_of, exact):
    unroll = int(re.search(r"#define FHN_STEP_UNROLL (\d+)", cuda_solver.kernel_source()).group(1))
    options = EXACT if exact else FAST
    for name in [*cuda_solver.KERNELS.values(), *cuda_solver.FAST_KERNELS.values()]:
        one = per_step(ptx_of(*options, *ONE_STEP), name)
        assert set(step_loops(ptx_of(*options), name)) == {unroll * one}, name


@needs_nvcc
def test_exact_kernels_neither_contract_nor_flush_and_fast_kernels_do(ptx_of):
    exact, fast = ptx_of(*EXACT), ptx_of(*FAST)
    for name in cuda_solver.KERNELS.values():
        assert "fma" not in entry(exact, name), f"{name}: exact mode must not contract a*b+c (CPU kernel equality)"
        assert ".ftz" not in entry(exact, name), f"{name}: exact mode must keep float32 subnormals"
    for name in cuda_solver.FAST_KERNELS.values():
        assert "fma.rn" in entry(fast, name) and "fma.rn" in entry(exact, name), name  # FMA by hand: always
    assert ".ftz" in entry(fast, "fhn_euler_fast_f32")


@needs_nvcc
def test_state_stays_in_registers(ptx_of):
    # no local-memory spills: each thread's U, W and I_app live in registers for every step
    for ptx in (ptx_of(*EXACT), ptx_of(*FAST)):
        assert not re.search(r"(ld|st)\.local", ptx)
        assert re.search(r"ld\.global(\.nc)?\.f32", ptx) and re.search(r"st\.global\.f32", ptx)


@needs_nvcc
def test_whole_file_compiles_for_sm_90_with_the_exact_options(tmp_path):
    src = tmp_path / "fhn_euler.cu"
    src.write_text(cuda_solver.kernel_source())
    proc = subprocess.run([NVCC, "-arch=sm_90", "-c", *EXACT, "-o", str(tmp_path / "fhn_euler.o"), str(src)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in (proc.stdout + proc.stderr).lower(), proc.stderr


@needs_nvcc
@pytest.mark.parametrize("name, real", [("fhn_euler_f32", "f32"), ("fhn_euler_f64", "f64"),
                                        ("fhn_euler_fast_f32", "f32"), ("fhn_euler_fast_f64", "f64")])
def test_kernel_parameters_match_what_the_loader_passes(ptx_of, name, real):
    # euler_cuda passes: 3 device pointers, int64 n, 6 reals (k, a, eps, beta, gamma, dt),
    # int32 n_steps, save_every, store_initial, 2 device pointers
    ptx = ptx_of(*EXACT)
    header = ptx.split(f".entry {name}(")[1].split(")")[0]
    types = re.findall(r"\.param \.(\w+) ", header)
    assert types == ["u64"] * 4 + [real] * 6 + ["u32"] * 3 + ["u64"] * 2


# --------------------------------------------------------------------------- NVRTC, as CuPy runs it


def _libnvrtc():
    """libnvrtc loaded with ctypes, or None (it comes with CuPy's CUDA wheels or a CUDA toolkit)."""
    candidates = [ctypes.util.find_library("nvrtc")]
    library_path = os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep)
    for root in filter(None, [*sys.path, *library_path, "/usr/local/cuda/lib64"]):
        candidates += sorted(str(p) for p in Path(root).glob("nvidia/*/lib/libnvrtc.so*"))
        candidates += sorted(str(p) for p in Path(root).glob("libnvrtc.so*"))
    for name in filter(None, candidates):
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


def _nvrtc_ptx(lib, options) -> str:
    """PTX of fhn_euler.cu compiled by NVRTC with `options` plus what CuPy's compile_using_nvrtc adds."""
    prog = ctypes.c_void_p()
    source = cuda_solver.kernel_source().encode()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), source, b"fhn_euler.cu", 0, None, None) == 0
    opts = [*options, "-arch=compute_90", "--device-as-default-execution-space"]
    status = lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*[o.encode() for o in opts]))
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    if status != 0 and b"builtins" in log.value:
        pytest.skip(f"NVRTC found but not usable here: {log.value.decode().strip()}")
    assert status == 0, log.value.decode()
    lib.nvrtcGetPTXSize(prog, ctypes.byref(size))
    ptx = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetPTX(prog, ptx)
    lib.nvrtcDestroyProgram(ctypes.byref(prog))
    return ptx.value.decode()


def test_nvrtc_keeps_subnormals_with_the_exact_options_and_cupys_appended_ftz_would_not():
    """cupy.RawModule appends -ftz=true after the caller's options and NVRTC keeps the last one; fhnkit
    therefore compiles with compile_using_nvrtc, which passes the exact options as they are."""
    lib = _libnvrtc()
    if lib is None:
        pytest.skip("libnvrtc not found (CuPy's CUDA wheels or a CUDA toolkit bring it)")
    exact = entry(_nvrtc_ptx(lib, EXACT), "fhn_euler_f32")
    as_raw_module = entry(_nvrtc_ptx(lib, (*EXACT, "-ftz=true")), "fhn_euler_f32")
    assert ".ftz" not in exact and "fma" not in exact
    assert ".ftz" in as_raw_module


# --------------------------------------------------------------------------- the fast step's algebra


def random_state(n, seed, dtype=np.float64):
    """States and currents around the study's ranges, all stable with dt = 0.01."""
    rng = np.random.default_rng(seed)
    return [rng.uniform(lo, hi, n).astype(dtype) for lo, hi in ((-0.2, 1.0), (-0.2, 1.0), (-0.2, 0.3))]


def fast_step_numpy(u, w, c, p: FHNParams, dt: float, n_steps: int):
    """`n_steps` of FastEuler (fhn_euler.cu) in NumPy float64: the folded coefficients, each product and sum
    rounded on its own (NumPy has no FMA)."""
    h, e = dt * p.k, dt * p.epsilon
    c3, c2, c1, c0 = -h, h * (1 + p.a), -h * p.a, h * c
    wu, ww = e * p.beta, -e * p.gamma
    for _ in range(n_steps):
        du = ((c3 * u + c2) * u + c1) * u + (c3 * w + c0)
        u, w = u + du, (w + ww * w) + wu * u
    return u, w


def euler_of_fhn_rhs(u, w, c, p: FHNParams, dt: float, n_steps: int):
    """`n_steps` explicit Euler steps u + dt * fhn_rhs(...), in the arrays' precision."""
    pars = [getattr(p, name) for name in NAMES]
    for _ in range(n_steps):
        du, dw = fhn_rhs(u, w, c, *pars)
        u, w = u + dt * du, w + dt * dw
    return u, w


def assert_close(got, want, rel, what):
    """|got - want| <= rel * max(1, |want|) everywhere (the state is O(1): relative to its scale)."""
    err = np.abs(got - want) / np.maximum(1.0, np.abs(want))
    assert np.all(np.isfinite(want)) and err.max() <= rel, f"{what}: off by up to {err.max():.3g} (allowed {rel:g})"


@pytest.mark.parametrize("p", PARAM_SETS, ids=PARAM_IDS)
def test_fast_step_folding_equals_euler_of_fhn_rhs(p):
    """The folding is algebra, not an approximation: one step agrees to rounding, 300 steps to ~1e-12."""
    u, w, c = random_state(4000, seed=21)
    dt = 0.01
    for n_steps, rel in ((1, 1e-15), (300, 1e-12)):
        got_u, got_w = fast_step_numpy(u, w, c, p, dt, n_steps)
        want_u, want_w = euler_of_fhn_rhs(u, w, c, p, dt, n_steps)
        assert_close(got_u, want_u, rel, f"U after {n_steps} step(s)")
        assert_close(got_w, want_w, rel, f"W after {n_steps} step(s)")


@pytest.mark.parametrize("p", PARAM_SETS, ids=PARAM_IDS)
def test_cu_fast_step_equals_euler_of_fhn_rhs_in_float64(fast_host_lib, p):
    u, w, c = random_state(3000, seed=22)
    got_u, got_w = fast_steps_cu(fast_host_lib, u, w, c, p, 0.01, 300)
    want_u, want_w = euler_of_fhn_rhs(u, w, c, p, 0.01, 300)
    assert_close(got_u, want_u, 1e-12, "U after 300 steps")
    assert_close(got_w, want_w, 1e-12, "W after 300 steps")


@pytest.mark.parametrize("p", PARAM_SETS, ids=PARAM_IDS)
def test_cu_fast_step_in_float32_is_about_as_accurate_as_the_exact_step(fast_host_lib, p):
    """Against float64, the fast float32 step drifts ~1.4x as much as the exact one, allowed 3x (with the state
    folded into a coefficient, W' = (1 - dt eps gamma) W + ..., it was 13-23x)."""
    u, w, c = random_state(3000, seed=23, dtype=np.float32)
    dt, n_steps = 0.01, 300
    fast_u, fast_w = fast_steps_cu(fast_host_lib, u, w, c, p, dt, n_steps)
    _, exact_u, exact_w = euler(u, w, c, p, dt, n_steps, n_steps, np.float32)
    ref_u, ref_w = euler_of_fhn_rhs(u.astype(float), w.astype(float), c.astype(float), p, float(np.float32(dt)),
                                    n_steps)
    for fast, exact, ref in ((fast_u, exact_u[1], ref_u), (fast_w, exact_w[1], ref_w)):
        assert np.mean(np.abs(fast - ref)) <= 3 * np.mean(np.abs(exact - ref))


# --------------------------------------------------------------------------- options, launch, refusals


def test_compile_options():
    """Exact: no contraction, IEEE float32 subnormals; fast: contraction, subnormals flushed (CuPy's default)."""
    assert EXACT == ("-std=c++17", "--fmad=false", "-ftz=false")
    assert FAST == ("-std=c++17", "-ftz=true")


def test_kernel_names():
    assert cuda_solver.kernel_name(np.float32, exact=True) == "fhn_euler_f32"
    assert cuda_solver.kernel_name("float64", exact=False) == "fhn_euler_fast_f64"
    with pytest.raises(ValueError, match="float32 or float64"):
        cuda_solver.kernel_name(np.float16, exact=True)


@pytest.mark.parametrize("n, sms, blocks", [(1, 132, 1), (256, 132, 1), (257, 132, 2),
                                            (16_000_000, 132, 132 * 64)])
def test_launch_config(n, sms, blocks):
    assert cuda_solver.launch_config(n, sms) == (blocks, cuda_solver.THREADS_PER_BLOCK)


@pytest.mark.parametrize("n_steps, save_every", [(10, 0), (-1, 1), (2.5, 1)])
def test_euler_cuda_refuses_bad_step_counts_before_any_cuda(n_steps, save_every):
    with pytest.raises(ValueError, match="n_steps must be an integer"):
        cuda_solver.euler_cuda(0.5, 0.0, 0.0, FHNParams(), 0.01, n_steps, save_every)


def test_cuda_backend_without_gpu_is_refused_with_the_reason():
    usable, why = cuda_solver.cuda_available()
    if usable:
        pytest.skip("a CUDA device is present")
    assert why
    with pytest.raises(cuda_solver.CudaUnavailable, match="backend: cpu or auto"):
        solve(0.5, 0.0, 0.0, FHNParams(), 0.01, 10, backend="cuda")


def test_auto_backend_falls_back_to_the_cpu_kernel():
    if cuda_solver.cuda_available()[0]:
        pytest.skip("a CUDA device is present")
    u0 = np.linspace(0, 1, 9)
    got = solve(u0, 0.05, 0.1, FHNParams(), 0.01, 200, 20, backend="auto")
    want = euler(u0, 0.05, 0.1, FHNParams(), 0.01, 200, 20)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


def test_unknown_backend():
    with pytest.raises(ValueError, match="backend must be one of"):
        solve(0.5, 0.0, 0.0, FHNParams(), 0.01, 10, backend="opencl")


# --------------------------------------------------------------------------- a CuPy that cannot compile

NVRTC_MISSING = "CuPy failed to load libnvrtc.so.12: OSError: libnvrtc.so.12: cannot open shared object file"

# A stand-in `cupy` package: one device, and every compilation fails as CuPy's does without NVRTC.
FAKE_CUPY = {
    "cupy/__init__.py": """
        from . import cuda

        class RawModule:  # as CuPy's: its own -ftz=true after the caller's options
            def __init__(self, code="", options=(), **kwargs):
                cuda.compiler.compile_using_nvrtc(code, tuple(options) + ("-ftz=true",))
    """,
    "cupy/cuda/__init__.py": """
        from . import compiler, function, runtime

        class Device:
            def __init__(self, device=None):
                self.id = device or 0
    """,
    "cupy/cuda/runtime.py": """
        def getDeviceCount():
            return 1
    """,
    "cupy/cuda/compiler.py": f"""
        CALLS = []

        def compile_using_nvrtc(source, options=(), *args, **kwargs):
            CALLS.append(list(options))
            raise RuntimeError({NVRTC_MISSING!r} + ": No such file or directory")
    """,
    "cupy/cuda/function.py": """
        class Module:
            def load(self, binary):
                raise AssertionError("nothing was compiled, so nothing can be loaded")
    """,
}

PROBE = """
import json, logging, sys
import numpy as np

records = []
handler = logging.Handler()
handler.emit = lambda record: records.append([record.levelname, record.name, record.getMessage()])
logging.getLogger("fhnkit").addHandler(handler)
logging.getLogger("fhnkit").setLevel(logging.INFO)

import fhnkit.solvers as solvers
lazy = "cupy" not in sys.modules
from fhnkit.cell.model import FHNParams

args = (np.linspace(-0.2, 1.0, 37), 0.05, 0.1, FHNParams(), 0.01, 200, 20)
same = {}
for dtype in ("float64", "float32"):
    auto = solvers.solve(*args, dtype=dtype, backend="auto")
    cpu = solvers.solve(*args, dtype=dtype, backend="cpu")
    same[dtype] = all(np.array_equal(a, c) and a.dtype == c.dtype for a, c in zip(auto, cpu))
try:
    solvers.solve(*args, backend="cuda")
    cuda_error = None
except solvers.CudaUnavailable as exc:
    cuda_error = f"{type(exc).__name__}: {exc}"
available = {"exact": solvers.cuda_available(exact=True), "fast": solvers.cuda_available(exact=False)}

from fhnkit.inference.benchmark import solver_call
sets = {"U0": np.zeros(8), "W0": np.zeros(8), "I_app": np.full(8, 0.1)}
bench = {"t_end": 1.0, "dt": 0.1, "n_points": 5, "precision": "float32", "threads": 1}
_, info = solver_call(sets, FHNParams(), bench, "cuda")

import cupy
print(json.dumps({"lazy": lazy, "same": same, "cuda_error": cuda_error, "available": available,
                  "bench": info, "records": records, "compiles": cupy.cuda.compiler.CALLS}))
"""


@pytest.fixture(scope="module")
def without_nvrtc(tmp_path_factory):
    """What fhnkit does in a fresh interpreter whose `cupy` sees a device but cannot compile (the PROBE's JSON)."""
    root = tmp_path_factory.mktemp("fake_cupy")
    for rel, text in FAKE_CUPY.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_auto_backend_runs_numba_when_cupy_cannot_compile_the_kernel(without_nvrtc):
    assert without_nvrtc["lazy"], "importing fhnkit.solvers imported cupy"
    assert without_nvrtc["same"] == {"float64": True, "float32": True}
    warnings = [msg for level, _, msg in without_nvrtc["records"] if level == "WARNING"]
    assert any("numba" in msg and NVRTC_MISSING in msg for msg in warnings), without_nvrtc["records"]


def test_cuda_backend_names_why_the_kernel_cannot_be_compiled(without_nvrtc):
    error = without_nvrtc["cuda_error"]
    assert error.startswith("CudaUnavailable: backend 'cuda' was asked for, but the exact kernel"), error
    assert NVRTC_MISSING in error and "cannot be compiled or loaded" in error
    for kind in ("exact", "fast"):
        usable, why = without_nvrtc["available"][kind]
        assert not usable and NVRTC_MISSING in why and f"the {kind} kernel" in why


def test_each_kernel_is_compiled_once_with_its_own_options(without_nvrtc):
    """Failures are remembered (one attempt per mode, not one per call), and the options reach NVRTC as
    compile_options gives them, -ftz=false included (cupy.RawModule would append -ftz=true)."""
    assert sorted(without_nvrtc["compiles"]) == sorted([list(EXACT), list(FAST)])


def test_benchmark_solver_runs_numba_when_cupy_cannot_compile_the_kernel(without_nvrtc):
    info = without_nvrtc["bench"]
    assert info["backend"] == "numba" and NVRTC_MISSING in info["why_not_cuda"]
