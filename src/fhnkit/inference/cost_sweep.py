"""Architecture cost sweep (thesis §4.4, Figures 39-40, Tables 12-13; SPEC.md sections 3 and 7).

Untrained, seeded MLPs of `layers` hidden layers of one activation and width
are built the way the compile stage builds a trained model (eager fp32, the
reference, plus the first usable backend of `compile.backends`, fp16 on a
GPU) and timed with `fhnkit.inference.benchmark.benchmark_model` beside the Euler solver on
the benchmark's reference work. Weights do not change the cost of a dense
network, so no training is needed. Eq. 4.3 then explains the inference time,
and the compiled-over-eager speedup, by neuron count and layer count:
`inference_time_s ~ neurons*C(layers)` and `compile_speedup ~ neurons*C(layers)`,
type II ANOVA (`fhnkit.analysis.cost_anova`).

`sweep_grid`, `sweep_settings`, `make_network` and `timing_rows` are pure
(no files); `run_sweep` builds and times and `write_sweep` writes the table. Units: every `*_time_s` column is seconds
for the whole work (n_sets x n_points evaluations), median over repeats, its
`*_iqr_s` the interquartile range; speedups are dimensionless.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..artifacts import versions, write_parquet
from ..cell.problems import K_TO_I_APP, OUTPUTS, input_bounds, input_columns
from ..plan.config import derive_seed

log = logging.getLogger(__name__)

STUDY = "cost_sweep"  # the name its seeds derive from
TIMING_COLUMNS = [
    "width", "layers", "neurons", "n_params", "activation", "build", "backend", "precision", "device",
    "inference_time_s", "inference_time_iqr_s", "eager_time_s", "eager_time_iqr_s", "compile_speedup",
    "solver_time_s", "solver_time_iqr_s", "speedup", "chunk", "n_sets", "n_points", "threads",
    "outputs_per_s", "compute_fraction", "bandwidth_fraction",
]


def sweep_grid(sweep: dict) -> list[tuple[int, int]]:
    """(width, layers) of every architecture of the sweep, by layer count then width."""
    return [(int(w), int(n)) for n in sorted(sweep["layers"]) for w in sorted(sweep["widths"])]


def sweep_settings(sweep: dict) -> dict:
    """The problem settings (a study-like dict) whose inputs and reference sets the sweep times."""
    return {"problem": sweep["problem"], "i_app": sweep["i_app"], "t_max": sweep["t_max"],
            "ranges": dict(sweep["ranges"]), "k_to_i_app": list(K_TO_I_APP), "initial_state": [0.5, 0.0]}


def sweep_bench(config: dict) -> dict:
    """The benchmark settings of the sweep: `benchmark`, with the sweep's n_sets, repeats and warmup."""
    sweep, bench = config["cost_sweep"], dict(config["benchmark"])
    bench["n_sets"] = sweep["n_sets"]
    bench["gpu_n_sets"] = list(bench.get("gpu_n_sets") or [sweep["n_sets"]])[:1]  # on a GPU: the first size
    for key in ("repeats", "warmup"):
        if sweep.get(key) is not None:
            bench[key] = sweep[key]
    return bench


def make_network(settings: dict, activation: str, width: int, layers: int, seed: int):
    """An untrained MLP of `layers` x (activation, width), weights seeded by `seed`, in eval mode."""
    from ..nets.mlp import MLP, make_spec

    lo, hi = input_bounds(settings)
    spec = make_spec(input_columns(settings), OUTPUTS, [[activation, width]] * layers, lo, hi,
                     [0.0] * len(OUTPUTS), [1.0] * len(OUTPUTS))
    torch.manual_seed(seed % (1 << 63))
    return MLP(spec).eval()


def timing_rows(width: int, layers: int, activation: str, n_params: int, record: dict) -> list[dict]:
    """One row per build from a `benchmark_model` record, its first set count (times in seconds, median
    and IQR)."""
    eager = record["eager_time_s"]
    solver = record["solver_time_s"]
    rows = []
    for name, build in record["sizes"][0]["builds"].items():
        backend, precision = name.rsplit("-", 1)
        t = build["time_s"]
        rows.append({
            "width": width, "layers": layers, "neurons": width * layers, "n_params": n_params,
            "activation": activation, "build": name, "backend": backend, "precision": precision,
            "device": build["device"], "inference_time_s": t["median"], "inference_time_iqr_s": t["q75"] - t["q25"],
            "eager_time_s": eager["median"], "eager_time_iqr_s": eager["q75"] - eager["q25"],
            "compile_speedup": eager["median"] / t["median"], "solver_time_s": solver["median"],
            "solver_time_iqr_s": solver["q75"] - solver["q25"], "speedup": solver["median"] / t["median"],
            "chunk": build["chunk"], "n_sets": record["n_sets"], "n_points": record["n_points"],
            "threads": record["threads"], "outputs_per_s": build.get("outputs_per_s"),
            "compute_fraction": build.get("compute_fraction"), "bandwidth_fraction": build.get("bandwidth_fraction")})
    return rows


def _check_inputs(settings: dict, n: int, seed: int) -> torch.Tensor:
    lo, hi = input_bounds(settings)
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.uniform(lo, hi, size=(n, lo.size)).astype(np.float32))


def run_sweep(config: dict, device: str | None = None, progress: bool = True) -> tuple[pd.DataFrame, dict]:
    """Build and time every architecture of `config["cost_sweep"]` (a validated config).

    Returns the timing table (`TIMING_COLUMNS`, one row per architecture and build) and
    {"builds": planned (backend, precision) pairs, "skipped": {backend: why}, "device": ...}.
    Every non-eager build is checked against eager fp32 (compile.tolerance) as in the compile stage.
    """
    from ..cell.model import FHNParams
    from ..nets.mlp import n_params
    from .benchmark import benchmark_model
    from .compiled import REFERENCE, build, check, default_device, plan

    sweep, compile_settings = config["cost_sweep"], config["compile"]
    settings, bench = sweep_settings(sweep), sweep_bench(config)
    device = device or (default_device() if compile_settings["device"] == "auto" else compile_settings["device"])
    builds, skipped = plan(compile_settings["backends"], compile_settings["precisions"], device)
    fhn = FHNParams.from_mapping(config["model"])
    x_check = _check_inputs(settings, 4096, derive_seed(config["seed"], STUDY, "check"))
    grid = sweep_grid(sweep)

    def time_one(width: int, layers: int, tmp: str) -> tuple[dict, int]:
        seed = derive_seed(config["seed"], STUDY, f"{sweep['activation']}{width}x{layers}")
        model = make_network(settings, sweep["activation"], width, layers, seed)
        compiled = []
        for backend, precision in builds:
            c = build(model, backend, precision, device, Path(tmp) / f"w{width}_l{layers}",
                      compile_settings["max_batch"], compile_settings["threads"])
            if (backend, precision) != REFERENCE:  # checked as the compile stage checks
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    check(c, make_network(settings, sweep["activation"], width, layers, seed), x_check,
                          compile_settings["tolerance"][precision])
            compiled.append(c)
        return (benchmark_model(model, settings, fhn, bench, config["seed"], STUDY, compiled,
                                compile_settings["max_batch"]), n_params(model))

    rows = []
    with tempfile.TemporaryDirectory(prefix="fhnkit_cost_sweep_") as tmp:
        # a warm-up pass, discarded: a process's first timings (thread pools, the solver's JIT, the first
        # ONNX Runtime session) would otherwise land on the first architecture alone
        time_one(*grid[0], tmp)
        for width, layers in tqdm(grid, desc="cost sweep", disable=not progress, mininterval=5.0):
            record, size = time_one(width, layers, tmp)
            rows += timing_rows(width, layers, sweep["activation"], size, record)
            log.info("%dx%d (%d neurons): %s", width, layers, width * layers,
                     ", ".join(f"{n} {b['time_s']['median']:.3e} s" for n, b in record["sizes"][0]["builds"].items())
                     + f", solver {record['solver_time_s']['median']:.3e} s")
    meta = {"builds": [f"{b}-{p}" for b, p in builds], "skipped": skipped, "device": device}
    return pd.DataFrame(rows, columns=TIMING_COLUMNS), meta


def write_sweep(timings: pd.DataFrame, meta: dict, parquet_path, config_hash: str | None = None) -> None:
    """The timing table as Parquet, with the plan, skipped backends, config hash and versions in its
    metadata (`fhnkit.artifacts.read_parquet_meta`); its report page is `fhnkit.analysis.write_timings_page`."""
    write_parquet(timings, parquet_path, {**meta, "config_hash": config_hash, "versions": versions()})
