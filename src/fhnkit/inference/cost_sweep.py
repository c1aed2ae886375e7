"""Architecture cost sweep (thesis §4.4, Figures 39-40, Tables 12-13; SPEC.md sections 3 and 7).

Untrained, seeded MLPs of `layers` hidden layers of one activation and width
are built the way the compile stage builds a trained model (eager fp32, the
reference, plus the first usable backend of `compile.backends`, fp16 on a
GPU) and timed with `fhnkit.inference.benchmark.benchmark_model` beside the Euler solver on
the benchmark's reference work. Weights do not change the cost of a dense
network, so no training is needed. Eq. 4.3 then explains the inference time,
and the compiled-over-eager speedup, by neuron count and layer count:
`inference_time_s ~ neurons*C(layers)` and `compile_speedup ~ neurons*C(layers)`,
type II ANOVA.

`sweep_grid`, `sweep_settings`, `make_network`, `timing_rows` and
`cost_anova` are pure (no files); `run_sweep` builds and times and
`write_sweep` writes the table. Units: every `*_time_s` column is seconds
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
import statsmodels.formula.api as smf
import torch
from tqdm.auto import tqdm

from ..analysis.stats import ANOVA_COLUMNS, NOT_ESTIMABLE, _ANOVA_TYPES, _not_estimable, anova_table, is_estimable
from ..plan.config import derive_seed
from ..cell.problems import OUTPUTS, input_bounds, input_columns

log = logging.getLogger(__name__)

STUDY = "cost_sweep"  # the name its seeds derive from
TIMING_COLUMNS = [
    "width", "layers", "neurons", "n_params", "activation", "build", "backend", "precision", "device",
    "inference_time_s", "inference_time_iqr_s", "eager_time_s", "eager_time_iqr_s", "compile_speedup",
    "solver_time_s", "solver_time_iqr_s", "speedup", "chunk", "n_sets", "n_points", "threads",
    "outputs_per_s", "compute_fraction", "bandwidth_fraction",
]
TIME_FORMULA = "inference_time_s ~ neurons*C(layers)"
SPEEDUP_FORMULA = "compile_speedup ~ neurons*C(layers)"
ANOVA_TYPE = 2
BACKEND_NAMES = {"tensorrt": "TensorRT", "onnxruntime": "ONNX Runtime", "torch_compile": "torch.compile",
                 "eager": "eager PyTorch"}


def sweep_grid(sweep: dict) -> list[tuple[int, int]]:
    """(width, layers) of every architecture of the sweep, by layer count then width."""
    return [(int(w), int(n)) for n in sorted(sweep["layers"]) for w in sorted(sweep["widths"])]


def sweep_settings(sweep: dict) -> dict:
    """The problem settings (a study-like dict) whose inputs and reference sets the sweep times."""
    return {"problem": sweep["problem"], "i_app": sweep["i_app"], "t_max": sweep["t_max"],
            "ranges": dict(sweep["ranges"]), "k_to_i_app": [0.08, 0.04], "initial_state": [0.5, 0.0]}


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
    from .benchmark import benchmark_model
    from .compiled import build, check, default_device, plan
    from ..nets.mlp import n_params
    from ..cell.model import FHNParams

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
            if (backend, precision) != ("eager", "fp32"):  # checked as the compile stage checks
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


def compiled_builds(timings: pd.DataFrame) -> list[str]:
    """Builds other than the eager fp32 reference, in table order."""
    return [b for b in dict.fromkeys(timings["build"]) if b != "eager-fp32"]


def _coefficients(data: pd.DataFrame, formula: str, terms) -> dict[str, str]:
    """OLS coefficients of `formula` per ANOVA term, as text (a categorical term has one per level)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        params = smf.ols(formula, data=data).fit().params
    out = {}
    for term in terms:
        parts = term.split(":")
        names = [n for n in params.index
                 if len(n.split(":")) == len(parts) and all(p in q for p, q in zip(parts, n.split(":")))]
        out[term] = "; ".join(f"{n[len(term):]}={params[n]:.4g}" if n != term else f"{params[n]:.4g}"
                              for n in names)
    return out


def _fit(data: pd.DataFrame, formula: str) -> pd.DataFrame:
    table = anova_table(data, formula, ANOVA_TYPE)
    table["coef"] = ""
    if is_estimable(table):
        coefs = _coefficients(data, formula, [t for t in table["term"] if t != "Residual"])
        table["coef"] = table["term"].map(coefs).fillna("")
    return table


def cost_anova(timings: pd.DataFrame, response: str, skipped: dict | None = None) -> pd.DataFrame:
    """Eq. 4.3 per build, type II: `inference_time_s ~ neurons*C(layers)` (response "time", every build,
    Table 12) or `compile_speedup ~ neurons*C(layers)` (response "speedup", every build but the eager
    fp32 reference, Table 13). Columns: build, then `ANOVA_COLUMNS`, then coef (the OLS coefficients
    of each term; "C(layers)[T.k]" relative to the smallest layer count). When only eager torch ran,
    the speedup table is one "not estimable" row that says so (a speedup of 1 by definition)."""
    formula = {"time": TIME_FORMULA, "speedup": SPEEDUP_FORMULA}[response]
    builds = list(dict.fromkeys(timings["build"])) if response == "time" else compiled_builds(timings)
    tables = [_fit(timings[timings["build"] == b], formula).assign(build=b) for b in builds]
    if not tables:
        why = "; ".join(f"{k}: {v}" for k, v in (skipped or {}).items())
        reason = ("no compiled backend ran here, only the eager torch reference, so its speedup over eager "
                  "is 1 by definition" + (f" (skipped: {why})" if why else ""))
        if timings.empty:
            reason = "no timings"
        tables = [_not_estimable(reason, _ANOVA_TYPES[ANOVA_TYPE], formula, 0).assign(build="", coef="")]
    out = pd.concat(tables, ignore_index=True)[["build"] + ANOVA_COLUMNS + ["coef"]]
    out.attrs.update(anova_type=ANOVA_TYPE, formula=formula)
    return out


def backend_label(build: str, device: str) -> str:
    """'ONNX Runtime over eager PyTorch (CPU)', 'TensorRT fp16 over PyTorch (GPU)', ..."""
    backend, precision = build.rsplit("-", 1)
    name = BACKEND_NAMES.get(backend, backend) + (" fp16" if precision == "fp16" else "")
    if device == "cuda":
        return f"{name} over PyTorch (GPU)"
    return f"{name} over eager PyTorch ({device.upper()})"


def analysis_tables(timings: pd.DataFrame, meta: dict, sweep: dict, bench: dict):
    """The sweep's two eq. 4.3 ANOVAs as {"time"|"speedup": (table, title, caption)} for
    `fhnkit.analysis.tables.write_table`, and the speedup figure's panel labels {build: label}."""
    device = str(timings["device"].iloc[0]) if len(timings) else meta.get("device", "cpu")
    labels = {b: backend_label(b, device) for b in compiled_builds(timings)}
    setup = (f"Untrained {sweep['activation']} networks, widths {sweep['widths']} x layers {sweep['layers']} "
             f"(neurons = width x layers), problem {sweep['problem']} inputs, {sweep['n_sets']:,} parameter sets x "
             f"{bench['n_points']} points on {device}; times are medians in seconds.")
    skipped = meta.get("skipped") or {}
    time_table = cost_anova(timings, "time", skipped)
    speedup_table = cost_anova(timings, "speedup", skipped)
    speedup_note = ("; ".join(labels.values()) if labels else
                    "only eager torch ran here, so there is no compiled-over-eager speedup to explain")
    return {
        "time": (time_table, "ANOVA of inference time on neurons and layers (eq. 4.3, thesis Table 12)",
                 f"Type II ANOVA of OLS fits of {TIME_FORMULA}, one per build (backend-precision). {setup} "
                 "coef: the OLS coefficients of each term (C(layers)[T.k] relative to the fewest layers)."),
        "speedup": (speedup_table, "ANOVA of the compiled-over-eager speedup on neurons and layers "
                    "(eq. 4.3, thesis Table 13)",
                    f"Type II ANOVA of OLS fits of {SPEEDUP_FORMULA}, compile_speedup = eager fp32 time / "
                    f"compiled time ({speedup_note}); the thesis's response was TensorRT (tensor cores) over "
                    f"PyTorch on a GPU. {setup}"),
    }, labels


def write_sweep(timings: pd.DataFrame, meta: dict, parquet_path, csv_path, html_path,
                config_hash: str | None = None) -> None:
    """The timing table as Parquet (the plan, skipped backends, config hash and versions in its
    metadata, `fhnkit.artifacts.read_parquet_meta`), as CSV and as a report page."""
    from ..artifacts import versions, write_parquet
    from ..analysis.tables import write_table

    write_parquet(timings, parquet_path, {**meta, "config_hash": config_hash, "versions": versions()})
    skipped = "; ".join(f"{k}: {v}" for k, v in (meta.get("skipped") or {}).items())
    caption = ("One row per untrained network (width x layers) and build (backend-precision). Times in seconds "
               "for the whole work, median over repeats (*_iqr_s: interquartile range); compile_speedup = eager "
               "fp32 time / the build's time; speedup = Euler solver time / the build's time."
               + (f" Not built here: {skipped}." if skipped else ""))
    write_table(timings, csv_path, html_path, "Architecture cost sweep: timings (thesis 4.4)", caption)


__all__ = ["TIMING_COLUMNS", "TIME_FORMULA", "SPEEDUP_FORMULA", "ANOVA_TYPE", "NOT_ESTIMABLE", "sweep_grid",
           "sweep_settings", "sweep_bench", "make_network", "timing_rows", "run_sweep", "compiled_builds",
           "cost_anova", "backend_label", "analysis_tables", "write_sweep"]
