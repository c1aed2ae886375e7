"""How fast the Euler solvers run, against a hand-written C reference and the GPU's rooflines.

`fhnkit bench solver` and `benchmarks/solver_bench.py` call `bench_solvers`.
The C reference (`fhnkit/inference/fhn_euler_ref.c`) is compiled here with
gcc -O3 -march=native -fopenmp and timed side by side with the numba kernel
on the same inputs, same threads, interleaved repeats.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numba
import numpy as np

from ..cell.model import FHNParams
from ..solvers.cpu import euler
from . import roofline
from .timing import time_interleaved

# -ffp-contract=off: the same IEEE operations as the numba kernel (no a*b+c fused), so that
# the two agree bit for bit and the comparison is of speed alone
C_FLAGS = ("-O3", "-march=native", "-fopenmp", "-ffp-contract=off", "-shared", "-fPIC")


def default_c_source() -> Path | None:
    """The C reference `fhn_euler_ref.c`, package data beside this module (None if an install lacks it)."""
    path = Path(__file__).resolve().with_name("fhn_euler_ref.c")
    return path if path.is_file() else None


def build_c_reference(source: Path, build_dir: Path | None = None) -> ctypes.CDLL:
    """Compile the C reference into a shared library (cached by source hash) and load it."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise RuntimeError("gcc not found: the C reference cannot be built")
    text = Path(source).read_bytes()
    tag = hashlib.sha256(text + " ".join(C_FLAGS).encode()).hexdigest()[:12]
    build_dir = Path(build_dir or Path(tempfile.gettempdir()) / "fhnkit-cref")
    build_dir.mkdir(parents=True, exist_ok=True)
    lib = build_dir / f"fhn_euler_ref_{tag}.so"
    if not lib.exists():
        tmp = lib.with_suffix(f".{os.getpid()}.tmp")
        subprocess.run([gcc, *C_FLAGS, "-o", str(tmp), str(source)], check=True, capture_output=True)
        tmp.replace(lib)
    return ctypes.CDLL(str(lib))


def c_solver(lib: ctypes.CDLL, dtype):
    """A callable with `euler`'s core arguments that runs the C reference into preallocated outputs."""
    dtype = np.dtype(dtype)
    ctype = ctypes.c_float if dtype == np.float32 else ctypes.c_double
    fn = getattr(lib, "fhn_euler_ref_f32" if dtype == np.float32 else "fhn_euler_ref_f64")
    ptr = np.ctypeslib.ndpointer(dtype=dtype, flags="C_CONTIGUOUS")
    fn.argtypes = [ctypes.c_long, ptr, ptr, ptr] + [ctype] * 6 + [ctypes.c_int] * 3 + [ptr, ptr]
    fn.restype = None

    def run(u0, w0, i_app, p: FHNParams, dt, n_steps, save_every, store_initial, out_u, out_w):
        fn(u0.size, u0, w0, i_app, p.k, p.a, p.epsilon, p.beta, p.gamma, dt, n_steps, save_every,
           int(store_initial), out_u, out_w)
    return run


def preallocated_euler(u0, w0, i_app, params: FHNParams, dt: float, n_steps: int, save_every: int, dtype):
    """A zero-argument call of the numba kernel writing into outputs allocated and touched once, so that
    a timing measures the kernel, not page faults (the thesis timed its solver the same way)."""
    n_stored = n_steps // save_every
    out = (np.zeros((n_stored, u0.size), dtype), np.zeros((n_stored, u0.size), dtype))
    return lambda: euler(u0, w0, i_app, params, dt, n_steps, save_every, dtype, False, out), out


def _inputs(n_cells: int, dtype, seed: int = 0):
    rng = np.random.default_rng(seed)
    return (rng.random(n_cells).astype(dtype), (0.18 * rng.random(n_cells)).astype(dtype),
            np.full(n_cells, 0.1, dtype))


def bench_cpu(n_cells: int, n_steps: int, save_every: int, precision: str, threads: int, repeats: int,
              warmup: int, c_source: Path | None) -> list[dict]:
    """numba kernel (and the C reference if given) on the same inputs; one record per solver."""
    dtype = np.dtype(precision)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    os.environ["OMP_NUM_THREADS"] = str(threads)  # read by libgomp when the C library first runs
    p, dt = FHNParams(), 0.1
    u0, w0, cur = _inputs(n_cells, dtype)
    # both sides write into outputs allocated (and touched) once: kernels are timed, not page faults
    run_numba, out = preallocated_euler(u0, w0, cur, p, dt, n_steps, save_every, dtype)
    contestants = {"numba": run_numba}
    if c_source is not None:
        run_c = c_solver(build_c_reference(c_source), dtype)
        out_c = (np.zeros_like(out[0]), np.zeros_like(out[1]))
        contestants["c_reference"] = lambda: run_c(u0, w0, cur, p, dt, n_steps, save_every, False, *out_c)
        contestants["numba"]()
        _check_same(out[0], contestants["c_reference"], out_c[0])
    timings = time_interleaved(contestants, repeats, warmup)
    return [_record(name, "cpu", precision, n_cells, n_steps, save_every, t, threads) for name, t in timings.items()]


def _check_same(numba_u, run_c, out_u) -> None:
    """The C reference must compute exactly what the numba kernel computes before its speed counts."""
    run_c()
    if not np.array_equal(numba_u, out_u):
        worst = float(np.max(np.abs(numba_u.astype(float) - out_u)))
        raise RuntimeError(f"C reference and numba kernel differ (by up to {worst:.3g}): not the same arithmetic")


def _record(name, device, precision, n_cells, n_steps, save_every, timing, threads=None) -> dict:
    median = timing["median"]
    return {"solver": name, "device": device, "precision": precision, "n_cells": n_cells, "n_steps": n_steps,
            "save_every": save_every, "threads": threads, "time_s": timing,
            "cell_steps_per_s": n_cells * n_steps / median}


def bench_cuda(n_cells: int, n_steps: int, save_every: int, precision: str, repeats: int, warmup: int) -> dict:
    """The CUDA kernel timed with CUDA events (kernel only: inputs and outputs already on the device)."""
    from ..solvers import cupy_module, euler_cuda

    cp = cupy_module()
    dtype = np.dtype(precision)
    u0, w0, cur = (cp.asarray(x) for x in _inputs(n_cells, dtype))
    p = FHNParams()

    def run():
        euler_cuda(u0, w0, cur, p, 0.1, n_steps, save_every, dtype, store_initial=False, to_host=False)

    timing = time_interleaved({"cuda": run}, repeats, warmup, {"cuda": "cuda_events"})["cuda"]
    record = _record("cuda", "gpu", precision, n_cells, n_steps, save_every, timing)
    peaks = roofline.gpu_peaks(cp)
    record["gpu"] = peaks
    record["roofline"] = roofline.fractions(record["time_s"]["median"], n_cells, n_steps, n_steps // save_every,
                                            dtype.itemsize, peaks, precision)
    return record


def bench_solvers(n_cells: int = 4_000_000, n_steps: int = 100, save_every: int = 10,
                  precisions=("float32", "float64"), threads: int = 2, repeats: int = 7, warmup: int = 2,
                  c_source: Path | None = None, gpu_cells=(16_000_000, 32_000_000, 64_000_000)) -> dict:
    """Every available solver at every precision; CPU records carry their ratio to the C reference."""
    from ..solvers.cuda import cuda_available

    records = []
    for precision in precisions:
        cpu = bench_cpu(n_cells, n_steps, save_every, precision, threads, repeats, warmup, c_source)
        ref = {r["solver"]: r for r in cpu}.get("c_reference")
        for r in cpu:
            if ref is not None:
                r["ratio_to_c"] = r["cell_steps_per_s"] / ref["cell_steps_per_s"]
        records += cpu
    usable, why = cuda_available(exact=False)  # the fast kernel, which bench_cuda times
    if usable:
        records += [bench_cuda(n, n_steps, save_every, precision, repeats, warmup)
                    for precision in precisions for n in gpu_cells]
    return {"records": records, "cuda": {"usable": usable, "detail": why}}


def format_records(result: dict) -> str:
    """A human table of `bench_solvers` output."""
    lines = [f"{'solver':12s} {'device':6s} {'precision':9s} {'cells':>11s} {'median s':>10s} "
             f"{'cell-steps/s':>13s} {'vs C':>6s} {'BW roof':>8s} {'FLOP roof':>9s}"]
    def pct(value):
        return f"{value:.1%}" if value is not None else "-"

    for r in result["records"]:
        roof = r.get("roofline", {})
        ratio = f"{r['ratio_to_c']:.2f}" if "ratio_to_c" in r else "-"
        lines.append(f"{r['solver']:12s} {r['device']:6s} {r['precision']:9s} {r['n_cells']:>11,d} "
                     f"{r['time_s']['median']:>10.4g} {r['cell_steps_per_s']:>13.3e} {ratio:>6s} "
                     f"{pct(roof.get('bandwidth_fraction')):>8s} {pct(roof.get('compute_fraction')):>9s}")
    if not result["cuda"]["usable"]:
        lines.append(f"CUDA: not measured ({result['cuda']['detail']})")
    return "\n".join(lines)
