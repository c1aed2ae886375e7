"""A fleet: many models of a study trained in one process as a few batched computations per iteration.

Each model stays itself. It is built exactly as when trained alone (`TrainingRun`: same
initial weights, same loss terms and weights, same batch generator, so the same batch
sequence), and keeps its own Adam state, learning rate and ReduceLROnPlateau schedule and
its own divergence. Models whose networks can be stacked (`stacked.stack_key`: same depth,
inputs, outputs) and whose loss terms match (same terms and batch sizes) form one group,
evaluated as one `StackedMLP`; any other model (one network per time window) steps alone.
The only difference from training alone is the floating-point order of the batched matrix
products (tests/test_fleet.py measures it).
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import torch

from ..plan.kinds import kind_of
from .stacked import StackedMLP, stack_key
from .train import TrainingDiverged, TrainingRun

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8  # torch.optim.Adam's defaults, as the solo run uses


def _term_key(run: TrainingRun) -> tuple:
    return tuple((type(t).__name__, t.name, t.batch_size, t.weight) for t in run.terms)


def group_key(run: TrainingRun) -> tuple | None:
    """Runs with equal keys train as one stacked group; None: the run steps alone."""
    net = stack_key(run.model)
    if net is None:
        return None
    return (net, run.spec["study"], str(run.device), _term_key(run))


def _stack(batches: list):
    """One batch per model -> the stacked batch (a tensor, or a tuple of tensors)."""
    if isinstance(batches[0], tuple):
        return tuple(torch.stack(parts) for parts in zip(*batches, strict=True))
    return torch.stack(batches)


class _Plateau:
    """ReduceLROnPlateau (mode min, relative threshold, no cooldown) for each model of a group."""

    def __init__(self, runs: list[TrainingRun]):
        p = [run.spec["training"]["plateau"] for run in runs]
        self.factor = np.array([x["factor"] for x in p])
        self.patience = np.array([x["patience"] for x in p])
        self.threshold = np.array([x["threshold"] for x in p])
        self.min_lr = np.array([x["min_lr"] for x in p])
        self.eps = np.array([x["eps"] for x in p])
        self.best = np.full(len(runs), np.inf)
        self.bad = np.zeros(len(runs), dtype=np.int64)

    def step(self, lr: np.ndarray, loss: np.ndarray, active: np.ndarray) -> np.ndarray:
        better = loss < self.best * (1.0 - self.threshold)
        self.best = np.where(active & better, loss, self.best)
        self.bad = np.where(active, np.where(better, 0, self.bad + 1), self.bad)
        reduce = active & (self.bad > self.patience)
        new_lr = np.maximum(lr * self.factor, self.min_lr)
        lr = np.where(reduce & (lr - new_lr > self.eps), new_lr, lr)
        self.bad = np.where(reduce, 0, self.bad)
        return lr


class StackedGroup:
    """Runs trained as one stacked network: one forward, one backward and one Adam update per iteration."""

    def __init__(self, runs: list[TrainingRun]):
        self.runs = runs
        self.net = StackedMLP([run.model for run in runs])
        self.terms = runs[0].terms  # the same terms for every run of the group (`group_key`): one computes
        self.weights = torch.tensor([[t.weight for t in run.terms] for run in runs],
                                    device=self.net.weights[0].device).T  # (terms, models)
        self.lr = np.array([run.optimizer.param_groups[0]["lr"] for run in runs], dtype=np.float64)
        self.steps = np.zeros(len(runs), dtype=np.int64)
        self.active = np.ones(len(runs), dtype=bool)
        self.plateau = _Plateau(runs)
        self.moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in self.net.parameters()]

    def step(self) -> list[dict[str, float] | TrainingDiverged | None]:
        """One iteration of every active run: per run its loss values, a TrainingDiverged for a run
        whose loss became non-finite this iteration (frozen from now on), or None for a frozen run."""
        batches = []  # per term: the runs' batches stacked (a frozen run's: zeros, to keep the shapes)
        for i in range(len(self.terms)):
            drawn = [self.runs[j].terms[i].draw(self.runs[j].gen) if self.active[j] else None
                     for j in range(len(self.runs))]
            template = next(b for b in drawn if b is not None)
            filler = tuple(torch.zeros_like(x) for x in template) if isinstance(template, tuple) else (
                torch.zeros_like(template))
            batches.append(_stack([b if b is not None else filler for b in drawn]))
        losses = torch.stack([term.value(self.net, batch) for term, batch in zip(self.terms, batches, strict=True)])
        total = (self.weights * losses).sum(dim=0)  # (models,)
        values = torch.cat([losses, total[None]]).detach().cpu().numpy().astype(np.float64)  # (terms + 1, models)
        finite = np.isfinite(values).all(axis=0)
        results: list = [None] * len(self.runs)
        diverged = self.active & ~finite
        for j in np.flatnonzero(diverged):
            results[j] = self._divergence(j, values[:, j])
        self.active &= finite
        for j in np.flatnonzero(self.active):
            results[j] = {f"loss_{t.name}": float(values[i, j]) for i, t in enumerate(self.terms)}
            results[j]["loss_total"] = float(values[-1, j])
        if self.active.any():
            self.net.zero_grad(set_to_none=True)
            keep = torch.as_tensor(self.active, device=total.device)
            torch.where(keep, total, torch.zeros_like(total)).sum().backward()
            self._adam(keep)
            self.lr = self.plateau.step(self.lr, values[-1], self.active)
        for j, run in enumerate(self.runs):
            if results[j] is not None and not isinstance(results[j], TrainingDiverged):
                run.iteration += 1
        return results

    def _divergence(self, j: int, values: np.ndarray) -> TrainingDiverged:
        run = self.runs[j]
        run.iteration += 1
        names = [f"loss_{t.name}" for t in self.terms] + ["loss_total"]
        bad = [f"{n}={v}" for n, v in zip(names, values, strict=True) if not math.isfinite(v)]
        advice = "lower training.lr" + (" or training.weights.physics" if kind_of(run.spec).physics else "")
        return TrainingDiverged(f"model {run.spec['study']}/{run.spec['model']} diverged at iteration "
                                f"{run.iteration}: {', '.join(bad)}; {advice}")

    @torch.no_grad()
    def _adam(self, keep: torch.Tensor) -> None:
        """torch.optim.Adam's update (single-tensor form) with each model's own step count and rate;
        a frozen model's weights do not move."""
        self.steps += self.active
        steps = np.maximum(self.steps, 1)
        bias1, bias2 = 1.0 - BETA1 ** steps, 1.0 - BETA2 ** steps
        device = self.net.weights[0].device
        step_size = torch.as_tensor(np.where(self.active, self.lr / bias1, 0.0), dtype=torch.float32, device=device)
        bias2_sqrt = torch.as_tensor(np.sqrt(bias2), dtype=torch.float32, device=device)
        for param, (exp_avg, exp_avg_sq) in zip(self.net.parameters(), self.moments, strict=True):
            view = (-1,) + (1,) * (param.dim() - 1)
            grad = torch.where(keep.view(view), param.grad, torch.zeros_like(param.grad))
            exp_avg.lerp_(grad, 1 - BETA1)
            exp_avg_sq.mul_(BETA2).addcmul_(grad, grad, value=1 - BETA2)
            denom = (exp_avg_sq.sqrt() / bias2_sqrt.view(view)).add_(EPS)
            param.add_(-step_size.view(view) * exp_avg / denom)

    def sync(self) -> None:
        """Each run's own network (and learning rate) made equal to its slice of the stack."""
        for j, run in enumerate(self.runs):
            self.net.copy_into(j, run.model)
            run.optimizer.param_groups[0]["lr"] = float(self.lr[j])


class SoloGroup:
    """A run whose network cannot be stacked, stepped alone by its own `TrainingRun.step`."""

    def __init__(self, run: TrainingRun):
        self.runs, self.active = [run], np.ones(1, dtype=bool)

    def step(self) -> list:
        if not self.active[0]:
            return [None]
        try:
            return [self.runs[0].step()]
        except TrainingDiverged as exc:
            self.active[0] = False
            return [exc]

    def sync(self) -> None:
        pass


def make_groups(runs: list[TrainingRun]) -> list:
    """The stacked groups (and solo runs) of a fleet, in the order of their first run."""
    groups: dict = {}
    solos = []
    for run in runs:
        key = group_key(run)
        if key is None:
            solos.append(SoloGroup(run))
        else:
            groups.setdefault(key, []).append(run)
    return [StackedGroup(members) for members in groups.values()] + solos


def fit_fleet(runs: list[TrainingRun], iterations: int | None = None) -> list[pd.DataFrame | TrainingDiverged]:
    """Train every run to its `training.iterations` (or `iterations`), validating each every
    `validate_every` as `fit` does; returns per run its history, or the TrainingDiverged that
    stopped it (with `.rows`, its history until then). Each row's `iter_time_s` is the run's
    share of its group's iteration time (group time / models in the group)."""
    groups = make_groups(runs)
    rows: dict[int, list] = {id(run): [] for run in runs}
    windows: dict[int, list] = {id(run): [] for run in runs}
    times = dict.fromkeys(map(id, runs), 0.0)
    outcome: dict[int, object] = {}
    start = time.perf_counter()
    total = {id(run): iterations or run.spec["training"]["iterations"] for run in runs}
    for group in groups:
        while any(run.iteration < total[id(run)] and group.active[j] for j, run in enumerate(group.runs)):
            t0 = time.perf_counter()
            results = group.step()
            n_live = max(sum(r is not None for r in results), 1)
            elapsed = (time.perf_counter() - t0) / n_live
            due = []
            for j, (run, result) in enumerate(zip(group.runs, results, strict=True)):
                if result is None:
                    continue
                if isinstance(result, TrainingDiverged):
                    result.rows = rows[id(run)]
                    outcome[id(run)] = result
                    continue
                windows[id(run)].append(result)
                times[id(run)] += elapsed
                every = run.spec["training"]["validate_every"]
                if run.iteration % every == 0 or run.iteration == total[id(run)]:
                    due.append(j)
                if run.iteration >= total[id(run)]:
                    group.active[j] = False
            if due:
                group.sync()
                for j in due:
                    run = group.runs[j]
                    window = windows[id(run)]
                    row = {"iteration": run.iteration, "lr": run.optimizer.param_groups[0]["lr"]}
                    row.update(pd.DataFrame(window).mean().to_dict())
                    row.update(run.validation_row(), iter_time_s=times[id(run)] / len(window),
                               wall_time_s=time.perf_counter() - start)
                    rows[id(run)].append(row)
                    windows[id(run)], times[id(run)] = [], 0.0
        group.sync()
    return [outcome.get(id(run), pd.DataFrame(rows[id(run)])) for run in runs]
