"""Training throughput: a study's models trained as a fleet and one at a time, side by side in one process.

`fhnkit bench train` runs this. Both modes start from the same specs and data sets and train
every model for the same number of iterations (one validation, at the end); the measure is
model-iterations per second (models x iterations / wall seconds), so the ratio of the two
says what training a grid as a fleet buys on this device. The same measure at any size: a
study's grid scaled over replicate seeds (`replicated`), its models of some classes only, the
one-at-a-time side skipped for grids too large to wait for. Each record also states its stacked
computations per iteration (`groups`), its peak memory (`peak_memory`) and, on CUDA, its host
synchronisations per iteration (`count_host_syncs`).
"""

from __future__ import annotations

import copy
import logging
import re
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from ..datasets import write_dataset
from ..plan import expand_study, layout
from ..plan.config import grid_size
from ..plan.model_spec import ModelSpec
from .fleet import fit_fleet, make_groups
from .train import TrainingRun, fit

log = logging.getLogger(__name__)


def _runs(specs: list[dict], frames: dict) -> list[TrainingRun]:
    return [TrainingRun(ModelSpec.from_mapping(spec), frames["train"], frames["val"], frames.get("region"),
                        frames.get("march")) for spec in specs]


def replicated(config: dict, study: str, replicas: int) -> dict:
    """A copy of `config` whose `study` grid has `replicas` times its seeds: each seed s of the grid also as
    s + r * (largest seed + 1) for r < replicas, so that every model has `replicas` distinct replicates."""
    if replicas < 1:
        raise ValueError(f"replicas must be at least 1, got {replicas}")
    config = copy.deepcopy(config)
    grid = config["studies"][study]["grid"]
    seeds = list(grid["seeds"])
    stride = max(seeds) + 1
    grid["seeds"] = [seed + r * stride for r in range(replicas) for seed in seeds]
    grid["max_models"] = max(grid["max_models"], grid_size(grid))
    return config


def bench_specs(config: dict, study: str, iterations: int, device: str,
                classes: list[str] | None = None) -> tuple[list[dict], list[str]]:
    """The study's models to time (iterations and device overridden, one validation at the end; of `classes`
    only, when given), and the names of those left out: a model that needs the resampling stage's high-error
    set."""
    specs, skipped = [], []
    for spec in expand_study(config, study):
        if classes and spec["class"] not in classes:
            continue
        if layout.needs_resampled_data(spec):
            skipped.append(spec["model"])
            continue
        spec = copy.deepcopy(spec)
        spec["training"].update(iterations=iterations, validate_every=iterations, device=device)
        specs.append(spec)
    return specs, skipped


def count_host_syncs(call: Callable[[], object], device) -> int | None:
    """Host synchronisations torch reports (`torch.cuda.set_sync_debug_mode`) while `call()` runs on a CUDA
    `device`; None elsewhere (a CPU has no device to wait for)."""
    if torch.device(device).type != "cuda":
        call()
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            call()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


_PEAK_RSS = re.compile(r"^VmHWM:\s+(\d+) kB$", re.M)


def reset_peak_memory(device) -> str:
    """Start a peak-memory measurement on `device`; returns what `peak_memory` will measure: CUDA memory
    allocated by torch, or this process's peak resident set (Linux; reset here where the kernel allows,
    else counted from the process's start)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return "cuda allocated by torch"
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set
    except OSError:
        return "process resident set since start"
    return "process resident set"


def peak_memory(device) -> int | None:
    """Peak memory (bytes) since `reset_peak_memory`; None where it cannot be read."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    try:
        found = _PEAK_RSS.search(Path("/proc/self/status").read_text())
    except OSError:
        return None
    return int(found.group(1)) * 1024 if found else None


def _measured(mode: str, train: Callable[[], object], runs: list[TrainingRun], groups: list, base: dict) -> dict:
    """Train `runs` by `train()` (in `groups`: the fleet's groups, or one per run alone); the record of
    `mode` with its speed, groups and how they ran, peak memory and host syncs."""
    device = runs[0].device
    scope = reset_peak_memory(device)
    t0 = time.perf_counter()
    syncs = count_host_syncs(train, device)
    wall = time.perf_counter() - t0
    iterations = base["iterations"]
    return {"mode": mode, **base, "wall_s": wall, "model_iterations_per_s": len(runs) * iterations / wall,
            "groups": len(groups), "execution": sorted({getattr(g, "execution", "alone") for g in groups}),
            "peak_memory_bytes": peak_memory(device), "peak_memory_of": scope,
            "host_syncs_per_iteration": None if syncs is None else syncs / iterations}


def _bench_inputs(config: dict, study: str, iterations: int, device: str, replicas: int,
                  classes: list[str] | None) -> tuple[list[dict], dict, list[str]]:
    """(specs, data frames by split, models left out) of a study's grid to time (`bench_specs`)."""
    config = replicated(config, study, replicas)
    specs, skipped = bench_specs(config, study, iterations, device, classes)
    if not specs:
        raise ValueError(f"study {study} has no model{' of ' + ', '.join(classes) if classes else ''} to time "
                         f"here (left out: {skipped})")
    with tempfile.TemporaryDirectory(prefix="fhnkit_bench_train_") as tmp:
        splits = {split for spec in specs for split in layout.data_files(spec)}
        frames = {split: write_dataset(config, study, split, Path(tmp) / f"{split}.parquet") for split in splits}
    return specs, frames, skipped


def fleet_weights(config: dict, study: str, iterations: int, device: str, graphs: bool = True,
                  classes: list[str] | None = None) -> list[torch.Tensor]:
    """Every model's weights (one flat CPU tensor per model) after training `study`'s grid as a fleet for
    `iterations`: the same call twice shows whether training on `device` is repeatable, bit for bit."""
    specs, frames, _ = _bench_inputs(config, study, iterations, device, 1, classes)
    runs = _runs(specs, frames)
    fit_fleet(runs, make_groups(runs, graphs))
    return [torch.cat([p.detach().flatten().cpu() for p in run.model.parameters()]) for run in runs]


def plain_loop(runs: list[TrainingRun], iterations: int) -> None:
    """The textbook PyTorch loop, model after model: `torch.optim.Adam` at the run's rate, `iterations` steps of
    1/2 the mean squared error on batches of the run's size drawn by `torch.randint` from its training data,
    then one evaluation of its validation error: what one writes without fhnkit, for the runs' networks
    (their data term only; the runs must have no other term)."""
    for run in runs:
        data = run.terms[0]
        inputs, targets, batch = data.inputs, data.targets, data.batch_size
        optimizer = torch.optim.Adam(run.model.parameters(), lr=run.spec.training.lr)
        for _ in range(iterations):
            rows = torch.randint(len(inputs), (batch,), device=inputs.device)
            loss = 0.5 * ((run.model(inputs[rows]) - targets[rows]) ** 2).sum(dim=-1).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            float((run.model(run.val_x) - run.val_y).abs().sum(dim=-1).mean())


def _data_terms_only(runs: list[TrainingRun]) -> bool:
    return all(len(run.terms) == 1 and run.terms[0].kind == "data" for run in runs)


def bench_train(config: dict, study: str, iterations: int = 1000, device: str = "cpu", threads: int | None = None,
                replicas: int = 1, classes: list[str] | None = None, solo: bool = True, graphs: bool = True,
                plain: bool = False) -> dict:
    """Train `study`'s models (of `classes`, its grid over `replicas` times its seeds) for `iterations` each as
    a fleet and, with `solo`, one at a time; returns {"records": [{"mode": "fleet"|"solo",
    "model_iterations_per_s", "models", "iterations", "device", "threads", "wall_s", "groups",
    "peak_memory_bytes", "peak_memory_of", "host_syncs_per_iteration" (CUDA; None on a CPU), "execution"
    (how the groups ran: CUDA graphs, with `graphs` on a GPU, or eager), ...}],
    "ratio": fleet / solo (None without solo), "skipped": [...], "classes": {class: models}}; with `plain`, a
    record of mode "plain" too (`plain_loop`, for grids of one data term only) and "plain_ratio": fleet / plain."""
    if threads:
        torch.set_num_threads(threads)
    specs, frames, skipped = _bench_inputs(config, study, iterations, device, replicas, classes)
    runs = _runs(specs, frames)
    base = {"study": study, "models": len(specs), "iterations": iterations, "device": str(runs[0].device),
            "threads": torch.get_num_threads(), "replicas": replicas}
    groups = make_groups(runs, graphs)
    records = [_measured("fleet", lambda: fit_fleet(runs, groups), runs, groups, base)]
    if solo:
        runs = _runs(specs, frames)
        records.append(_measured("solo", lambda: [fit(run, progress=False) for run in runs], runs, runs, base))
    ratio = records[0]["model_iterations_per_s"] / records[1]["model_iterations_per_s"] if solo else None
    plain_ratio = None
    if plain:
        runs = _runs(specs, frames)
        if not _data_terms_only(runs):
            raise ValueError("the plain PyTorch loop is for models of one data term (DDNN, ITNN): pass "
                             "--classes ddnn or itnn")
        records.append(_measured("plain", lambda: plain_loop(runs, iterations), runs, runs, base))
        plain_ratio = records[0]["model_iterations_per_s"] / records[-1]["model_iterations_per_s"]
    log.info("%s: %d models x %d iterations: %s", study, len(specs), iterations,
             ", ".join(f"{r['mode']} {r['model_iterations_per_s']:.0f} model-iterations/s" for r in records))
    by_class: dict[str, int] = {}
    for spec in specs:
        by_class[spec["class"]] = by_class.get(spec["class"], 0) + 1
    return {"records": records, "ratio": ratio, "plain_ratio": plain_ratio, "skipped": skipped, "classes": by_class}
