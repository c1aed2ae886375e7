"""Training throughput: a study's models trained as a fleet and one at a time, side by side in one process.

`fhnkit bench train` runs this. Both modes start from the same specs and data sets and train
every model for the same number of iterations (one validation, at the end); the measure is
model-iterations per second (models x iterations / wall seconds), so the ratio of the two
says what training a grid as a fleet buys on this device.
"""

from __future__ import annotations

import copy
import logging
import tempfile
import time
from pathlib import Path

import torch

from ..datasets import write_dataset
from ..plan import expand_study, layout
from .fleet import fit_fleet, make_groups
from .train import TrainingRun, fit

log = logging.getLogger(__name__)


def _runs(specs: list[dict], frames: dict) -> list[TrainingRun]:
    return [TrainingRun(spec, frames["train"], frames["val"], frames.get("region"), frames.get("march"))
            for spec in specs]


def bench_specs(config: dict, study: str, iterations: int, device: str) -> tuple[list[dict], list[str]]:
    """The study's models to time (iterations and device overridden, one validation at the end), and
    the names of those left out: a model that needs the resampling stage's high-error set."""
    specs, skipped = [], []
    for spec in expand_study(config, study):
        if layout.needs_resampled_data(spec):
            skipped.append(spec["model"])
            continue
        spec = copy.deepcopy(spec)
        spec["training"].update(iterations=iterations, validate_every=iterations, device=device)
        specs.append(spec)
    return specs, skipped


def bench_train(config: dict, study: str, iterations: int = 200, device: str = "cpu",
                threads: int | None = None) -> dict:
    """Train `study`'s models for `iterations` each as a fleet and one at a time; returns
    {"records": [{"mode": "fleet"|"solo", "model_iterations_per_s", "models", "iterations",
    "device", "threads", "wall_s", ...}], "ratio": fleet / solo, "skipped": [...]}."""
    if threads:
        torch.set_num_threads(threads)
    specs, skipped = bench_specs(config, study, iterations, device)
    if not specs:
        raise ValueError(f"study {study} has no model to time here (left out: {skipped})")
    with tempfile.TemporaryDirectory(prefix="fhnkit_bench_train_") as tmp:
        splits = {split for spec in specs for split in layout.data_files(spec)}
        frames = {split: write_dataset(config, study, split, Path(tmp) / f"{split}.parquet") for split in splits}
    runs = _runs(specs, frames)
    n_groups = len(make_groups(runs))
    records = []
    t0 = time.perf_counter()
    fit_fleet(runs)
    fleet_s = time.perf_counter() - t0
    runs = _runs(specs, frames)
    t0 = time.perf_counter()
    for run in runs:
        fit(run, progress=False)
    solo_s = time.perf_counter() - t0
    base = {"study": study, "models": len(specs), "iterations": iterations, "device": str(runs[0].device),
            "threads": torch.get_num_threads()}
    for mode, wall in (("fleet", fleet_s), ("solo", solo_s)):
        records.append({"mode": mode, **base, "wall_s": wall,
                        "model_iterations_per_s": len(specs) * iterations / wall,
                        "groups": n_groups if mode == "fleet" else len(specs)})
    ratio = records[0]["model_iterations_per_s"] / records[1]["model_iterations_per_s"]
    log.info("%s: %d models x %d iterations: fleet %.0f, solo %.0f model-iterations/s (%.1fx)", study, len(specs),
             iterations, records[0]["model_iterations_per_s"], records[1]["model_iterations_per_s"], ratio)
    return {"records": records, "ratio": ratio, "skipped": skipped}
