"""The GPU check: every GPU path of fhnkit run once, in minutes, with one PASS/FAIL/SKIP line per check.

`fhnkit gpu-check` (or `benchmarks/gpu_check.sh`) needs only what a GPU machine has: PyTorch with
CUDA, CuPy, numba (ONNX Runtime, TensorRT and Snakemake are used where present, skipped where not).
It runs without a network in under 8 minutes on one H100/H200. The checks, in order:

- `kernel_exact_f32`, `kernel_exact_f64`: the CUDA Euler kernel of data generation equals the numba
  kernel bit for bit on 1M cells;
- `kernel_roofline`: the benchmark's (fast) kernel timed with CUDA events at 16M/32M/64M cells,
  with its fraction of the bandwidth roofline and its difference from the exact kernel;
- `dataset_cuda`: a data set made with the CUDA solver has the bytes of the one made with numba;
- `training`: one model and a fleet trained on the device, host synchronisations per iteration counted;
- `fleet_throughput`: `fhnkit bench train` on a study (fleet vs one at a time), and the thesis's grid
  (200 models x 1M iterations) in GPU-hours at the fleet's rate;
- `compile_onnxruntime`, `compile_torch_compile`: built, checked against eager, and reloaded as the
  benchmark loads them, then run at the benchmark's batch sizes;
- `bench_network`: the benchmark of one trained model against the solver (`fhnkit bench network`).

On a machine without CUDA the GPU-only checks are skipped with the reason; the others run on the CPU
(`--device cpu`, which the test suite uses with `--quick`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import yaml

log = logging.getLogger(__name__)

THESIS_GRID = {"models": 200, "iterations": 1_000_000}  # SPEC.md section 2: over 200 architectures, 1M iterations

# A small problem-B study: enough to train, compile and benchmark in seconds on any device.
CHECK_CONFIG = """
seed: 11
data_solver: {method: euler, dt: 0.01, precision: float64, backend: auto}
benchmark: {n_sets: 20000, gpu_n_sets: [1000000], repeats: 3, warmup: 1, threads: 2}
compile: {backends: [onnxruntime, torch_compile], precisions: [fp32]}
studies:
  B_check:
    problem: B
    i_app: 0.0
    t_max: 10
    times_per_trajectory: 11
    train: {n: 200, sampler: lhs}
    val: {n: 50, sampler: uniform}
    grid:
      layers: [2, 3]
      layer_configs: [[silu, 16], [tanh, 32]]
      classes: [ddnn]
      batch_size: [128]
    training: {iterations: 200, validate_every: 100, lr: 0.003}
"""


@dataclass
class Outcome:
    """One check's result: PASS, FAIL or SKIP, a one-line detail, and its numbers."""

    name: str
    status: str
    detail: str
    numbers: dict = field(default_factory=dict)
    seconds: float = 0.0

    def line(self) -> str:
        return f"{self.status} {self.name}: {self.detail} ({self.seconds:.1f} s)"


class Skip(Exception):
    """A check that cannot run here; the message says why."""


@dataclass
class Context:
    """What the checks share: the device, sizes, a scratch directory, the check config and a trained model."""

    device: str
    quick: bool
    workdir: Path
    config: dict
    study_config: dict | None = None  # the config of `fleet_throughput` (the default config's B_S)
    model_dir: Path | None = None
    data: dict = field(default_factory=dict)

    @property
    def kernel_cells(self) -> int:
        return 20_000 if self.quick else 1_000_000

    @property
    def roofline_cells(self) -> list[int]:
        return [200_000] if self.quick else [16_000_000, 32_000_000, 64_000_000]


def _cuda_kernel():
    """The CUDA solver's module, or Skip with the reason its kernels (exact and fast) cannot run here."""
    from .solvers import cuda

    for exact in (True, False):
        usable, why = cuda.cuda_available(exact=exact)
        if not usable:
            raise Skip(f"no usable {'exact' if exact else 'fast'} CUDA kernel: {why}")
    return cuda


def _cells(n: int, dtype, seed: int = 5):
    """`n` initial states and currents over the problems' ranges (U0, W0, I_app)."""
    rng = np.random.default_rng(seed)
    return (rng.uniform(-0.1, 1.1, n).astype(dtype), rng.uniform(0.0, 0.2, n).astype(dtype),
            rng.uniform(0.0, 0.15, n).astype(dtype))


def check_kernel_exact(ctx: Context, precision: str) -> Outcome:
    """The exact CUDA kernel (data generation) against numba, bit for bit."""
    cuda = _cuda_kernel()
    from .cell.model import FHNParams
    from .solvers.cpu import euler

    dtype = np.dtype(precision)
    n, steps, every = ctx.kernel_cells, 500, 50
    u0, w0, cur = _cells(n, dtype)
    params = FHNParams()
    _, u_cpu, w_cpu = euler(u0, w0, cur, params, 0.01, steps, every, dtype)
    _, u_gpu, w_gpu = cuda.euler_cuda(u0, w0, cur, params, 0.01, steps, every, dtype, exact=True)
    differ = int(np.count_nonzero(u_cpu != u_gpu) + np.count_nonzero(w_cpu != w_gpu))
    worst = float(max(np.max(np.abs(u_cpu - u_gpu)), np.max(np.abs(w_cpu - w_gpu))))
    numbers = {"cells": n, "steps": steps, "values": int(u_cpu.size * 2), "differ": differ, "max_abs_diff": worst}
    detail = f"{n:,} cells x {steps} steps, {differ:,} of {u_cpu.size * 2:,} values differ (max {worst:.3g})"
    return Outcome("kernel_exact", "PASS" if differ == 0 else "FAIL", detail, numbers)


def check_kernel_roofline(ctx: Context) -> Outcome:
    """The benchmark's kernel (FMA contraction) timed at the benchmark's sizes, with roofline fractions,
    and its largest difference from the exact kernel."""
    _cuda_kernel()
    from .cell.model import FHNParams
    from .inference.solver_bench import bench_cuda
    from .solvers.cuda import euler_cuda

    records = [bench_cuda(n, 100, 10, "float32", 5, 1) for n in ctx.roofline_cells]
    u0, w0, cur = _cells(100_000, np.float32)
    _, u_fast, _ = euler_cuda(u0, w0, cur, FHNParams(), 0.1, 100, 10, np.float32, exact=False)
    _, u_exact, _ = euler_cuda(u0, w0, cur, FHNParams(), 0.1, 100, 10, np.float32, exact=True)
    diff = np.abs(u_fast.astype(float) - u_exact)
    gap, mean_gap = float(diff.max()), float(diff.mean())
    rows = [{"cells": r["n_cells"], "median_s": r["time_s"]["median"], "cell_steps_per_s": r["cell_steps_per_s"],
             **r["roofline"]} for r in records]
    fractions = [row.get("bandwidth_fraction") or 0.0 for row in rows]
    detail = "; ".join(f"{row['cells'] // 1_000_000 or row['cells']}{'M' if row['cells'] >= 1_000_000 else ''}: "
                       f"{row['median_s'] * 1e3:.2f} ms, {row['cell_steps_per_s']:.3g} cell-steps/s, "
                       f"{(row.get('bandwidth_fraction') or 0):.0%} of bandwidth" for row in rows)
    # the benchmark's kernel is folded and fused: it differs from the exact one in the last bits of each step,
    # which one sensitive cell near the threshold can amplify (about 1e-3 at most on the CPU's emulation)
    ok = mean_gap < 1e-4 and gap < 1e-2 and all(f > 0 for f in fractions)
    return Outcome("kernel_roofline", "PASS" if ok else "FAIL",
                   f"{detail}; |fast - exact| mean {mean_gap:.2g}, max {gap:.2g}",
                   {"sizes": rows, "fast_vs_exact_max_abs": gap, "fast_vs_exact_mean_abs": mean_gap,
                    "peaks": records[0].get("gpu")})


def _dataset_bytes(config: dict, backend: str, path: Path) -> str:
    from .datasets import write_dataset

    config = json.loads(json.dumps(config))
    config["data_solver"]["backend"] = backend
    write_dataset(config, "B_check", "train", path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_dataset(ctx: Context) -> Outcome:
    """A data set made with the CUDA solver against the same made with numba: the same bytes."""
    _cuda_kernel()
    cuda = _dataset_bytes(ctx.config, "cuda", ctx.workdir / "train_cuda.parquet")
    cpu = _dataset_bytes(ctx.config, "cpu", ctx.workdir / "train_cpu.parquet")
    same = cuda == cpu
    return Outcome("dataset_cuda", "PASS" if same else "FAIL",
                   f"train split of B_check: sha256 {cuda[:12]} (cuda) vs {cpu[:12]} (numba)", {"same_bytes": same})


def _count_syncs(step: Callable[[], None], device: str) -> int:
    """Host synchronisations torch reports while `step()` runs (0 on a CPU, where there are none)."""
    if device != "cuda":
        step()
        return 0
    import torch

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def _training_data(ctx: Context) -> dict:
    """The check study's train and validation sets (made once), {split: path}."""
    if not ctx.data:
        from .datasets import write_dataset

        for split in ("train", "val"):
            path = ctx.workdir / f"{split}.parquet"
            write_dataset(ctx.config, "B_check", split, path)
            ctx.data[split] = path
    return ctx.data


def check_training(ctx: Context) -> Outcome:
    """One model trained alone and the study's grid as a fleet on the device; host synchronisations per
    iteration counted in each (a fleet's group must have none between validations)."""
    import pandas as pd
    import torch

    from .plan import expand_study
    from .training import TrainingRun, train_model
    from .training.fleet import make_groups
    from .training.stacked_group import StackedGroup

    paths = _training_data(ctx)
    specs = expand_study(ctx.config, "B_check")
    for spec in specs:
        spec["training"]["device"] = ctx.device
    frames = {split: pd.read_parquet(path) for split, path in paths.items()}
    n = 20
    solo = TrainingRun(specs[0], frames["train"], frames["val"])
    solo.step()  # the first step allocates and builds; count the steady state

    def solo_steps():
        for _ in range(n):
            solo.step()
    solo_syncs = _count_syncs(solo_steps, ctx.device) / n
    runs = [TrainingRun(spec, frames["train"], frames["val"]) for spec in specs]
    groups = [g for g in make_groups(runs) if isinstance(g, StackedGroup)]
    for group in groups:
        group.advance(1)
    fleet_syncs = _count_syncs(lambda: [group.advance(n) for group in groups], ctx.device) / n
    for group in groups:
        group.collect()
    ctx.model_dir = ctx.workdir / "model"
    metrics = train_model(specs[0], paths["train"], paths["val"], ctx.model_dir, progress=False)
    numbers = {"solo_syncs_per_iteration": solo_syncs, "fleet_syncs_per_iteration": fleet_syncs,
               "fleet_models": len(runs), "fleet_groups": len(groups), "mean_err": metrics["mean_err"],
               "device": str(runs[0].device), "cuda": torch.cuda.is_available()}
    ok = metrics.get("status") == "ok" and fleet_syncs < 1  # a block of iterations may sync once (its draw)
    return Outcome("training", "PASS" if ok else "FAIL",
                   f"{len(runs)} models in {len(groups)} groups on {runs[0].device}: host syncs per iteration "
                   f"{fleet_syncs:g} (fleet) vs {solo_syncs:g} (alone); one model trained to mean error "
                   f"{metrics['mean_err']:.3g}", numbers)


def check_fleet_throughput(ctx: Context) -> Outcome:
    """`fhnkit bench train` (fleet vs one at a time, same process) and the thesis grid's GPU-hours."""
    from .training.throughput import bench_train

    config, study = (ctx.study_config, "B_S") if ctx.study_config else (ctx.config, "B_check")
    iterations = 20 if ctx.quick else 300
    result = bench_train(config, study, iterations, ctx.device)
    fleet, solo = result["records"]
    hours = THESIS_GRID["models"] * THESIS_GRID["iterations"] / fleet["model_iterations_per_s"] / 3600
    numbers = {"records": result["records"], "ratio": result["ratio"], "thesis_grid_hours": hours}
    return Outcome("fleet_throughput", "PASS",
                   f"{study}: {fleet['models']} models x {iterations} iterations on {fleet['device']}: fleet "
                   f"{fleet['model_iterations_per_s']:,.0f} vs alone {solo['model_iterations_per_s']:,.0f} "
                   f"model-iterations/s ({result['ratio']:.1f}x); the thesis grid ({THESIS_GRID['models']} models x "
                   f"{THESIS_GRID['iterations']:,} iterations) would take {hours:.1f} device-hours at the fleet's "
                   "rate", numbers)


def _trained_model(ctx: Context) -> Path:
    if ctx.model_dir is None or not (ctx.model_dir / "metrics.json").is_file():
        raise Skip("no trained model (the training check did not finish)")
    return ctx.model_dir


def check_compile(ctx: Context, backend: str) -> Outcome:
    """One backend built and checked against eager (the compile stage), reloaded as the benchmark loads
    it, and run at the benchmark's batch sizes against eager."""
    import pandas as pd
    import torch

    from .inference.compiled import compile_model, load_builds, validation_inputs
    from .nets import load_model
    from .plan.config import validate_config

    model_dir = _trained_model(ctx)
    settings = validate_config({**ctx.config, "compile": {"backends": [backend], "device": ctx.device}})["compile"]
    out = ctx.workdir / f"compiled_{backend}"
    record = compile_model(model_dir, ctx.data["val"], out, settings)
    built = [b for b in record["builds"] if b["backend"] == backend]
    if not built:
        raise Skip(record["skipped"].get(backend, "not built"))
    model = load_model(model_dir).to(ctx.device)
    builds = {b.backend: b for b in load_builds(model, record, out, settings)}
    sizes = [1, 8, 1 << 14] if ctx.quick else [1, 8, 1 << 14, 1 << 20]
    val = validation_inputs(model, pd.read_parquet(ctx.data["val"])).to(ctx.device)
    worst = 0.0
    with torch.no_grad():
        for n in sizes:
            x = val.repeat(-(-n // len(val)), 1)[:n]  # validation inputs, as many rows as the batch
            worst = max(worst, float((builds[backend](x) - model(x)).abs().sum(dim=1).max()))
    check = built[0]["check"]
    ok = worst <= check["tolerance"]
    return Outcome(f"compile_{backend}", "PASS" if ok else "FAIL",
                   f"on {ctx.device}: checked against eager {check['max_err']:.2g} (tolerance "
                   f"{check['tolerance']:.2g}); reloaded, batches {sizes}: max |compiled - eager| {worst:.2g}",
                   {"check": check, "reloaded_max_abs": worst, "batches": sizes})


def check_bench_network(ctx: Context) -> Outcome:
    """The benchmark of one trained model against the solver, as `fhnkit bench network` runs it."""
    from .inference.benchmark import compile_and_benchmark

    model_dir = _trained_model(ctx)
    overrides = {"gpu_n_sets": [100_000 if ctx.quick else 1_000_000], "repeats": 3, "warmup": 1}
    if ctx.device != "cuda":
        overrides["n_sets"] = 2_000 if ctx.quick else 20_000
    record = compile_and_benchmark(model_dir, ctx.data["val"], ctx.config, "B_check", overrides, ctx.device,
                                   ctx.workdir / "bench_compiled")
    size = record["sizes"][0]
    parts = [f"{name}: {b['time_s']['median']:.3g} s ({b['speedup']:.2f}x the solver)"
             for name, b in size["builds"].items()]
    return Outcome("bench_network", "PASS",
                   f"{size['n_sets']:,} sets on {record['device']}: solver {size['solver_time_s']['median']:.3g} s "
                   f"({size['solver']['backend']}); " + "; ".join(parts),
                   {"sizes": record["sizes"]})


CHECKS: list[tuple[str, Callable[[Context], Outcome], bool]] = [  # (name, check, needs CUDA)
    ("kernel_exact_f32", lambda ctx: check_kernel_exact(ctx, "float32"), True),
    ("kernel_exact_f64", lambda ctx: check_kernel_exact(ctx, "float64"), True),
    ("kernel_roofline", check_kernel_roofline, True),
    ("dataset_cuda", check_dataset, True),
    ("training", check_training, False),
    ("fleet_throughput", check_fleet_throughput, False),
    ("compile_onnxruntime", lambda ctx: check_compile(ctx, "onnxruntime"), False),
    ("compile_torch_compile", lambda ctx: check_compile(ctx, "torch_compile"), False),
    ("bench_network", check_bench_network, False),
]


def _run(name: str, check: Callable[[Context], Outcome], ctx: Context) -> Outcome:
    start = time.perf_counter()
    try:
        outcome = check(ctx)
    except Skip as why:
        outcome = Outcome(name, "SKIP", str(why))
    except Exception as exc:  # a failing check must not stop the others: its reason is the result
        log.debug("%s failed:\n%s", name, traceback.format_exc())
        outcome = Outcome(name, "FAIL", f"{type(exc).__name__}: {' '.join(str(exc).split())[:400]}")
    outcome.name = name
    outcome.seconds = time.perf_counter() - start
    return outcome


def run_checks(device: str = "cuda", quick: bool = False, study_config: dict | None = None,
               only: list[str] | None = None, echo: Callable[[str], None] | None = print) -> list[Outcome]:
    """Run the checks (those named in `only`, else all) on `device`; each outcome's line is passed to
    `echo` as soon as it is known. Checks that need CUDA are skipped on a machine without it."""
    import torch

    from .plan.config import validate_config

    if device == "cuda" and not torch.cuda.is_available():
        cuda_why = f"torch {torch.__version__} sees no CUDA device"
    else:
        cuda_why = None
    config = validate_config(yaml.safe_load(CHECK_CONFIG))
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="fhnkit_gpu_check_") as tmp:
        ctx = Context(device, quick, Path(tmp), config, study_config)
        for name, check, needs_cuda in CHECKS:
            if only and name not in only:
                continue
            if cuda_why and (needs_cuda or device == "cuda"):
                outcome = Outcome(name, "SKIP", cuda_why)
            elif needs_cuda and device != "cuda":
                outcome = Outcome(name, "SKIP", "a CUDA-only check (run with --device cuda on a GPU)")
            else:
                outcome = _run(name, check, ctx)
            outcomes.append(outcome)
            if echo is not None:
                echo(outcome.line())
    return outcomes


def write_outcomes(outcomes: list[Outcome], path) -> None:
    """The outcomes as JSON (every number of every check)."""
    Path(path).write_text(json.dumps([asdict(o) for o in outcomes], indent=2, default=str) + "\n")
