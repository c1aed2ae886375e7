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


def benchmark_model(model, settings: dict, fhn, bench: dict, root_seed: int, study: str) -> dict:
    """Time `model` and the Euler solver on the same reference work; returns a JSON-able record.

    Times are seconds for the whole work (all sets x points), median over repeats.
    """
    threads = bench["threads"]
    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    model = model.eval()
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
        make_call = lambda c: _iterator_call(model, x, n_net, c)  # noqa: E731
    else:
        x = network_inputs(settings, sets, times)
        n_net = bench["n_points"]
        make_call = lambda c: _network_call(model, x, c)  # noqa: E731
    chunk, search = choose_chunk(model, x, call=make_call)
    timings = time_interleaved({"network": make_call(chunk), "solver": solver}, bench["repeats"], bench["warmup"])
    return {"n_sets": bench["n_sets"], "n_points": bench["n_points"], "network_points": n_net,
            "threads": threads, "device": "cpu",
            "backend": "torch-eager", "chunk": chunk, "chunk_search_s": search,
            "inference_time_s": timings["network"], "solver_time_s": timings["solver"],
            "solver": {"dt": bench["dt"], "t_end": bench["t_end"], "precision": bench["precision"],
                       "backend": "numba", "store_every": every, "outputs": "preallocated"},
            "speedup": timings["solver"]["median"] / timings["network"]["median"]}


def benchmark_study(model_dirs, settings: dict, fhn: dict, bench: dict, root_seed: int, study: str,
                    out_path) -> dict:
    """Benchmark every saved model of a study in turn; writes {"study", "models": [records]} as JSON."""
    records = []
    for directory in tqdm(model_dirs, desc=f"benchmark {study}", mininterval=10.0):
        directory = Path(directory)
        if read_json(directory / "metrics.json").get("status") != "ok":
            continue  # a diverged model has no inference worth timing
        record = benchmark_model(load_model(directory), settings, FHNParams.from_mapping(fhn), bench, root_seed,
                                 study)
        metrics = read_json(directory / "metrics.json")
        record.update(study=study, model=metrics["model"], config_hash=metrics.get("config_hash"))
        log.info("%s: network %.3e s, solver %.3e s (medians of %d)", record["model"],
                 record["inference_time_s"]["median"], record["solver_time_s"]["median"], bench["repeats"])
        records.append(record)
    result = {"study": study, "models": records, "versions": versions()}
    write_json(result, out_path)
    return result
