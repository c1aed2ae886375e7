"""Inference of a trained network against the Euler solver on the same work (SPEC.md section 3).

The work: `n_sets` parameter sets, each needing the state at `n_points`
evenly spaced times up to `t_end`. The solver integrates with step `dt` and
stores exactly those points; the network is evaluated at the same points
(an iterator network instead steps from each initial state t_end / Δt times).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numba
import numpy as np
import torch
from tqdm.auto import tqdm

from .artifacts import read_json, versions, write_json
from .config import derive_seed
from .mlp import load_model
from .model import FHNParams
from .problems import i_app, input_bounds, parameter_columns
from .sampling import sample_box
from .solver import steps_for
from .solver_bench import preallocated_euler
from .timing import time_interleaved

log = logging.getLogger(__name__)
CHUNK_CANDIDATES = (1 << 14, 1 << 16, 1 << 18, 1 << 20)


def reference_sets(settings: dict, n_sets: int, seed: int) -> dict[str, np.ndarray]:
    """Parameter sets of the reference work: U0, W0, I_app per set, plus K for problem C."""
    if settings["problem"] == "A":
        u0, w0 = settings["initial_state"]
        return {"U0": np.full(n_sets, u0), "W0": np.full(n_sets, w0), "I_app": np.full(n_sets, i_app(settings))}
    lo, hi = (b[1:] for b in input_bounds(settings))
    params = dict(zip(parameter_columns(settings), sample_box(n_sets, lo, hi, "uniform", seed).T))
    params["I_app"] = np.broadcast_to(np.asarray(i_app(settings, params.get("K")), float), (n_sets,)).copy()
    return params


def network_inputs(settings: dict, sets: dict, times: np.ndarray) -> torch.Tensor:
    """(n_sets * n_points, n_inputs) float32 network inputs, time first."""
    n = sets["U0"].size
    cols = [np.tile(times, n)] + [np.repeat(sets[c], times.size) for c in parameter_columns(settings)]
    return torch.from_numpy(np.stack(cols, axis=1).astype(np.float32))


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


def choose_chunk(model, x: torch.Tensor, repeats: int = 2, call=None) -> tuple[int, dict]:
    """Fastest evaluation chunk among CHUNK_CANDIDATES (that fit the work); returns it and the search."""
    call = call or (lambda c: _network_call(model, x, c))
    candidates = [c for c in CHUNK_CANDIDATES if c < len(x)] + [len(x)]
    timings = time_interleaved({str(c): call(c) for c in candidates}, repeats, 1)
    medians = {int(c): t["median"] for c, t in timings.items()}
    return min(medians, key=medians.get), medians


def _synchronised(call, device: str):
    """A GPU call returns when its kernels are queued: wait for them inside the timed region."""
    if device != "cuda":
        return call

    def run():
        call()
        torch.cuda.synchronize()
    return run


def benchmark_model(model, settings: dict, fhn, bench: dict, root_seed: int, study: str, builds=None) -> dict:
    """Time `model` (each of its compiled `builds`; eager torch when none) and the Euler solver on the
    same reference work, interleaved in one process; returns a JSON-able record.

    Times are seconds for the whole work (all sets x points), median over repeats. The primary
    inference time is the first non-eager fp32 build's (eager's when there is none); every build's
    timing is under "builds", with its evaluation chunk chosen by a recorded search.
    """
    from .compiled import CompiledModel

    threads = bench["threads"]
    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    model = model.eval()
    builds = builds or [CompiledModel("eager", "fp32", "cpu", model)]
    n_steps = steps_for(bench["t_end"], bench["dt"])
    every = n_steps // bench["n_points"]
    times = np.arange(1, bench["n_points"] + 1) * every * bench["dt"]
    sets = reference_sets(settings, bench["n_sets"], derive_seed(root_seed, study, "benchmark"))
    dtype = np.dtype(bench["precision"])
    u0, w0, cur = (sets[k].astype(dtype) for k in ("U0", "W0", "I_app"))

    solver, _ = preallocated_euler(u0, w0, cur, fhn, bench["dt"], n_steps, every, dtype)

    if "itnn_dt" in model.spec:  # an iterator network steps from the initial states: t_end / Δt outputs
        cols = [sets["U0"], sets["W0"]] + ([sets["K"]] if "K" in model.spec["inputs"] else [])
        x = torch.from_numpy(np.stack(cols, axis=1).astype(np.float32))
        n_net = int(round(bench["t_end"] / model.spec["itnn_dt"]))
        work = lambda net, xd, c: _iterator_call(net, xd, n_net, c)  # noqa: E731
    else:
        x = network_inputs(settings, sets, times)
        n_net = bench["n_points"]
        work = _network_call
    contestants, searches = {"solver": solver}, {}
    for b in builds:
        xd = x.to(b.device)  # inputs live where the network runs: the copy is not part of the work

        def make_call(c, b=b, xd=xd):
            return _synchronised(work(b, xd, c), b.device)
        chunk, search = choose_chunk(b, xd, call=make_call)
        contestants[b.name], searches[b.name] = make_call(chunk), {"chunk": chunk, "chunk_search_s": search}
    timings = time_interleaved(contestants, bench["repeats"], bench["warmup"])
    primary = next((b for b in builds if b.backend != "eager" and b.precision == "fp32"), builds[0])
    eager = timings.get("eager-fp32", timings[primary.name])
    return {"n_sets": bench["n_sets"], "n_points": bench["n_points"], "network_points": n_net,
            "threads": threads, "device": primary.device, "backend": primary.backend,
            "precision": primary.precision, **searches[primary.name],
            "inference_time_s": timings[primary.name], "eager_time_s": eager, "solver_time_s": timings["solver"],
            "builds": {b.name: {**searches[b.name], "time_s": timings[b.name], "device": b.device}
                       for b in builds},
            "solver": {"dt": bench["dt"], "t_end": bench["t_end"], "precision": bench["precision"],
                       "backend": "numba", "store_every": every, "outputs": "preallocated"},
            "speedup": timings["solver"]["median"] / timings[primary.name]["median"],
            "compile_speedup": eager["median"] / timings[primary.name]["median"]}


def benchmark_study(model_dirs, settings: dict, fhn: dict, bench: dict, root_seed: int, study: str,
                    out_path, compiled_dirs=None, compile_settings: dict | None = None) -> dict:
    """Benchmark every saved model of a study in turn; writes {"study", "models": [records]} as JSON.
    With `compiled_dirs` (one per model, holding compiled.json), every build of each model is timed."""
    from .compiled import load_builds

    records = []
    compiled_dirs = compiled_dirs or [None] * len(model_dirs)
    for directory, compiled_dir in tqdm(list(zip(model_dirs, compiled_dirs)), desc=f"benchmark {study}",
                                        mininterval=10.0):
        directory = Path(directory)
        if read_json(directory / "metrics.json").get("status") != "ok":
            continue  # a diverged model has no inference worth timing
        model = load_model(directory)
        builds = None
        if compiled_dir is not None:
            builds = load_builds(model, read_json(Path(compiled_dir) / "compiled.json"), compiled_dir,
                                 compile_settings)
        record = benchmark_model(model, settings, FHNParams.from_mapping(fhn), bench, root_seed, study, builds)
        metrics = read_json(directory / "metrics.json")
        record.update(study=study, model=metrics["model"], config_hash=metrics.get("config_hash"))
        log.info("%s: %s %.3e s (eager %.3e s), solver %.3e s (medians of %d)", record["model"], record["backend"],
                 record["inference_time_s"]["median"], record["eager_time_s"]["median"],
                 record["solver_time_s"]["median"], bench["repeats"])
        records.append(record)
    result = {"study": study, "models": records, "versions": versions()}
    write_json(result, out_path)
    return result
