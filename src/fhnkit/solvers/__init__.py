"""Numerical solvers of the FHN model: explicit Euler and RK4 on the CPU (numba), Euler on a GPU (CUDA).

Every cell (a parameter set) is advanced independently; both Euler kernels do the same IEEE
operations in the same order (`fhn_euler.cu` is compiled without FMA contraction for data).
`fast_euler` is the benchmark's CPU kernel: the folded FMA step of the .cu's `FastEuler`, not for data.
"""

from .cpu import BACKENDS, METHODS, euler, n_snapshots, rk4, solve, solver_backend, steps_for
from .cuda import CudaUnavailable, cuda_available, cupy_module, euler_cuda, kernel_source
from .fast import fast_euler

__all__ = [
    "BACKENDS",
    "METHODS",
    "CudaUnavailable",
    "cuda_available",
    "cupy_module",
    "euler",
    "euler_cuda",
    "fast_euler",
    "kernel_source",
    "n_snapshots",
    "rk4",
    "solve",
    "solver_backend",
    "steps_for",
]
