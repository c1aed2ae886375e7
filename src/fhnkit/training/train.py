"""Training of one model from its spec (DDNN or PINN), with validation history.

`TrainingRun` holds everything one model's training needs (network, loss
terms, optimiser, scheduler, batch streams) and advances by `step()`; the loop in
`fit()` is kept outside so that a batched driver can later step several runs
in one process.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..artifacts import versions, write_json, write_parquet
from ..nets import build_network, itnn, make_spec, n_params, save_model
from ..nets.evaluate import sample_errors
from ..nets.windows import interface_jumps, windowed_spec
from ..plan.model_spec import ModelSpec
from ..provenance import check_fits
from . import checkpoint
from .loss import build_terms, frame_tensor
from .marching import MarchValidation
from .terms import entry

log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the message names the model, iteration and term.

    `rows` holds the history recorded before the divergence (set by `fit`).
    """

    rows: list = []


def network_spec(spec: ModelSpec, train_df: pd.DataFrame) -> dict:
    """Network spec: inputs scaled from the problem's box (an ITNN's from its training pairs),
    outputs from the training targets' range (per window with time windows)."""
    if spec.kind.iterator:
        return _iterator_network_spec(spec, train_df)
    if spec.windows > 1:
        return _windowed_network_spec(spec, train_df)
    y = train_df[list(spec.outputs)].to_numpy(np.float64)
    y_lo, y_hi = y.min(axis=0), y.max(axis=0)
    scale = np.maximum((y_hi - y_lo) / 2, 1e-3)
    return make_spec(list(spec.inputs), list(spec.outputs), _layers(spec), np.array(spec.input_lo),
                     np.array(spec.input_hi), (y_lo + y_hi) / 2, scale)


def _layers(spec: ModelSpec) -> list[list]:
    """The hidden layers as the network spec writes them, [[activation, width], ...]."""
    return [[act, width] for act, width in spec.layers]


def _iterator_network_spec(spec: ModelSpec, train_df: pd.DataFrame) -> dict:
    """An ITNN's: inputs and outputs scaled from its one-step training pairs, plus its step `itnn_dt`."""
    x, y = (t.double().numpy() for t in itnn.pairs(train_df, spec.problem, spec.itnn["dt"]))
    lo, hi = x.min(axis=0), np.maximum(x.max(axis=0), x.min(axis=0) + 1e-3)
    y_lo, y_hi = y.min(axis=0), y.max(axis=0)
    net = make_spec(itnn.itnn_inputs(spec.problem), list(spec.outputs), _layers(spec), lo, hi,
                    (y_lo + y_hi) / 2, np.maximum((y_hi - y_lo) / 2, 1e-3))
    return {**net, "itnn_dt": spec.itnn["dt"]}


def _windowed_network_spec(spec: ModelSpec, train_df: pd.DataFrame) -> dict:
    """Time windows': each window's network scaled to its own window and to its outputs there."""
    y = train_df[list(spec.outputs)].to_numpy(np.float64)
    y_lo, y_hi = y.min(axis=0), y.max(axis=0)
    t = train_df["t"].to_numpy()
    ranges = []
    for a, b in itertools.pairwise(spec.window_edges):
        inside = y[(t >= a) & (t <= b)]
        ranges.append((inside.min(axis=0), inside.max(axis=0)) if len(inside) else (y_lo, y_hi))
    return windowed_spec(list(spec.inputs), list(spec.outputs), _layers(spec), spec.input_lo, spec.input_hi,
                         list(spec.window_edges), ranges)


def training_device(choice: str) -> torch.device:
    """"auto": the first visible CUDA device when there is one (a job's GPU is chosen by
    CUDA_VISIBLE_DEVICES, see `fhnkit.cluster.devices`), else the CPU; "cuda" insists on a GPU."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("training.device is 'cuda' but torch sees no CUDA device here; install a CUDA build "
                           "of torch, or set training.device to 'auto' or 'cpu'")
    if choice == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda:0")


class TrainingRun:
    """State of one model's training: call `step()` per iteration, `validate()` when due."""

    def __init__(self, spec: ModelSpec, train_df: pd.DataFrame, val_df: pd.DataFrame,
                 region_df: pd.DataFrame | None = None, march_df: pd.DataFrame | None = None,
                 resampled_df: pd.DataFrame | None = None):
        self.spec = spec
        training = spec.training
        torch.manual_seed(spec.torch_seed)
        self.device = training_device(training.device)
        self.model = build_network(network_spec(spec, train_df)).to(self.device)
        self.terms = [term.to(self.device) for term in build_terms(spec, train_df, region_df, resampled_df)]
        # one stream of counter-based draws per term (`fhnkit.training.draws`): the k-th iteration's batch is
        # a function of the term's seed and k, the same on any device, alone or in a fleet group
        self.seeds = [spec.torch_seed + 1 + i for i in range(len(self.terms))]
        self.samplers = [type(t).batch_sampler([t], [seed]) for t, seed in zip(self.terms, self.seeds, strict=True)]
        self.rollout = self.march = None
        if march_df is not None:  # reused window after window up to the marching horizon
            self.march = MarchValidation(march_df, spec.problem, spec.t_max)
        # the network's examples (an ITNN's: one-step pairs), plus an ITNN's full rollouts (eq. 3.18)
        self.val_x, self.val_y = self.model.examples(val_df)
        if self.model.is_iterator:
            self.rollout = self.model.rollout_validation(val_df)
        self.val_params = None
        if self.model.n_windows > 1:  # the validation set's parameter sets, for the interface jumps
            columns = list(spec.inputs[1:])
            self.val_params = (frame_tensor(val_df.drop_duplicates("traj"), columns) if columns
                               else torch.zeros((1, 0)))
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=training.lr)
        p = training.plateau
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="min", factor=p["factor"], patience=p["patience"], threshold=p["threshold"],
            min_lr=p["min_lr"], eps=p["eps"])
        self.iteration = 0

    def step(self) -> dict[str, float]:
        """One Adam step on the weighted sum of the terms; returns each term's loss."""
        self.optimizer.zero_grad(set_to_none=True)
        k = torch.tensor(self.iteration, device=self.device)
        losses = {f"loss_{t.name}": t.value(self.model, entry(draw(k)))
                  for t, draw in zip(self.terms, self.samplers, strict=True)}
        total = sum(t.weight * losses[f"loss_{t.name}"] for t in self.terms)
        values = {k: float(v.detach()) for k, v in losses.items()}
        values["loss_total"] = float(total.detach())
        self.iteration += 1
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        if bad:
            advice = "lower training.lr" + (" or training.weights.physics" if self.spec.kind.physics else "")
            raise TrainingDiverged(f"model {self.spec.name} diverged at iteration "
                                   f"{self.iteration}: {', '.join(f'{k}={values[k]}' for k in bad)}; {advice}")
        total.backward()
        self.optimizer.step()
        self.scheduler.step(values["loss_total"])
        return values

    def validate(self) -> tuple[float, float]:
        """Mean and max over the validation set of eq. 3.3, |dU| + |dW| (an ITNN's: one step)."""
        err = sample_errors(self.model, self.val_x, self.val_y)
        return float(err.mean()), float(err.max())

    def validation_row(self, errors: tuple[float, float] | None = None) -> dict:
        """The validation columns of a history row; an ITNN adds its full-rollout mean and max, a
        marching model its errors marched to the horizon. `errors`: `validate()`'s (mean, max), when
        computed already (for a fleet group's models at once)."""
        val_mean, val_max = self.validate() if errors is None else errors
        row = {"val_mean": val_mean, "val_max": val_max}
        for name, check in (("rollout", self.rollout), ("march", self.march)):
            if check is not None:
                err = check.errors(self.model)
                row.update({f"val_{name}_mean": float(err.mean()), f"val_{name}_max": float(err.max())})
        if self.val_params is not None:
            jumps = interface_jumps(self.model, self.val_params)
            row.update(val_jump_mean=float(jumps.mean()), val_jump_max=float(jumps.max()))
        return row


def fit(run: TrainingRun, progress: bool = True, checkpoint_dir=None, rows: list[dict] | None = None) -> pd.DataFrame:
    """Train to `training.iterations`, validating every `validate_every`; returns the history.

    Each history row averages the losses and the iteration time (s) over the
    iterations since the previous row. With `checkpoint_dir`, the run's state is
    saved there after a validation once `training.checkpoint_every` iterations have
    passed since the last save; `rows` are the history rows of a restored run.
    """
    training = run.spec.training
    total, every, save_every = training.iterations, training.validate_every, training.checkpoint_every
    rows = list(rows or [])
    window, window_time, last_save = [], 0.0, run.iteration
    start = time.perf_counter() - (rows[-1]["wall_time_s"] if rows else 0.0)
    bar = tqdm(total=total, initial=run.iteration, desc=run.spec.model, disable=not progress, mininterval=10.0)
    while run.iteration < total:
        t0 = time.perf_counter()
        try:
            window.append(run.step())
        except TrainingDiverged as exc:
            bar.close()
            exc.rows = rows
            raise
        window_time += time.perf_counter() - t0
        bar.update(1)
        if run.iteration % every == 0 or run.iteration == total:
            row = {"iteration": run.iteration, "lr": run.optimizer.param_groups[0]["lr"]}
            row.update(pd.DataFrame(window).mean().to_dict())
            row.update(run.validation_row(), iter_time_s=window_time / len(window),
                       wall_time_s=time.perf_counter() - start)
            rows.append(row)
            bar.set_postfix(val_mean=f"{row['val_mean']:.2e}")
            window, window_time = [], 0.0
            if checkpoint_dir is not None and run.iteration - last_save >= save_every and run.iteration < total:
                checkpoint.save(run, rows, checkpoint_dir)
                last_save = run.iteration
    bar.close()
    return pd.DataFrame(rows)


def train_model(spec: ModelSpec, train_path, val_path, out_dir, progress: bool = True, region_path=None,
                march_path=None, resampled_path=None) -> dict:
    """Train one model and write `weights.pt`, `spec.json`, `history.parquet`, `metrics.json`.

    The run checkpoints into `out_dir` and, when started again after a kill,
    resumes from its last checkpoint. `metrics.json` is written last: its
    presence means the model is finished. Returns the metrics (final validation
    mean/max error, median iteration time in s). A run whose loss becomes NaN or
    infinite stops there and is recorded with status "failed" and the message, or, with
    `training.on_divergence: fail`, raises `TrainingDiverged` and writes no metrics.
    """
    torch.set_num_threads(spec.training.threads)
    out_dir = Path(out_dir)
    frames = load_training_data(spec, {"train": train_path, "val": val_path, "region": region_path,
                                       "march": march_path, "resampled": resampled_path})
    run = TrainingRun(spec, **frames)
    rows = checkpoint.restore(run, out_dir)
    try:
        history = fit(run, progress=progress, checkpoint_dir=out_dir, rows=rows)
    except TrainingDiverged as exc:
        if spec.training.on_divergence == "fail":
            checkpoint.remove(out_dir)  # a rerun starts over (with whatever was changed to avoid the NaN)
            raise
        return record_divergence(run, exc, out_dir)
    return write_finished(run, history, out_dir, resumed_at=rows[-1]["iteration"] if rows else None)


def load_training_data(spec: ModelSpec, paths: dict, cache: dict | None = None) -> dict:
    """The data frames a model trains and validates on (`TrainingRun`'s arguments), read from `paths`
    ({split: path}, as `fhnkit.plan.layout.data_files`); frames already in `cache` ({path: frame}) are
    shared, not read again."""
    cache = {} if cache is None else cache

    def read(split):
        path = paths.get(split)
        if path is None:
            return None
        if str(path) not in cache:
            if split != "resampled":  # made by the resampling stage, of the study's own problem
                check_fits(f"model {spec.model}", spec.problem, path)
            cache[str(path)] = pd.read_parquet(path)
        return cache[str(path)]

    if spec.region_data and paths.get("region") is None:
        raise ValueError(f"model {spec.model} trains on its study's region data set: pass region_path")
    if spec.resampled_data and paths.get("resampled") is None:
        raise ValueError(f"model {spec.model} trains on its study's high-error set: pass resampled_path")
    return {"train_df": read("train"), "val_df": read("val"),
            "region_df": read("region") if spec.region_data else None,
            "march_df": read("march") if spec.marching else None,
            "resampled_df": read("resampled") if spec.resampled_data else None}


def write_finished(run: TrainingRun, history: pd.DataFrame, out_dir, resumed_at=None, **meta) -> dict:
    """Write a trained model's `weights.pt`, `spec.json`, `history.parquet` and, last, `metrics.json`
    (the validation errors of its last history row, median iteration time in s); returns the metrics."""
    spec, out_dir = run.spec, Path(out_dir)
    save_model(run.model, out_dir)
    write_parquet(history, out_dir / "history.parquet",
                  {"spec": spec.to_dict(), "versions": versions(), "resumed_at": resumed_at, **meta})
    last = history.iloc[-1]
    metrics = _metrics_base(run)
    # an ITNN is judged on full rollouts (its one-step errors stay in the history)
    key = "val_rollout" if run.rollout is not None else "val"
    metrics.update(iterations=int(last["iteration"]), mean_err=float(last[f"{key}_mean"]),
                   max_err=float(last[f"{key}_max"]), iter_time_s=float(np.median(history["iter_time_s"])),
                   status="ok", training_wall_s=float(last["wall_time_s"]))
    if run.val_params is not None:
        metrics.update(jump_err=float(last["val_jump_mean"]), jump_max_err=float(last["val_jump_max"]))
    if run.march is not None:
        metrics.update(march_err=float(last["val_march_mean"]), march_max_err=float(last["val_march_max"]),
                       march_horizon=spec.marching["horizon"])
    write_json(metrics, out_dir / "metrics.json")
    checkpoint.remove(out_dir)
    return metrics


def _metrics_base(run: TrainingRun) -> dict:
    spec = run.spec.to_dict()
    metrics = {k: spec[k] for k in ("study", "problem", "model", "class", "arch", "layers", "depth", "neurons",
                                    "shape", "batch_size", "seed", "region", "windows")}
    metrics.update(n_params=n_params(run.model), versions=versions(), config_hash=run.spec.config_hash)
    return metrics


def record_divergence(run: TrainingRun, exc: TrainingDiverged, out_dir: Path) -> dict:
    """A diverged model is a result of the study: keep its last finite weights and its history, and
    mark it failed (status, message) so that the rest of the grid and the analysis go on."""
    log.error("%s", exc)
    save_model(run.model, out_dir)
    history = pd.DataFrame(exc.rows, columns=None if exc.rows else ["iteration", "val_mean", "val_max"])
    write_parquet(history, out_dir / "history.parquet", {"spec": run.spec.to_dict(), "versions": versions()})
    metrics = _metrics_base(run)
    metrics.update(iterations=run.iteration, mean_err=None, max_err=None, iter_time_s=None, status="failed",
                   error=str(exc))
    write_json(metrics, out_dir / "metrics.json")
    checkpoint.remove(out_dir)
    return metrics
