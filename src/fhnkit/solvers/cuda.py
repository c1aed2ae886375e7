"""The CUDA Euler kernel (`fhnkit/solvers/fhn_euler.cu`), compiled at run time through CuPy.

Used when a GPU is present (`backend: auto`) or asked for (`backend: cuda`).
CuPy is imported lazily: on a machine without it, `cuda_available()` says so
and `euler_cuda` raises `CudaUnavailable` with the reason.
"""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np

from ..cell.model import FHNParams

KERNELS = {np.dtype(np.float32): "fhn_euler_f32", np.dtype(np.float64): "fhn_euler_f64"}
THREADS_PER_BLOCK = 256


class CudaUnavailable(RuntimeError):
    """No usable CUDA device through CuPy; the message says why."""


def kernel_source() -> str:
    """Text of the CUDA source `fhn_euler.cu`, package data beside this module."""
    return (resources.files(__package__) / "fhn_euler.cu").read_text()


def cupy_module():
    """The `cupy` module, or CudaUnavailable saying why it cannot be used."""
    try:
        import cupy
    except Exception as exc:  # ImportError, or a CuPy built for another CUDA
        raise CudaUnavailable(f"CuPy cannot be imported ({type(exc).__name__}: {exc}); "
                              "install the GPU extra of your CUDA major: pip install -e '.[gpu-cu12]' "
                              "or '.[gpu-cu13]'") from exc
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise CudaUnavailable("CuPy sees no CUDA device")
    except CudaUnavailable:
        raise
    except Exception as exc:
        raise CudaUnavailable(f"no usable CUDA device ({type(exc).__name__}: {exc})") from exc
    return cupy


def cuda_available() -> tuple[bool, str]:
    """(usable, reason) for the CUDA backend."""
    try:
        cp = cupy_module()
    except CudaUnavailable as exc:
        return False, str(exc)
    return True, f"{cp.cuda.runtime.getDeviceCount()} device(s)"


def compile_options(exact: bool) -> tuple[str, ...]:
    """nvcc options: `exact` forbids FMA contraction so that results equal the CPU kernel's bit for bit."""
    return ("-std=c++17",) + (("--fmad=false",) if exact else ())


@functools.cache
def _module(exact: bool):
    return cupy_module().RawModule(code=kernel_source(), options=compile_options(exact))


def launch_config(n_cells: int, sm_count: int) -> tuple[int, int]:
    """(blocks, threads): enough blocks to fill every SM many times, a grid-stride loop for the rest."""
    blocks = max(1, min(-(-n_cells // THREADS_PER_BLOCK), sm_count * 64))
    return blocks, THREADS_PER_BLOCK


def euler_cuda(u0, w0, i_app, params: FHNParams, dt: float, n_steps: int, save_every: int = 1,
               dtype=np.float64, store_initial: bool = True, to_host: bool = True, exact: bool = False):
    """Same contract as `fhnkit.solvers.cpu.euler`, computed on the GPU.

    Inputs may be numpy or CuPy arrays; with `to_host=False` U and W stay CuPy arrays on the device.
    `exact=True` compiles without FMA contraction (bit-identical to the CPU kernel); the default
    lets nvcc contract, which is faster and differs from the CPU in the last bits of each step.
    """
    cp = cupy_module()
    dtype = np.dtype(dtype)
    if dtype not in KERNELS:
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    u0, w0, i_app = (cp.ascontiguousarray(cp.asarray(x, dtype=dtype).ravel())
                     for x in cp.broadcast_arrays(cp.asarray(u0), cp.asarray(w0), cp.asarray(i_app)))
    n = u0.size
    n_snap = n_steps // save_every + int(store_initial)
    out_u = cp.empty((n_snap, n), dtype)
    out_w = cp.empty((n_snap, n), dtype)
    kernel = _module(exact).get_function(KERNELS[dtype])
    sm_count = cp.cuda.Device().attributes["MultiProcessorCount"]
    c = dtype.type
    kernel(launch_config(n, sm_count)[:1], (THREADS_PER_BLOCK,),
           (u0, w0, i_app, np.int64(n), c(params.k), c(params.a), c(params.epsilon), c(params.beta),
            c(params.gamma), c(dt), np.int32(n_steps), np.int32(save_every), np.int32(store_initial), out_u, out_w))
    times = (np.arange(n_snap, dtype=np.float64) + (not store_initial)) * (save_every * dt)
    if to_host:
        return times, cp.asnumpy(out_u), cp.asnumpy(out_w)
    return times, out_u, out_w
