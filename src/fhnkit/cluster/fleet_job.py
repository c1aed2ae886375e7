"""The workflow's fleet job: a study's fleets of one family, trained side by side, their models compiled.

Each fleet trains as one computation (`fhnkit.training.train_fleet`) and then compiles the models it
finished (one import of the backends for all). Up to `workers` fleets run at once, each in a process
of its own, forked from the job's process before torch or CUDA start (so it shares the job's log),
with its models' `training.threads`: a job given N times those threads keeps N fleets busy. A fleet
that raises does not stop the others: the job fails after they end, and what they finished stays in
the fleet directory for the rerun.
"""

from __future__ import annotations

import logging
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor

from ..plan.model_spec import ModelSpec

log = logging.getLogger(__name__)

# one model of a fleet: (its ModelSpec, {split: data path}, directory the fleet writes it to, directory of its
# builds)
FleetJob = tuple[ModelSpec, dict, str, str]


def train_and_compile(name: str, jobs: list[FleetJob], checkpoint_dir, compile_settings: dict) -> None:
    """Train fleet `name` and compile each model it finished."""
    from ..inference import compile_models
    from ..training import train_fleet

    log.info("fleet %s: %d models", name, len(jobs))
    results = train_fleet([(spec, data, directory) for spec, data, directory, _ in jobs],
                          checkpoint_dir=checkpoint_dir)
    for (spec, *_), result in zip(jobs, results, strict=True):
        if isinstance(result, Exception):  # on_divergence: fail; the model's own job trains it again alone
            log.error("%s: %s", spec.model, result)
        elif result["status"] == "ok":
            log.info("%s: mean error %.3e, max error %.3e", spec.model, result["mean_err"], result["max_err"])
        else:
            log.error("%s recorded as failed: %s", spec.model, result["error"])
    # each model's `compile` job moves these builds into place when they are of its weights and settings
    finished = [(directory, data["val"], compiled) for (_, data, directory, compiled), result
                in zip(jobs, results, strict=True) if not isinstance(result, Exception) and result["status"] == "ok"]
    for (directory, _, _), built in zip(finished, compile_models(finished, compile_settings), strict=True):
        if not isinstance(built, Exception):
            log.info("%s compiled: %s", directory, ", ".join(f"{b['backend']}-{b['precision']}"
                                                             for b in built["builds"]))


def run_fleets(fleets: dict[str, list[FleetJob]], checkpoint_dir, compile_settings: dict, workers: int = 1) -> None:
    """Train and compile every fleet of `fleets` ({name: its models}), up to `workers` at once (one at a time
    where this process cannot fork cleanly: no fork on this platform, or torch already imported)."""
    workers = max(1, min(workers, len(fleets)))
    clean = "torch" not in sys.modules and "fork" in multiprocessing.get_all_start_methods()
    if workers > 1 and not clean:
        log.info("%d fleets one at a time: this process cannot fork cleanly (torch imported, or no fork)",
                 len(fleets))
    if workers == 1 or not clean:
        for name, jobs in fleets.items():
            train_and_compile(name, jobs, checkpoint_dir, compile_settings)
        return
    log.info("%d fleets, %d at a time", len(fleets), workers)
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
        futures = {name: pool.submit(train_and_compile, name, jobs, checkpoint_dir, compile_settings)
                   for name, jobs in fleets.items()}
        errors = {name: future.exception() for name, future in futures.items()}
    failed = {name: err for name, err in errors.items() if err is not None}
    if failed:
        raise RuntimeError("fleets failed (what they finished is kept for the rerun): " +
                           "; ".join(f"{name}: {type(err).__name__}: {err}" for name, err in failed.items()))
