"""A fleet: many models of a study trained in one process as a few batched computations per iteration.

Each model stays itself. It is built exactly as when trained alone (`TrainingRun`: same
initial weights, same loss terms and weights, same counter-based batch streams, so the same
batch sequence), and keeps its own Adam state, learning rate and ReduceLROnPlateau schedule and
its own divergence. Models whose networks can be stacked (`stacked.stack_key`: same depth,
inputs, outputs) form one group, those with data terms only apart from the others (gradients by hand); a
group computes the union of its models' loss terms, each model's own as alone and the others weighted 0,
evaluated as one `StackedMLP`; any other model (one network per time window) steps alone.
The only difference from training alone is the floating-point order of the batched matrix
products (tests/test_fleet.py measures it). A group trains a block of iterations (up to its next
validation) without synchronising with the host (`stacked_group`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import time
from pathlib import Path

import pandas as pd
import torch

from ..artifacts import read_json
from . import checkpoint
from .stacked import stack_key
from .stacked_group import StackedGroup
from .terms import DataTerm
from .train import TrainingDiverged, TrainingRun, fit, load_training_data, record_divergence, write_finished

log = logging.getLogger(__name__)


def _by_hand(run: TrainingRun) -> bool:
    """Whether the run's loss has data terms only (its group takes its gradients by hand, `stacked_data`)."""
    return all(isinstance(t, DataTerm) for t in run.terms)


def group_key(run: TrainingRun) -> tuple | None:
    """Runs with equal keys train as one stacked group (same network shape, study, device and schedule,
    and data terms only or not: a group computes the union of its models' terms, each model's own weighted
    as alone and the others 0); None: the run steps alone."""
    net = stack_key(run.model)
    if net is None:
        return None
    training = run.spec.training
    return (net, run.spec.study, str(run.device), _by_hand(run), training.iterations, training.validate_every,
            run.iteration)


class SoloGroup:
    """A run whose network cannot be stacked (one network per time window), stepped by `TrainingRun.step`."""

    def __init__(self, run: TrainingRun):
        self.runs, self.iteration = [run], run.iteration
        self.window: list[dict] = []
        self.diverged: TrainingDiverged | None = None
        self.reported = False
        self.execution = "alone (one network per time window)"

    def advance(self, n_iterations: int) -> None:
        for _ in range(n_iterations):
            if self.diverged is not None:
                break
            try:
                self.window.append(self.runs[0].step())
            except TrainingDiverged as exc:
                self.diverged = exc
        self.iteration += n_iterations

    def validation_errors(self) -> list[tuple[float, float]]:
        return [self.runs[0].validate()]

    def collect(self) -> list:
        if self.diverged is not None:
            result, self.reported = (None if self.reported else self.diverged), True
        else:
            result = pd.DataFrame(self.window).mean().to_dict() if self.window else None
        self.window = []
        return [result]


def partition(runs: list[TrainingRun]) -> list[list[TrainingRun]]:
    """The runs of each group of a fleet (`make_groups`), without building the groups: stacked groups in the
    order of their first run, then each run that steps alone as a group of its own."""
    groups: dict = {}
    solos = []
    for run in runs:
        key = group_key(run)
        if key is None:
            solos.append([run])
        else:
            groups.setdefault(key, []).append(run)
    return list(groups.values()) + solos


def build_group(members: list[TrainingRun], graphs: bool = True):
    """A group of `partition`'s: a StackedGroup (with `graphs`, on a GPU replaying its iterations from a CUDA
    graph) or the SoloGroup of a run that steps alone."""
    return StackedGroup(members, graphs) if group_key(members[0]) is not None else SoloGroup(members[0])


def make_groups(runs: list[TrainingRun], graphs: bool = True) -> list:
    """The stacked groups (and solo runs) of a fleet, in the order of their first run."""
    return [build_group(members, graphs) for members in partition(runs)]


def fit_fleet(runs: list[TrainingRun], groups: list | None = None) -> list[pd.DataFrame | TrainingDiverged]:
    """Train every run to its `training.iterations`, validating each every `validate_every` as `fit`
    does; returns per run its history, or the TrainingDiverged that stopped it (with `.rows`, its
    history until then). A row's `iter_time_s` is the run's share of its group's iteration time
    (the group's time per iteration / the models of the group). `groups`: those `make_groups` made of
    `runs` (made here when None)."""
    outcome: dict[int, pd.DataFrame | TrainingDiverged] = {}
    start = time.perf_counter()
    for group in make_groups(runs) if groups is None else groups:
        outcome.update(zip(map(id, group.runs), fit_group(group, start), strict=True))
    return [outcome[id(run)] for run in runs]


def fit_group(group, start: float, checkpoint: Path | None = None) -> list[pd.DataFrame | TrainingDiverged]:
    """Train one group (`make_groups`) to the end, block by block (a block ends at a validation); with
    `checkpoint` (a stacked group only), its state is saved there every `training.checkpoint_every`
    iterations and at the end (so that a job killed while it writes the group's models takes them from
    there: `train_fleet`), and taken up again when the file is there (bit-identical on a CPU)."""
    training = group.runs[0].spec.training
    total, every = training.iterations, training.validate_every
    rows: list[list] = [[] for _ in group.runs]
    stopped: list[TrainingDiverged | None] = [None] * len(group.runs)
    if checkpoint is not None and checkpoint.is_file():
        rows, stopped = _restore(group, checkpoint) or (rows, stopped)
    last_save = group.iteration
    while group.iteration < total:
        n = min(every - group.iteration % every, total - group.iteration)
        t0 = time.perf_counter()
        group.advance(n)
        results = group.collect()
        share = (time.perf_counter() - t0) / n / len(group.runs)
        errors = group.validation_errors()
        for j, (run, result) in enumerate(zip(group.runs, results, strict=True)):
            if isinstance(result, TrainingDiverged):
                stopped[j] = result
            elif result is not None:
                row = {"iteration": run.iteration, "lr": run.optimizer.param_groups[0]["lr"], **result}
                row.update(run.validation_row(errors[j]), iter_time_s=share, wall_time_s=time.perf_counter() - start)
                rows[j].append(row)
        due = group.iteration - last_save >= training.checkpoint_every or group.iteration >= total
        if checkpoint is not None and due:
            _save(group, rows, stopped, checkpoint)
            last_save = group.iteration
    for j, exc in enumerate(stopped):
        if exc is not None:
            exc.rows = rows[j]
    return [exc if exc is not None else pd.DataFrame(r) for exc, r in zip(stopped, rows, strict=True)]


def _save(group: StackedGroup, rows: list, stopped: list, path: Path) -> None:
    state = {"group": group.state_dict(), "rows": rows, "stopped": [None if e is None else str(e) for e in stopped]}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _restore(group: StackedGroup, path: Path) -> tuple[list, list] | None:
    """The history rows and divergences of a matching checkpoint, its state loaded into `group`; None
    (and a warning) for a file that cannot be read or holds other models: the group starts over."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        group.load_state_dict(state["group"])
    except Exception as exc:  # a truncated file from an old crash, or another grid's fleet
        log.warning("ignoring fleet checkpoint %s (%s): the group starts over", path, exc)
        return None
    log.info("fleet group of %d models resumes from %s at iteration %d", len(group.runs), path, group.iteration)
    return state["rows"], [None if e is None else TrainingDiverged(e) for e in state["stopped"]]


def checkpoint_name(group) -> str:
    """The file name of a group's checkpoint: the same models (names and config hashes) give the same name."""
    key = json.dumps([(run.spec.model, run.spec.config_hash) for run in group.runs])
    return f"fleet-{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"


def train_fleet(jobs: list[tuple[dict, dict, object]], checkpoint_dir=None) -> list[dict | TrainingDiverged]:
    """Train the models of `jobs` ([(spec, {split: data path}, model directory)]) as one fleet and write
    each model's `weights.pt`, `spec.json`, `history.parquet` and `metrics.json` exactly as `train_model`
    does, a group's models as soon as the group ends. A model whose `metrics.json` exists (from the same
    spec: same config hash) is finished and left alone. The groups are those of all of `jobs`, finished
    models included, so that a rerun computes what an uninterrupted job would: a group all of whose models
    are finished is skipped; one with some finished trains them again with the others (from its checkpoint,
    when there is one) and writes only the others. With `checkpoint_dir`, each stacked group saves its state
    there (`checkpoint_name`) every `training.checkpoint_every` iterations and when it ends (removed once
    its models are written): a killed fleet resumes where it stopped, bit-identical on a CPU. Returns per
    job its metrics, or, for a model that diverged with `training.on_divergence: fail`, the
    TrainingDiverged (no metrics)."""
    cache: dict = {}
    results: list = [None] * len(jobs)
    runs, out_dirs, index = [], {}, {}
    for k, (spec, paths, out_dir) in enumerate(jobs):
        out_dir = Path(out_dir)
        done = read_json(out_dir / "metrics.json") if (out_dir / "metrics.json").is_file() else None
        if done is not None and done.get("config_hash") == spec.config_hash:
            results[k] = done
        run = TrainingRun(spec, **load_training_data(spec, paths, cache))
        runs.append(run)
        out_dirs[id(run)], index[id(run)] = out_dir, k
    if runs:
        torch.set_num_threads(runs[0].spec.training.threads)
    start = time.perf_counter()
    for members in partition(runs):
        finished = [results[index[id(run)]] is not None for run in members]
        for run in itertools.compress(members, finished):
            log.info("%s finished before (same config): kept as it is", run.spec.model)
        if all(finished):
            continue
        group = build_group(members)
        if isinstance(group, StackedGroup):
            path = None if checkpoint_dir is None else Path(checkpoint_dir) / checkpoint_name(group)
            outcomes = fit_group(group, start, path)
        else:  # one network per window: trained as alone, with its own checkpoint in its directory
            run = group.runs[0]
            try:
                outcomes = [fit(run, progress=False, checkpoint_dir=out_dirs[id(run)],
                                rows=checkpoint.restore(run, out_dirs[id(run)]))]
            except TrainingDiverged as exc:
                outcomes = [exc]
            path = None
        for run, outcome in zip(group.runs, outcomes, strict=True):
            k, out_dir = index[id(run)], out_dirs[id(run)]
            if results[k] is not None:  # finished before: trained again only for its group mates
                continue
            if not isinstance(outcome, TrainingDiverged):
                results[k] = write_finished(run, outcome, out_dir, fleet={"models": len(group.runs)})
            elif run.spec.training.on_divergence == "fail":
                checkpoint.remove(out_dir)
                results[k] = outcome
            else:
                results[k] = record_divergence(run, outcome, out_dir)
        if path is not None:
            path.unlink(missing_ok=True)
    return results
