"""Inference of a trained network against the Euler solver on the same work (SPEC.md section 3).

The work: `n_sets` parameter sets, each needing the state at `n_points`
evenly spaced times up to `t_end`. The solver integrates with step `dt` and
stores exactly those points; the network is evaluated at the same points
(an iterator network instead steps from each initial state t_end / Δt times).
On a GPU both sides run there (the CUDA Euler kernel beside the network) and
are timed with CUDA events, for each of `gpu_n_sets` (16M/32M/64M by default);
on a CPU with the monotonic clock, for `n_sets`. The solver is the fast Euler
kernel on either device (folded constants, FMA: `FastEuler` of fhn_euler.cu, or
`fhnkit.solvers.fast_euler` in numba), the speed a user could write, not the exact
kernel data generation needs. Each side's throughput and fraction of its device's
rooflines (`fhnkit.inference.roofline`) come with its times; the solver's also
with the roof that bounds its kernel and why.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numba
import numpy as np
import torch
from tqdm.auto import tqdm

from ..artifacts import read_json, versions, write_json
from ..cell.model import FHNParams
from ..cell.problems import i_app, input_bounds, parameter_columns
from ..datasets.sampling import sample_box
from ..nets import load_model
from ..plan.config import derive_seed
from ..provenance import check_problem, finished_model
from ..solvers.cpu import steps_for
from . import roofline
from .device_memory import is_out_of_memory, release_device_memory
from .solver_bench import preallocated_euler
from .timing import clock_for, time_interleaved

log = logging.getLogger(__name__)
CHUNK_CANDIDATES = (1 << 14, 1 << 16, 1 << 18, 1 << 20, 1 << 22, 1 << 24)
MAX_CHUNK = 1 << 24  # rows per call: 16M rows x 128 units of float32 activations = 8 GiB


def reference_sets(settings: dict, n_sets: int, seed: int) -> dict[str, np.ndarray]:
    """Parameter sets of the reference work: U0, W0, I_app per set, plus K for problem C."""
    if settings["problem"] == "A":
        u0, w0 = settings["initial_state"]
        return {"U0": np.full(n_sets, u0), "W0": np.full(n_sets, w0), "I_app": np.full(n_sets, i_app(settings))}
    lo, hi = (b[1:] for b in input_bounds(settings))
    params = dict(zip(parameter_columns(settings), sample_box(n_sets, lo, hi, "uniform", seed).T, strict=True))
    params["I_app"] = np.broadcast_to(np.asarray(i_app(settings, params.get("K")), float), (n_sets,)).copy()
    return params


def network_inputs(settings: dict, sets: dict, times: np.ndarray, device: str = "cpu") -> torch.Tensor:
    """(n_sets * n_points, n_inputs) float32 network inputs, time first, built on `device`."""
    n = sets["U0"].size
    t = torch.as_tensor(np.asarray(times), dtype=torch.float32, device=device)
    cols = [t.repeat(n)] + [torch.as_tensor(sets[c], dtype=torch.float32, device=device).repeat_interleave(t.numel())
                            for c in parameter_columns(settings)]
    return torch.stack(cols, dim=1)


def _network_call(model, x: torch.Tensor, chunk: int):
    def run():
        with torch.inference_mode():
            for i in range(0, len(x), chunk):
                model(x[i:i + chunk])
    return run


def _iterator_call(model, x0: torch.Tensor, n_steps: int, chunk: int):
    """An ITNN's work: `n_steps` feedback evaluations from the states x0 (U0, W0[, K]) (eq. 3.18)."""
    def run():
        with torch.inference_mode():
            for i in range(0, len(x0), chunk):
                x = x0[i:i + chunk]
                for _ in range(n_steps):
                    x = torch.cat([model(x), x[:, 2:]], dim=1)
    return run


def chunk_candidates(n_rows: int, max_chunk: int = MAX_CHUNK) -> list[int]:
    """Evaluation chunks worth trying for `n_rows` rows: CHUNK_CANDIDATES below the work and
    `max_chunk` (a TensorRT engine's largest batch), and the whole work if it fits."""
    limit = min(n_rows, max_chunk)
    return [c for c in CHUNK_CANDIDATES if c < limit] + [limit]


def choose_chunk(model, x: torch.Tensor, repeats: int = 2, call=None, max_chunk: int = MAX_CHUNK,
                 clock: str = "perf_counter") -> tuple[int, dict]:
    """Fastest evaluation chunk among `chunk_candidates` (a chunk that runs out of device memory
    is left out); returns it and the search {chunk: median seconds}."""
    call = call or (lambda c: _network_call(model, x, c))
    runnable = {}
    for c in chunk_candidates(len(x), max_chunk):
        run = call(c)
        try:
            run()
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            release_device_memory(x.device.type)
            log.info("chunk %d runs out of device memory (%s): left out of the search", c, type(exc).__name__)
            continue
        runnable[str(c)] = run
    if not runnable:
        raise RuntimeError(f"no evaluation chunk of {chunk_candidates(len(x), max_chunk)} fits in device memory")
    timings = time_interleaved(runnable, repeats, 0, dict.fromkeys(runnable, clock))
    medians = {int(c): t["median"] for c, t in timings.items()}
    return min(medians, key=medians.get), medians


def _synchronised(call, device: str):
    """A GPU call returns when its kernels are queued: wait for them, on every stream, inside the timed
    region (CUDA events on torch's stream alone would miss work a backend such as ONNX Runtime queues on
    its own stream)."""
    if device != "cuda":
        return call

    def run():
        call()
        torch.cuda.synchronize()
    return run


def solver_call(sets: dict, fhn, bench: dict, device: str):
    """The Euler solver's part of the work as a zero-argument call, and a description of it.

    Beside a network on a GPU the solver is the fast CUDA kernel (inputs and outputs on the device, only the
    n_points snapshots stored); on a CPU, or where CuPy cannot run the kernel, the fast numba kernel.
    The description's "kernel" names the one that runs (the roofline's `KERNELS`).
    """
    n_steps = steps_for(bench["t_end"], bench["dt"])
    every = n_steps // bench["n_points"]
    dtype = np.dtype(bench["precision"])
    info = {"dt": bench["dt"], "t_end": bench["t_end"], "precision": bench["precision"], "n_steps": n_steps,
            "store_every": every, "outputs": "preallocated", "kernel": "fast"}
    if device == "cuda":
        from ..solvers.cuda import cuda_available, euler_cuda

        usable, why = cuda_available(exact=False)  # the fast kernel, which `run` launches
        if usable:
            import cupy as cp

            u0, w0, cur = (cp.asarray(sets[k].astype(dtype)) for k in ("U0", "W0", "I_app"))

            def run():
                euler_cuda(u0, w0, cur, fhn, bench["dt"], n_steps, every, dtype, store_initial=False, to_host=False)
            return run, info | {"backend": "cuda", "device": "cuda", "outputs": "device, cupy memory pool"}
        log.warning("the network runs on the GPU but the CUDA solver cannot (%s): the solver runs on the CPU", why)
        info["why_not_cuda"] = why
    u0, w0, cur = (sets[k].astype(dtype) for k in ("U0", "W0", "I_app"))
    run, _ = preallocated_euler(u0, w0, cur, fhn, bench["dt"], n_steps, every, dtype, info["kernel"])
    return run, info | {"backend": "numba", "device": "cpu", "threads": bench["threads"]}


def device_peaks(device: str, threads: int) -> dict:
    """Roofline peaks of `device`. On a GPU from CuPy (where usable), NVML and torch: a peak none of them
    offers is None with its reason under "missing" (logged), so that a benchmark never fails for it."""
    if device != "cuda":
        return roofline.cpu_peaks(threads)
    from ..solvers import CudaUnavailable, cupy_module
    from .gpu_peaks import gpu_peaks

    try:
        cupy = cupy_module()
    except CudaUnavailable as exc:
        cupy = None
        log.info("GPU peaks without CuPy (%s): from NVML and torch", exc)
    peaks = gpu_peaks(cupy, torch)
    if peaks["missing"]:
        log.warning("GPU peaks not all known: %s", peaks["missing"])
    return peaks


def _throughput(seconds: float, n_outputs: int, bytes_moved: float, flops: float, peaks, precision: str) -> dict:
    out = {"outputs_per_s": n_outputs / seconds}
    if peaks is not None:
        out |= roofline.fractions_of(seconds, bytes_moved, flops, peaks, precision)
    return out


def _work_of(model, settings: dict, sets: dict, times: np.ndarray, bench: dict, device: str):
    """The network's inputs on `device`, its work callable factory, evaluations per set and (bytes, FLOP)."""
    n_sets = sets["U0"].size
    if model.is_iterator:  # an iterator network steps from the initial states: t_end / Δt outputs
        cols = ["U0", "W0"] + (["K"] if "K" in model.inputs else [])
        x = torch.stack([torch.as_tensor(sets[c], dtype=torch.float32, device=device) for c in cols], dim=1)
        n_net = int(round(bench["t_end"] / model.iterator_dt))
        return x, (lambda net, c: _iterator_call(net, x, n_net, c)), n_net, \
            roofline.network_work(model.spec, n_sets, n_sets * n_net, n_sets * n_net)
    x = network_inputs(settings, sets, times, device)
    return x, (lambda net, c: _network_call(net, x, c)), len(times), \
        roofline.network_work(model.spec, len(x), len(x), len(x))


def benchmark_size(model, builds, settings: dict, fhn, bench: dict, n_sets: int, seed: int,
                   max_chunk: int = MAX_CHUNK) -> dict:
    """Every build of `model` and the solver on `n_sets` reference parameter sets, interleaved in one
    process, each by its device's clock; times (s) with throughput and roofline fractions."""
    device = builds[0].device
    n_steps = steps_for(bench["t_end"], bench["dt"])
    times = np.arange(1, bench["n_points"] + 1) * (n_steps // bench["n_points"]) * bench["dt"]
    sets = reference_sets(settings, n_sets, seed)
    solver, solver_info = solver_call(sets, fhn, bench, device)
    x, work, n_net, (net_bytes, net_flops) = _work_of(model, settings, sets, times, bench, device)
    contestants, clocks, searches = {"solver": solver}, {"solver": clock_for(solver_info["device"])}, {}
    for b in builds:
        def make_call(c, b=b):
            return _synchronised(work(b, c), b.device)
        cap = max_chunk if b.backend == "tensorrt" else MAX_CHUNK
        chunk, search = choose_chunk(b, x, call=make_call, max_chunk=cap, clock=clock_for(b.device))
        contestants[b.name], clocks[b.name] = make_call(chunk), clock_for(b.device)
        searches[b.name] = {"chunk": chunk, "chunk_search_s": search}
    timings = time_interleaved(contestants, bench["repeats"], bench["warmup"], clocks)
    peaks = device_peaks(device, bench["threads"])
    solver_peaks = peaks if solver_info["device"] == device else device_peaks(solver_info["device"], bench["threads"])
    solver_t = timings["solver"]["median"]
    n_outputs = n_sets * bench["n_points"]
    solver_info["outputs_per_s"] = n_outputs / solver_t
    if solver_peaks is not None:
        solver_info |= roofline.fractions(solver_t, n_sets, n_steps, bench["n_points"],
                                          np.dtype(bench["precision"]).itemsize, solver_peaks, bench["precision"],
                                          solver_info["kernel"])
    solver_info["cell_steps_per_s"] = n_sets * n_steps / solver_t
    out_builds = {}
    for b in builds:
        t = timings[b.name]
        precision = "float16" if b.precision == "fp16" and device == "cuda" else "float32"
        out_builds[b.name] = {**searches[b.name], "time_s": t, "device": b.device, "backend": b.backend,
                              "precision": b.precision, "speedup": solver_t / t["median"],
                              **_throughput(t["median"], n_sets * n_net, net_bytes, net_flops, peaks, precision)}
    return {"n_sets": n_sets, "network_points": n_net, "solver_time_s": timings["solver"], "solver": solver_info,
            "builds": out_builds, "peaks": peaks}


def benchmark_sizes(bench: dict, device: str) -> list[int]:
    """Parameter-set counts of the reference work: `gpu_n_sets` on a GPU, `n_sets` on a CPU."""
    return list(bench.get("gpu_n_sets") or [bench["n_sets"]]) if device == "cuda" else [bench["n_sets"]]


def benchmark_model(model, settings: dict, fhn, bench: dict, root_seed: int, study: str, builds=None,
                    max_chunk: int = MAX_CHUNK) -> dict:
    """Time `model` (each of its compiled `builds`; eager torch when none) and the Euler solver on the
    same reference work, for each set count of `benchmark_sizes`; returns a JSON-able record.

    Times are seconds for the whole work (all sets x points), median over repeats, with quartiles.
    The record's top-level fields are those of the first set count and of the primary build (the
    first non-eager fp32 build, eager's when there is none); "sizes" holds every set count's
    timings, throughputs (outputs per second) and roofline fractions of every build and the solver.
    """
    from .compiled import CompiledModel

    threads = bench["threads"]
    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    model = model.eval()
    builds = builds or [CompiledModel("eager", "fp32", "cpu", model, network=model)]
    primary = next((b for b in builds if b.backend != "eager" and b.precision == "fp32"), builds[0])
    seed = derive_seed(root_seed, study, "benchmark")
    sizes = []
    for n in benchmark_sizes(bench, primary.device):
        sizes.append(benchmark_size(model, builds, settings, fhn, bench, n, seed, max_chunk))
        release_device_memory(primary.device, builds)  # the next size starts from an empty device
    first = sizes[0]
    net = first["builds"][primary.name]
    eager = first["builds"].get("eager-fp32", net)
    return {"n_sets": first["n_sets"], "n_points": bench["n_points"], "network_points": first["network_points"],
            "threads": threads, "device": primary.device, "backend": primary.backend,
            "precision": primary.precision, "chunk": net["chunk"],
            "inference_time_s": net["time_s"], "eager_time_s": eager["time_s"],
            "solver_time_s": first["solver_time_s"],
            "speedup": net["speedup"], "compile_speedup": eager["time_s"]["median"] / net["time_s"]["median"],
            "sizes": sizes}


def compile_and_benchmark(model_dir, data_path, config: dict, study: str, overrides: dict | None = None,
                          device: str = "auto", out_dir=None) -> dict:
    """One saved model compiled and checked as the compile stage does (builds in `out_dir`, else a temporary
    directory), then timed by `benchmark_model` on the config's benchmark work, whose keys `overrides`
    may replace (None values are ignored). Returns the record with "study", "model", "compiled", "versions"."""
    import tempfile

    from .compiled import compile_model, load_builds

    bench = dict(config["benchmark"]) | {k: v for k, v in (overrides or {}).items() if v is not None}
    settings = dict(config["compile"], device=device)
    with tempfile.TemporaryDirectory(prefix="fhnkit_bench_") as tmp:
        directory = Path(out_dir or tmp)
        compiled = compile_model(model_dir, data_path, directory, settings)
        model = load_model(model_dir)
        builds = load_builds(model, compiled, directory, settings)
        record = benchmark_model(model, config["studies"][study], FHNParams.from_mapping(config["model"]), bench,
                                 config["seed"], study, builds, settings["max_batch"])
    return record | {"study": study, "model": compiled["model"], "compiled": compiled, "versions": versions()}


def _percent(fraction) -> str:
    return "-" if fraction is None else f"{fraction:.2%}"


def benchmark_study(model_dirs, settings: dict, fhn: dict, bench: dict, root_seed: int, study: str,
                    out_path, compiled_dirs=None, compile_settings: dict | None = None) -> dict:
    """Benchmark every saved model of a study in turn; writes {"study", "models": [records]} as JSON.
    With `compiled_dirs` (one per model, holding compiled.json), every build of each model is timed."""
    from .compiled import load_builds

    records = []
    compiled_dirs = compiled_dirs or [None] * len(model_dirs)
    for directory, compiled_dir in tqdm(list(zip(model_dirs, compiled_dirs, strict=True)), desc=f"benchmark {study}",
                                        mininterval=10.0):
        directory = Path(directory)
        record = finished_model(directory)
        check_problem(directory, record, study, settings["problem"])
        if record.get("status") != "ok":
            continue  # a diverged model has no inference worth timing
        model = load_model(directory)
        builds = None
        if compiled_dir is not None:
            builds = load_builds(model, read_json(Path(compiled_dir) / "compiled.json"), compiled_dir,
                                 compile_settings)
        record = benchmark_model(model, settings, FHNParams.from_mapping(fhn), bench, root_seed, study, builds,
                                 (compile_settings or {}).get("max_batch", MAX_CHUNK))
        metrics = read_json(directory / "metrics.json")
        record.update(study=study, model=metrics["model"], config_hash=metrics.get("config_hash"))
        for size in record["sizes"]:
            for name, b in size["builds"].items():
                log.info("%s %s, %d sets on %s: %.3e s (%.3g outputs/s, %s of the compute roof), solver %.3e s "
                         "on %s; medians of %d", record["model"], name, size["n_sets"], b["device"],
                         b["time_s"]["median"], b["outputs_per_s"], _percent(b.get("compute_fraction")),
                         size["solver_time_s"]["median"], size["solver"]["device"], bench["repeats"])
        records.append(record)
    result = {"study": study, "models": records, "versions": versions()}
    write_json(result, out_path)
    return result
