"""Which compute backends this machine can use, and why not when it cannot.

`available_backends()` probes every optional backend fhnkit knows about and
returns one entry per backend::

    {"usable": bool, "version": str | None, "detail": str}

Optional packages are imported lazily inside the probes, and every probe is
guarded: a missing package, a package installed without a GPU, or a library
that fails in some unexpected way is reported as unusable with the reason,
never raised. `format_backends()` turns the report into an aligned table.
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
import sys
from collections.abc import Callable

Entry = dict  # {"usable": bool, "version": str | None, "detail": str}

_DRIVER_LIBS = ("libcuda.so.1", "libcuda.so", "nvcuda.dll", "libcuda.dylib")


def _entry(usable: bool, version: str | None, detail: str) -> Entry:
    return {"usable": bool(usable), "version": None if version is None else str(version),
            "detail": str(detail)}


def _why(exc: BaseException) -> str:
    """One-line reason from an exception, e.g. 'ModuleNotFoundError: No module named cupy'."""
    text = " ".join(str(exc).split()) or "(no message)"
    return f"{type(exc).__name__}: {text}"[:300]


# --------------------------------------------------------------------------- CUDA driver


def cuda_driver() -> tuple[str | None, int, str]:
    """Probe the CUDA driver API directly: (driver version, device count, reason if none).

    Uses ctypes so that no Python GPU package is needed; a machine with the
    toolkit (nvcc) but no driver or no device gets a count of 0 and the reason.
    Like torch.cuda.is_available(), this initialises the driver in the calling
    process, so probe before forking workers that use CUDA, not after.
    """
    lib = None
    for name in _DRIVER_LIBS:
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError:
            continue
    if lib is None:
        return None, 0, "no CUDA driver library (libcuda.so.1 not found)"
    version = ctypes.c_int(0)
    count = ctypes.c_int(0)
    drv = None
    if lib.cuDriverGetVersion(ctypes.byref(version)) == 0 and version.value:
        drv = f"{version.value // 1000}.{(version.value % 1000) // 10}"
    rc = lib.cuInit(0)
    if rc != 0:
        return drv, 0, f"cuInit failed with CUresult {rc} (no usable GPU or driver mismatch)"
    rc = lib.cuDeviceGetCount(ctypes.byref(count))
    if rc != 0:
        return drv, 0, f"cuDeviceGetCount failed with CUresult {rc}"
    return drv, count.value, "" if count.value else "CUDA driver reports 0 devices"


def _nvcc() -> tuple[str | None, str | None]:
    """(path of nvcc on PATH, its release version) or (None, None)."""
    path = shutil.which("nvcc")
    if path is None:
        return None, None
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout
    except Exception:  # an nvcc that cannot run still tells us a toolkit is meant to be there
        return path, None
    match = re.search(r"release\s+([\d.]+)", out)
    return path, match.group(1) if match else None


# --------------------------------------------------------------------------- probes


def _probe_numba() -> Entry:
    import numba

    from .. import WIDE_VECTORS

    vectors = "; 512-bit vectors (AVX-512)" if WIDE_VECTORS else ""
    return _entry(True, numba.__version__, f"{numba.config.NUMBA_NUM_THREADS} threads{vectors}")


def _probe_cuda() -> Entry:
    """Usable means a CUDA driver and device; fhnkit's kernels are compiled by CuPy with NVRTC, so the
    toolkit's nvcc is reported (CI compiles the kernel with it) but not needed."""
    nvcc_path, nvcc_version = _nvcc()
    driver, count, reason = cuda_driver()
    toolkit = f"nvcc {nvcc_version or '?'} at {nvcc_path}" if nvcc_path else "no nvcc (not needed: CuPy uses NVRTC)"
    devices = f"{count} device(s)" if count else reason
    parts = [f"driver {driver}" if driver else "", devices, toolkit]
    return _entry(count > 0, driver, "; ".join(p for p in parts if p))


def _probe_stack() -> Entry:
    """Whether torch, CuPy, ONNX Runtime GPU and torch-tensorrt were built for one CUDA major."""
    from .gpu_stack import stack_report

    consistent, cuda, detail = stack_report()
    return _entry(consistent, cuda, detail)


def _probe_cupy() -> Entry:
    import cupy

    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # cupy installed on a machine without a GPU/driver
        return _entry(False, cupy.__version__, f"installed but no GPU: {_why(exc)}")
    if count == 0:
        return _entry(False, cupy.__version__, "installed but 0 CUDA devices")
    name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
    name = name.decode() if isinstance(name, bytes) else name
    return _entry(True, cupy.__version__, f"{count} device(s), device 0: {name}")


def _needs_gpu(version: str, what: str) -> Entry:
    """Entry for a package that imports fine but is only usable with a CUDA device."""
    _, count, reason = cuda_driver()
    if count == 0:
        return _entry(False, version, f"{what} installed but no GPU: {reason}")
    return _entry(True, version, f"{count} CUDA device(s)")


def _probe_tensorrt() -> Entry:
    import tensorrt

    return _needs_gpu(tensorrt.__version__, "tensorrt")


def _probe_torch_tensorrt() -> Entry:
    import torch_tensorrt

    return _needs_gpu(torch_tensorrt.__version__, "torch_tensorrt")


def _probe_onnxruntime() -> Entry:
    import onnxruntime

    providers = list(onnxruntime.get_available_providers())
    return _entry(bool(providers), onnxruntime.__version__,
                  "providers: " + (", ".join(providers) if providers else "none"))


def _probe_torch() -> Entry:
    import torch

    cuda = torch.cuda.is_available()
    count = torch.cuda.device_count() if cuda else 0
    build = f"CUDA build {torch.version.cuda}" if torch.version.cuda else "CPU-only build"
    return _entry(True, torch.__version__,
                  f"cuda available: {cuda}; device count: {count}; {build}; "
                  f"{torch.get_num_threads()} CPU threads")


_MPI_SCRIPT = (
    "import mpi4py; mpi4py.rc.initialize = False; mpi4py.rc.finalize = False\n"
    "from mpi4py import MPI\n"
    "print(' '.join(MPI.Get_library_version().split()))"
)


def _probe_mpi4py() -> Entry:
    import mpi4py

    # Importing mpi4py.MPI runs MPI_Init (and can abort the process when the
    # MPI library is broken), so the library is queried in a child process
    # without initialising MPI; this process is left untouched.
    try:
        proc = subprocess.run([sys.executable, "-c", _MPI_SCRIPT], capture_output=True,
                              text=True, timeout=60)
    except Exception as exc:
        return _entry(False, mpi4py.__version__, f"could not probe MPI: {_why(exc)}")
    if proc.returncode != 0:
        tail = " ".join((proc.stderr or proc.stdout).split())[-200:]
        return _entry(False, mpi4py.__version__, f"MPI library unusable: {tail}")
    return _entry(True, mpi4py.__version__, proc.stdout.strip()[:200])


PROBES: dict[str, Callable[[], Entry]] = {
    "numba": _probe_numba,
    "cuda": _probe_cuda,
    "cupy": _probe_cupy,
    "gpu_stack": _probe_stack,
    "tensorrt": _probe_tensorrt,
    "torch_tensorrt": _probe_torch_tensorrt,
    "onnxruntime": _probe_onnxruntime,
    "torch": _probe_torch,
    "mpi4py": _probe_mpi4py,
}


def _run_probe(probe: Callable[[], Entry]) -> Entry:
    """Run one probe; any failure becomes an unusable entry carrying the reason."""
    try:
        return probe()
    except ImportError as exc:
        return _entry(False, None, f"not installed ({_why(exc)})")
    except Exception as exc:
        return _entry(False, None, f"probe failed: {_why(exc)}")


def available_backends() -> dict[str, Entry]:
    """Probe every known backend; never raises.

    Returns a dict backend name -> {"usable", "version", "detail"}, in the
    order numba, cuda, cupy, gpu_stack, tensorrt, torch_tensorrt, onnxruntime, torch, mpi4py.
    """
    return {name: _run_probe(probe) for name, probe in PROBES.items()}


def format_backends(report: dict[str, Entry]) -> str:
    """Aligned human-readable table of a report from `available_backends()`."""
    header = ("backend", "usable", "version", "detail")
    rows = [(name, "yes" if e.get("usable") else "no", e.get("version") or "-", e.get("detail", ""))
            for name, e in report.items()]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]

    def line(row):
        cells = "  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=False))
        return f"{cells}  {row[3]}".rstrip()

    rule = "  ".join("-" * w for w in widths) + "  " + "-" * len(header[3])
    return "\n".join([line(header), rule, *(line(r) for r in rows)])
