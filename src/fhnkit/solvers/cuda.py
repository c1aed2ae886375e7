"""The CUDA Euler kernels (`fhnkit/solvers/fhn_euler.cu`), compiled at run time through CuPy's NVRTC.

Used when a GPU is present (`backend: auto`) or asked for (`backend: cuda`), and by the benchmarks.
CuPy is imported lazily: on a machine without it, `cuda_available()` says so and `euler_cuda` raises
`CudaUnavailable` with the reason. `cuda_available(exact)` also compiles and loads the kernel module
(once per process and device), so a CuPy that imports but cannot build or load the kernel (NVRTC
missing, another CUDA major, a driver too old) is reported as unusable instead of failing at launch.

Two kernels per precision (see the .cu): the exact one (`exact=True`, data generation) equals the numba
CPU kernel bit for bit; the fast one (`exact=False`, the benchmark) is the same Euler step with the
constants folded and the cubic in Horner form (7 floating-point instructions per step instead of 13).
"""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np

from ..cell.model import FHNParams

KERNELS = {np.dtype(np.float32): "fhn_euler_f32", np.dtype(np.float64): "fhn_euler_f64"}
FAST_KERNELS = {np.dtype(np.float32): "fhn_euler_fast_f32", np.dtype(np.float64): "fhn_euler_fast_f64"}
THREADS_PER_BLOCK = 256
_REASON_CHARS = 600  # an NVRTC log can be long: the start of it names the problem


class CudaUnavailable(RuntimeError):
    """No usable CUDA device or kernel through CuPy; the message says why."""


class KernelUnavailable(CudaUnavailable):
    """CuPy sees a CUDA device but cannot compile or load `fhn_euler.cu` on it; the message says why."""


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


def compile_options(exact: bool) -> tuple[str, ...]:
    """NVRTC (and nvcc) options of the kernel module.

    `exact`: no FMA contraction (--fmad=false) and IEEE float32 subnormals (-ftz=false), so that the exact
    kernels do the numba kernel's IEEE operations and equal it bit for bit, subnormals included. Otherwise
    contraction is allowed and float32 subnormals are flushed to zero (-ftz=true, what CuPy's RawModule
    forces anyway): the fast kernels' results differ from the CPU in the last bits of each step.
    """
    if exact:
        return ("-std=c++17", "--fmad=false", "-ftz=false")
    return ("-std=c++17", "-ftz=true")


def kernel_name(dtype, exact: bool) -> str:
    """Name of the kernel in `fhn_euler.cu` for `dtype` (float32 or float64), exact or fast."""
    dtype = np.dtype(dtype)
    if dtype not in KERNELS:
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    return (KERNELS if exact else FAST_KERNELS)[dtype]


def compile_module(exact: bool):
    """`fhn_euler.cu` compiled with exactly `compile_options(exact)` and loaded on the current device.

    Not `cupy.RawModule`: CuPy appends '-ftz=true' after the caller's options (cupy/cuda/compiler.py,
    `_compile_with_cache_cuda`) and NVRTC keeps the last of two conflicting options (it only warns
    '"--ftz(-ftz)=false" followed by "--ftz(-ftz)=true"'), so through RawModule the exact kernel would
    flush float32 subnormals. `compile_using_nvrtc` adds only the target architecture.
    """
    from cupy.cuda import compiler, function

    binary = compiler.compile_using_nvrtc(kernel_source(), compile_options(exact))
    if isinstance(binary, tuple):  # CuPy >= 13: (cubin or PTX, name mapping)
        binary = binary[0]
    module = function.Module()
    module.load(binary if isinstance(binary, bytes) else binary.encode())
    return module


@functools.cache
def _module_or_reason(exact: bool, device: int):
    """(module, "") or (None, why): compiled once per process, mode and device, failures included."""
    try:
        return compile_module(exact), ""
    except Exception as exc:  # NVRTC missing or failing, a driver that cannot load the code, ...
        detail = f"{type(exc).__name__}: {exc}".strip()
        if len(detail) > _REASON_CHARS:
            detail = detail[:_REASON_CHARS] + " ..."
        kind = "exact" if exact else "fast"
        return None, (f"the {kind} kernel fhn_euler.cu cannot be compiled or loaded on the CUDA device CuPy sees "
                      f"({detail})")


def kernel_module(exact: bool):
    """The loaded kernel module for the current device.

    Raises CudaUnavailable without CuPy or a device, and its subclass KernelUnavailable where the
    kernel cannot be compiled or loaded (tried once per process, mode and device); the message says why.
    """
    cp = cupy_module()
    module, why = _module_or_reason(bool(exact), cp.cuda.Device().id)
    if module is None:
        raise KernelUnavailable(why)
    return module


def cuda_available(exact: bool = True) -> tuple[bool, str]:
    """(usable, reason) for the CUDA backend: a device, and the exact (or fast) kernel built and loaded on it."""
    try:
        cp = cupy_module()
        kernel_module(exact)
    except CudaUnavailable as exc:
        return False, str(exc)
    kind = "exact" if exact else "fast"
    return True, f"{cp.cuda.runtime.getDeviceCount()} device(s), {kind} kernel compiled"


def launch_config(n_cells: int, sm_count: int) -> tuple[int, int]:
    """(blocks, threads): enough blocks to fill every SM many times, a grid-stride loop for the rest."""
    blocks = max(1, min(-(-n_cells // THREADS_PER_BLOCK), sm_count * 64))
    return blocks, THREADS_PER_BLOCK


def euler_cuda(u0, w0, i_app, params: FHNParams, dt: float, n_steps: int, save_every: int = 1,
               dtype=np.float64, store_initial: bool = True, to_host: bool = True, exact: bool = False):
    """Same contract as `fhnkit.solvers.cpu.euler`, computed on the GPU.

    Inputs may be numpy or CuPy arrays; with `to_host=False` U and W stay CuPy arrays on the device.
    `exact=True` runs the exact kernel (bit-identical to the CPU kernel, float32 subnormals included);
    the default runs the fast kernel (folded constants, Horner form, FMA, float32 subnormals flushed),
    which differs from the CPU in the last bits of each step. Steps after the last snapshot are not taken.
    """
    if int(n_steps) != n_steps or int(save_every) != save_every or n_steps < 0 or save_every < 1:
        raise ValueError(f"n_steps must be an integer >= 0 and save_every an integer >= 1, "
                         f"got n_steps={n_steps!r}, save_every={save_every!r}")
    cp = cupy_module()
    dtype = np.dtype(dtype)
    kernel = kernel_module(exact).get_function(kernel_name(dtype, exact))
    u0, w0, i_app = (cp.ascontiguousarray(cp.asarray(x, dtype=dtype).ravel())
                     for x in cp.broadcast_arrays(cp.asarray(u0), cp.asarray(w0), cp.asarray(i_app)))
    n = u0.size
    n_snap = int(n_steps) // int(save_every) + int(store_initial)
    out_u = cp.empty((n_snap, n), dtype)
    out_w = cp.empty((n_snap, n), dtype)
    sm_count = cp.cuda.Device().attributes["MultiProcessorCount"]
    c = dtype.type
    kernel(launch_config(n, sm_count)[:1], (THREADS_PER_BLOCK,),
           (u0, w0, i_app, np.int64(n), c(params.k), c(params.a), c(params.epsilon), c(params.beta),
            c(params.gamma), c(dt), np.int32(n_steps), np.int32(save_every), np.int32(store_initial), out_u, out_w))
    times = (np.arange(n_snap, dtype=np.float64) + (not store_initial)) * (save_every * dt)
    if to_host:
        return times, cp.asnumpy(out_u), cp.asnumpy(out_w)
    return times, out_u, out_w
