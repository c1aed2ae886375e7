"""The CUDA kernel without a GPU: its source compiles, its launch and fallbacks are right."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from fhnkit.cell.model import FHNParams
from fhnkit.solvers import cuda as cuda_solver
from fhnkit.solvers.cpu import euler, solve

NVCC = shutil.which("nvcc")
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc not on PATH")


def test_source_defines_every_kernel_the_loader_calls():
    source = cuda_solver.kernel_source()
    for name in cuda_solver.KERNELS.values():
        assert re.search(rf'extern "C" __global__ void {name}\(', source), name


def _ptx(tmp_path, *options) -> str:
    src = tmp_path / "fhn_euler.cu"
    src.write_text(cuda_solver.kernel_source())
    out = tmp_path / "fhn_euler.ptx"
    subprocess.run([NVCC, "-ptx", *options, "-o", str(out), str(src)], check=True, capture_output=True)
    return out.read_text()


@needs_nvcc
def test_exact_mode_has_no_fma_and_fast_mode_does(tmp_path):
    exact = _ptx(tmp_path, *cuda_solver.compile_options(exact=True))
    fast = _ptx(tmp_path, *cuda_solver.compile_options(exact=False))
    assert ".entry fhn_euler_f32" in exact and ".entry fhn_euler_f64" in exact
    assert "fma.rn" not in exact, "exact mode must not contract a*b+c (CPU kernel equality)"
    assert "fma.rn" in fast


@needs_nvcc
def test_state_stays_in_registers(tmp_path):
    # no local-memory spills: each thread's U, W and I_app live in registers for every step
    ptx = _ptx(tmp_path, *cuda_solver.compile_options(exact=False))
    assert not re.search(r"(ld|st)\.local", ptx)
    assert re.search(r"ld\.global(\.nc)?\.f32", ptx) and re.search(r"st\.global\.f32", ptx)


@pytest.mark.parametrize("n, sms, blocks", [(1, 132, 1), (256, 132, 1), (257, 132, 2),
                                            (16_000_000, 132, 132 * 64)])
def test_launch_config(n, sms, blocks):
    assert cuda_solver.launch_config(n, sms) == (blocks, cuda_solver.THREADS_PER_BLOCK)


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


@needs_nvcc
@pytest.mark.parametrize("name, real", [("fhn_euler_f32", "f32"), ("fhn_euler_f64", "f64")])
def test_kernel_parameters_match_what_the_loader_passes(tmp_path, name, real):
    # euler_cuda passes: 3 device pointers, int64 n, 6 reals (k, a, eps, beta, gamma, dt),
    # int32 n_steps, save_every, store_initial, 2 device pointers
    ptx = _ptx(tmp_path, *cuda_solver.compile_options(exact=True))
    header = ptx.split(f".entry {name}(")[1].split(")")[0]
    types = re.findall(r"\.param \.(\w+) ", header)
    assert types == ["u64"] * 4 + [real] * 6 + ["u32"] * 3 + ["u64"] * 2
