"""How fast the Euler solvers run, against hand-written C references and the rooflines.

`fhnkit bench solver` and `benchmarks/solver_bench.py` call `bench_solvers`.
On the CPU four solvers run side by side on the same inputs, same threads,
interleaved repeats: the numba kernels, exact (data generation: no FMA) and fast
(the benchmark's: `fhnkit.solvers.fast_euler`, 6 FMA + 1 ADD per step), and the C
reference (`fhnkit/inference/fhn_euler_ref.c`, gcc -O3 -march=native -fopenmp)
built twice: without FMA contraction (bit for bit the exact numba kernel) and
with it (the plain C Euler a user would write). On a GPU the fast CUDA kernel.
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
from ..solvers.fast import fast_euler
from . import roofline
from .gpu_peaks import gpu_peaks
from .timing import time_interleaved

# -ffp-contract=off: the same IEEE operations as the numba kernel (no a*b+c fused), so that
# the two agree bit for bit and the comparison is of speed alone
C_FLAGS = ("-O3", "-march=native", "-fopenmp", "-ffp-contract=off", "-shared", "-fPIC")
# the same source with every a*b+c the compiler finds fused: what a user's plain C Euler compiles to
C_FMA_FLAGS = tuple("-ffp-contract=fast" if f == "-ffp-contract=off" else f for f in C_FLAGS)
CPU_KERNELS = ("exact", "fast")  # the numba kernels, by the roofline's kernel names


def default_c_source() -> Path | None:
    """The C reference `fhn_euler_ref.c`, package data beside this module (None if an install lacks it)."""
    path = Path(__file__).resolve().with_name("fhn_euler_ref.c")
    return path if path.is_file() else None


def build_c_reference(source: Path, build_dir: Path | None = None, flags: tuple = C_FLAGS) -> ctypes.CDLL:
    """Compile the C reference with gcc `flags` into a shared library (cached by source and flags) and load it."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise RuntimeError("gcc not found: the C reference cannot be built")
    text = Path(source).read_bytes()
    tag = hashlib.sha256(text + " ".join(flags).encode()).hexdigest()[:12]
    build_dir = Path(build_dir or Path(tempfile.gettempdir()) / "fhnkit-cref")
    build_dir.mkdir(parents=True, exist_ok=True)
    lib = build_dir / f"fhn_euler_ref_{tag}.so"
    if not lib.exists():
        tmp = lib.with_suffix(f".{os.getpid()}.tmp")
        subprocess.run([gcc, *flags, "-o", str(tmp), str(source)], check=True, capture_output=True)
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


def preallocated_euler(u0, w0, i_app, params: FHNParams, dt: float, n_steps: int, save_every: int, dtype,
                       kernel: str = "exact"):
    """A zero-argument call of numba kernel `kernel` ("exact": `euler`, "fast": `fast_euler`) writing into
    outputs allocated and touched once, so that a timing measures the kernel, not page faults (the thesis
    timed its solver the same way)."""
    if kernel not in CPU_KERNELS:
        raise ValueError(f"unknown CPU kernel {kernel!r}; known: {CPU_KERNELS}")
    solve = fast_euler if kernel == "fast" else euler
    n_stored = n_steps // save_every
    out = (np.zeros((n_stored, u0.size), dtype), np.zeros((n_stored, u0.size), dtype))
    return lambda: solve(u0, w0, i_app, params, dt, n_steps, save_every, dtype, False, out), out


def _inputs(n_cells: int, dtype, seed: int = 0):
    rng = np.random.default_rng(seed)
    return (rng.random(n_cells).astype(dtype), (0.18 * rng.random(n_cells)).astype(dtype),
            np.full(n_cells, 0.1, dtype))


def _c_contestants(c_source: Path, inputs, p: FHNParams, dt, n_steps, save_every, out_like) -> dict:
    """The C reference built without ("c_reference", exact) and with FMA contraction ("c_fma"):
    name -> (kernel, call, outputs)."""
    dtype = out_like.dtype
    runs = {}
    for name, kernel, flags in (("c_reference", "exact", C_FLAGS), ("c_fma", "contracted", C_FMA_FLAGS)):
        run_c = c_solver(build_c_reference(c_source, flags=flags), dtype)
        out = (np.zeros_like(out_like), np.zeros_like(out_like))
        runs[name] = (kernel, lambda run_c=run_c, out=out: run_c(*inputs, p, dt, n_steps, save_every, False, *out),
                      out)
    return runs


def bench_cpu(n_cells: int, n_steps: int, save_every: int, precision: str, threads: int, repeats: int,
              warmup: int, c_source: Path | None) -> list[dict]:
    """The numba kernels, exact and fast (and the C reference without and with FMA if given), on the same
    inputs; one record per solver, with its kernel and, where its work is known, its roofline."""
    dtype = np.dtype(precision)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    os.environ["OMP_NUM_THREADS"] = str(threads)  # read by libgomp when the C library first runs
    p, dt = FHNParams(), 0.1
    inputs = _inputs(n_cells, dtype)
    # every solver writes into outputs allocated (and touched) once: kernels are timed, not page faults
    runs = {}
    for name, kernel in (("numba", "exact"), ("numba_fast", "fast")):
        call, out = preallocated_euler(*inputs, p, dt, n_steps, save_every, dtype, kernel)
        runs[name] = (kernel, call, out)
    if c_source is not None:
        runs |= _c_contestants(c_source, inputs, p, dt, n_steps, save_every, runs["numba"][2][0])
    check_agreement(runs, n_steps, dtype)
    timings = time_interleaved({name: call for name, (_, call, _) in runs.items()}, repeats, warmup)
    peaks = roofline.cpu_peaks(threads)
    records = []
    for name, t in timings.items():
        record = _record(name, "cpu", precision, n_cells, n_steps, save_every, t, threads, runs[name][0])
        records.append(_with_roofline(record, peaks))
    return records


def check_agreement(runs: dict, n_steps: int, dtype) -> None:
    """Run every solver of `runs` (name -> (kernel, call, (U, W))) once and check it against the exact numba
    kernel ("numba") before its speed counts: bit for bit where it does the same operations (kernel "exact"),
    else within a tolerance that grows with the steps taken (the fused roundings differ in the last bit of
    every step; near the excitation threshold a few cells amplify it)."""
    for _, call, _ in runs.values():
        call()
    want = runs["numba"][2]
    eps = float(np.finfo(dtype).eps)
    for name, (kernel, _, got) in runs.items():
        diff = np.concatenate([np.abs(g.astype(float) - w).ravel() for g, w in zip(got, want, strict=True)])
        worst = float(diff.max()) if diff.size else 0.0
        if kernel == "exact":
            if not all(np.array_equal(g, w) for g, w in zip(got, want, strict=True)):
                raise RuntimeError(f"{name} and the exact numba kernel differ (by up to {worst:.3g}): "
                                   "not the same arithmetic")
        elif not (diff.size == 0 or (diff.mean() <= 10 * n_steps * eps and worst <= 1e3 * n_steps * eps)):
            raise RuntimeError(f"{name} is off the exact numba kernel by {diff.mean():.3g} on average, "
                               f"{worst:.3g} at most: not the same Euler step")


def _record(name, device, precision, n_cells, n_steps, save_every, timing, threads=None, kernel=None) -> dict:
    median = timing["median"]
    return {"solver": name, "kernel": kernel, "device": device, "precision": precision, "n_cells": n_cells,
            "n_steps": n_steps, "save_every": save_every, "threads": threads, "time_s": timing,
            "cell_steps_per_s": n_cells * n_steps / median}


def _with_roofline(record: dict, peaks: dict) -> dict:
    """`record` with its roofline where its kernel's work per step is known (not that of a compiler's
    contraction of the plain formula, which the compiler chooses)."""
    if record["kernel"] not in roofline.KERNELS:
        return record
    return record | {"roofline": roofline.fractions(
        record["time_s"]["median"], record["n_cells"], record["n_steps"], record["n_steps"] // record["save_every"],
        np.dtype(record["precision"]).itemsize, peaks, record["precision"], record["kernel"])}


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
    record = _record("cuda", "gpu", precision, n_cells, n_steps, save_every, timing, kernel="fast")
    peaks = gpu_peaks(cp)
    record["gpu"] = peaks
    return _with_roofline(record, peaks)


def bench_solvers(n_cells: int = 4_000_000, n_steps: int = 100, save_every: int = 10,
                  precisions=("float32", "float64"), threads: int = 2, repeats: int = 7, warmup: int = 2,
                  c_source: Path | None = None, gpu_cells=(16_000_000, 32_000_000, 64_000_000)) -> dict:
    """Every available solver at every precision; CPU records carry their speed relative to the plain C Euler
    with FMA contraction ("ratio_to_c": cell-steps/s over c_fma's, the speed a user could write)."""
    from ..solvers.cuda import cuda_available

    records = []
    for precision in precisions:
        cpu = bench_cpu(n_cells, n_steps, save_every, precision, threads, repeats, warmup, c_source)
        ref = {r["solver"]: r for r in cpu}.get("c_fma")
        for r in cpu:
            if ref is not None:
                r["ratio_to_c"] = r["cell_steps_per_s"] / ref["cell_steps_per_s"]
        records += cpu
    usable, why = cuda_available(exact=False)  # the fast kernel, which bench_cuda times
    if usable:
        records += [bench_cuda(n, n_steps, save_every, precision, repeats, warmup)
                    for precision in precisions for n in gpu_cells]
    return {"records": records, "cuda": {"usable": usable, "detail": why}}


def size_summary(record: dict) -> str:
    """One record in words: cells, time, rate, fraction of the bandwidth, the bound and its fraction."""
    def pct(fraction):
        return "-" if fraction is None else f"{fraction:.0%}"

    roof, cells = record.get("roofline", {}), record["n_cells"]
    size = f"{cells // 1_000_000}M" if cells >= 1_000_000 else str(cells)
    bound = f"{roof['bound']}-bound at {pct(roof['bound_fraction'])}" if roof.get("bound") else "bound unknown"
    return (f"{size}: {record['time_s']['median'] * 1e3:.2f} ms, {record['cell_steps_per_s']:.3g} cell-steps/s, "
            f"{pct(roof.get('bandwidth_fraction'))} of bandwidth, {bound}")


def format_records(result: dict) -> str:
    """A human table of `bench_solvers` output, each bounded kernel's "why" below it."""
    lines = [f"{'solver':11s} {'kernel':10s} {'device':6s} {'precision':9s} {'cells':>11s} {'median s':>10s} "
             f"{'cell-steps/s':>13s} {'vs C FMA':>8s} {'BW roof':>7s} {'FLOP roof':>9s} {'bound':>15s}"]

    def pct(value):
        return f"{value:.1%}" if value is not None else "-"

    whys = []
    for r in result["records"]:
        roof = r.get("roofline", {})
        ratio = f"{r['ratio_to_c']:.2f}" if "ratio_to_c" in r else "-"
        bound = f"{roof['bound']} {pct(roof['bound_fraction'])}" if roof.get("bound") else "-"
        lines.append(f"{r['solver']:11s} {r.get('kernel') or '-':10s} {r['device']:6s} {r['precision']:9s} "
                     f"{r['n_cells']:>11,d} {r['time_s']['median']:>10.4g} {r['cell_steps_per_s']:>13.3e} "
                     f"{ratio:>8s} {pct(roof.get('bandwidth_fraction')):>7s} {pct(roof.get('compute_fraction')):>9s} "
                     f"{bound:>15s}")
        if roof.get("why"):
            whys.append(f"  {r['solver']} {r['precision']} {r['n_cells']:,d}: {roof['why']}")
    lines += whys
    if not result["cuda"]["usable"]:
        lines.append(f"CUDA: not measured ({result['cuda']['detail']})")
    return "\n".join(lines)
