"""The checks of each GPU path: kernels, a data set, training, fleets, compiled builds, one benchmark."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ._context import Context, Outcome, Skip, check_cells, cuda_kernels


def check_kernel_exact(ctx: Context, precision: str) -> Outcome:
    """The exact CUDA kernel (data generation) against numba, bit for bit."""
    cuda = cuda_kernels()
    from ..cell.model import FHNParams
    from ..solvers.cpu import euler

    dtype = np.dtype(precision)
    n, steps, every = ctx.kernel_cells, 500, 50
    u0, w0, cur = check_cells(n, dtype)
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
    cuda_kernels()
    from ..cell.model import FHNParams
    from ..inference.solver_bench import bench_cuda, size_summary
    from ..solvers.cuda import euler_cuda

    records = [bench_cuda(n, 100, 10, "float32", 5, 1) for n in ctx.roofline_cells]
    u0, w0, cur = check_cells(100_000, np.float32)
    _, u_fast, _ = euler_cuda(u0, w0, cur, FHNParams(), 0.1, 100, 10, np.float32, exact=False)
    _, u_exact, _ = euler_cuda(u0, w0, cur, FHNParams(), 0.1, 100, 10, np.float32, exact=True)
    diff = np.abs(u_fast.astype(float) - u_exact)
    gap, mean_gap = float(diff.max()), float(diff.mean())
    rows = [{"cells": r["n_cells"], "median_s": r["time_s"]["median"], "cell_steps_per_s": r["cell_steps_per_s"],
             **r["roofline"]} for r in records]
    detail = "; ".join(size_summary(r) for r in records)
    # the benchmark's kernel is folded and fused: it differs from the exact one in the last bits of each step,
    # which one sensitive cell near the threshold can amplify (about 1e-3 at most on the CPU's emulation);
    # a peak the device does not offer leaves its fractions None, which is no failure of the kernel
    ok = mean_gap < 1e-4 and gap < 1e-2 and all(row["cell_steps_per_s"] > 0 for row in rows)
    return Outcome("kernel_roofline", "PASS" if ok else "FAIL",
                   f"{detail}; {rows[-1].get('why', 'no roofline')}; |fast - exact| mean {mean_gap:.2g}, max {gap:.2g}",
                   {"sizes": rows, "fast_vs_exact_max_abs": gap, "fast_vs_exact_mean_abs": mean_gap,
                    "peaks": records[0].get("gpu")})


def _dataset_on(config: dict, backend: str, path: Path):
    """The check study's train split made with data_solver.backend `backend`: (rows, fhnkit metadata)."""
    import pandas as pd

    from ..artifacts import read_parquet_meta
    from ..datasets import write_dataset

    config = json.loads(json.dumps(config))
    config["data_solver"]["backend"] = backend
    write_dataset(config, "B_check", "train", path)
    return pd.read_parquet(path), read_parquet_meta(path)


def check_dataset(ctx: Context) -> Outcome:
    """A data set made with the CUDA solver against the same made with numba: the same rows (every value bit
    for bit) and the same identity (config hash); only the provenance of where it ran may differ."""
    cuda_kernels()
    rows_cuda, meta_cuda = _dataset_on(ctx.config, "cuda", ctx.workdir / "train_cuda.parquet")
    rows_cpu, meta_cpu = _dataset_on(ctx.config, "cpu", ctx.workdir / "train_cpu.parquet")
    same_rows = rows_cuda.equals(rows_cpu)
    same_identity = meta_cuda["config_hash"] == meta_cpu["config_hash"]
    ran_on = (meta_cuda["data_solver"].get("ran_on"), meta_cpu["data_solver"].get("ran_on"))
    detail = (f"train split of B_check, {len(rows_cuda):,} rows: rows {'equal' if same_rows else 'DIFFER'}, "
              f"config hash {meta_cuda['config_hash'][:12]} vs {meta_cpu['config_hash'][:12]}, ran on {ran_on}")
    ok = same_rows and same_identity and ran_on == ("cuda", "cpu")
    return Outcome("dataset_cuda", "PASS" if ok else "FAIL", detail,
                   {"same_rows": same_rows, "same_identity": same_identity, "ran_on": ran_on})


def _training_data(ctx: Context) -> dict:
    """The check study's train and validation sets (made once), {split: path}."""
    if not ctx.data:
        from ..datasets import write_dataset

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

    from ..plan import expand_study
    from ..plan.model_spec import ModelSpec
    from ..training import TrainingRun, train_model
    from ..training.fleet import make_groups
    from ..training.stacked_group import StackedGroup
    from ..training.throughput import count_host_syncs

    paths = _training_data(ctx)
    specs = [ModelSpec.from_mapping(spec).with_training(device=ctx.device)
             for spec in expand_study(ctx.config, "B_check")]
    frames = {split: pd.read_parquet(path) for split, path in paths.items()}
    n = 20
    solo = TrainingRun(specs[0], frames["train"], frames["val"])
    solo.step()  # the first step allocates and builds; count the steady state

    def solo_steps():
        for _ in range(n):
            solo.step()
    solo_syncs = (count_host_syncs(solo_steps, ctx.device) or 0) / n
    runs = [TrainingRun(spec, frames["train"], frames["val"]) for spec in specs]
    groups = [g for g in make_groups(runs) if isinstance(g, StackedGroup)]
    for group in groups:
        group.advance(1)
    fleet_syncs = (count_host_syncs(lambda: [group.advance(n) for group in groups], ctx.device) or 0) / n
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


def _trained_model(ctx: Context) -> Path:
    if ctx.model_dir is None or not (ctx.model_dir / "metrics.json").is_file():
        raise Skip("no trained model (the training check did not finish)")
    return ctx.model_dir


def check_compile(ctx: Context, backend: str) -> Outcome:
    """One backend built and checked against eager (the compile stage), reloaded as the benchmark loads
    it, and run at the benchmark's batch sizes against eager."""
    import pandas as pd
    import torch

    from ..inference.compiled import compile_model, load_builds, validation_inputs
    from ..nets import load_model
    from ..plan.config import validate_config

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
    from ..inference.benchmark import compile_and_benchmark

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



