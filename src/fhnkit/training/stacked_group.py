"""The runs of one fleet group trained as one stacked network, with everything on the device.

Per iteration there is one forward, one backward and one Adam update for the whole group, and
no host synchronisation: losses, each model's Adam step count and learning rate, its
ReduceLROnPlateau state and its divergence stay on the device; batches are drawn on the CPU by
each run's own generator (the solo batch sequence), a block of iterations at a time, and sent
in one copy. The host reads the state back only between blocks (`collect`), when the models are
validated. A model whose loss becomes NaN or infinite is frozen in that very iteration, before
its update, as a run alone stops: its weights stay the last finite ones.
"""

from __future__ import annotations

import math

import torch

from ..plan.kinds import kind_of
from .stacked import StackedMLP
from .train import TrainingDiverged, TrainingRun

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8  # torch.optim.Adam's defaults, as the solo run uses


def _stack(batches: list):
    """One batch per item -> the stacked batch (a tensor, or a tuple of tensors)."""
    if isinstance(batches[0], tuple):
        return tuple(torch.stack(parts) for parts in zip(*batches, strict=True))
    return torch.stack(batches)


def _index(batch, k: int):
    return tuple(part[k] for part in batch) if isinstance(batch, tuple) else batch[k]


def _to(batch, device):
    if isinstance(batch, tuple):
        return tuple(part.to(device, non_blocking=True) for part in batch)
    return batch.to(device, non_blocking=True)


class StackedGroup:
    """Runs with one network shape, loss terms and schedule (`fleet.group_key`), trained as one."""

    def __init__(self, runs: list[TrainingRun]):
        self.runs = runs
        self.net = StackedMLP([run.model for run in runs])
        self.terms = runs[0].terms  # every run of the group has these terms: one of them computes for all
        device = self.device = self.net.weights[0].device
        n = len(runs)
        f64 = {"dtype": torch.float64, "device": device}
        self.weights = torch.tensor([[t.weight for t in run.terms] for run in runs], device=device).T
        self.lr = torch.tensor([run.optimizer.param_groups[0]["lr"] for run in runs], **f64)
        self.steps = torch.zeros(n, **f64)
        self.active = torch.ones(n, dtype=torch.bool, device=device)
        self.diverged_at = torch.full((n,), -1, dtype=torch.int64, device=device)
        self.bad_values = torch.zeros((len(self.terms) + 1, n), **f64)
        self.window_sum = torch.zeros((len(self.terms) + 1, n), **f64)
        self.window_n = torch.zeros(n, dtype=torch.int64, device=device)
        plateau = [run.spec["training"]["plateau"] for run in runs]
        self.plateau = {key: torch.tensor([p[key] for p in plateau], **f64)
                        for key in ("factor", "patience", "threshold", "min_lr", "eps")}
        self.best = torch.full((n,), math.inf, **f64)
        self.bad = torch.zeros(n, **f64)
        self.moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in self.net.parameters()]
        self.iteration = runs[0].iteration

    def _draw(self, n_iterations: int) -> list:
        """The next `n_iterations` batches of every run, drawn in the order a run alone draws them
        (iteration by iteration, term by term), stacked per term as (iterations, models, ...)."""
        drawn = [[[] for _ in self.runs] for _ in self.terms]
        for _ in range(n_iterations):
            for j, run in enumerate(self.runs):
                for i, term in enumerate(run.terms):
                    drawn[i][j].append(term.draw(run.gen))
        return [_to(_stack([_stack(per_run) for per_run in zip(*per_term, strict=True)]), self.device)
                for per_term in drawn]

    def advance(self, n_iterations: int) -> None:
        """Train every run of the group `n_iterations` further (a frozen run stays as it is)."""
        staged = self._draw(n_iterations)
        for k in range(n_iterations):
            batches = [_index(batch, k) for batch in staged]
            losses = torch.stack([t.value(self.net, b) for t, b in zip(self.terms, batches, strict=True)])
            total = (self.weights * losses).sum(dim=0)
            values = torch.cat([losses, total[None]]).detach().double()
            newly = self.active & ~torch.isfinite(values).all(dim=0)
            self.diverged_at = torch.where(newly, self.iteration + k + 1, self.diverged_at)
            self.bad_values = torch.where(newly, values, self.bad_values)
            self.active = self.active & ~newly
            self.window_sum += torch.where(self.active, values, 0.0)
            self.window_n += self.active
            self.net.zero_grad(set_to_none=True)
            torch.where(self.active, total, torch.zeros_like(total)).sum().backward()
            self._adam()
            self._plateau(values[-1])
        self.iteration += n_iterations

    @torch.no_grad()
    def _adam(self) -> None:
        """torch.optim.Adam's update (its single-tensor form), each model with its own step count and rate."""
        self.steps += self.active
        steps = self.steps.clamp(min=1)
        bias1, bias2 = 1.0 - BETA1 ** steps, 1.0 - BETA2 ** steps
        step_size = torch.where(self.active, self.lr / bias1, 0.0).float()
        bias2_sqrt = bias2.sqrt().float()
        for param, (exp_avg, exp_avg_sq) in zip(self.net.parameters(), self.moments, strict=True):
            view = (-1,) + (1,) * (param.dim() - 1)
            grad = torch.where(self.active.view(view), param.grad, 0.0)
            exp_avg.lerp_(grad, 1 - BETA1)
            exp_avg_sq.mul_(BETA2).addcmul_(grad, grad, value=1 - BETA2)
            denom = (exp_avg_sq.sqrt() / bias2_sqrt.view(view)).add_(EPS)
            param.add_(-step_size.view(view) * exp_avg / denom)

    def _plateau(self, loss: torch.Tensor) -> None:
        """ReduceLROnPlateau (mode min, relative threshold, no cooldown) of every model."""
        p, on = self.plateau, self.active
        better = loss < self.best * (1.0 - p["threshold"])
        self.best = torch.where(on & better, loss, self.best)
        self.bad = torch.where(on, torch.where(better, 0.0, self.bad + 1), self.bad)
        reduce = on & (self.bad > p["patience"])
        new_lr = torch.maximum(self.lr * p["factor"], p["min_lr"])
        self.lr = torch.where(reduce & (self.lr - new_lr > p["eps"]), new_lr, self.lr)
        self.bad = torch.where(reduce, 0.0, self.bad)

    def collect(self) -> list[dict | TrainingDiverged | None]:
        """Read the block back (one synchronisation): each run's network, learning rate and iteration
        updated; per run the mean of its loss values over the block, a TrainingDiverged for a run that
        diverged in it, or None for one frozen before it."""
        names = [f"loss_{t.name}" for t in self.terms] + ["loss_total"]
        sums, counts = self.window_sum.T.tolist(), self.window_n.tolist()
        diverged_at, bad_values, lrs = self.diverged_at.tolist(), self.bad_values.T.tolist(), self.lr.tolist()
        results = []
        for j, run in enumerate(self.runs):
            self.net.copy_into(j, run.model)
            run.optimizer.param_groups[0]["lr"] = lrs[j]
            if diverged_at[j] >= 0:
                results.append(self._divergence(run, diverged_at[j], dict(zip(names, bad_values[j], strict=True)))
                               if run.iteration < diverged_at[j] else None)
                run.iteration = diverged_at[j]
                continue
            run.iteration = self.iteration
            results.append({n: s / counts[j] for n, s in zip(names, sums[j], strict=True)} if counts[j] else None)
        self.window_sum.zero_()
        self.window_n.zero_()
        return results

    @staticmethod
    def _divergence(run: TrainingRun, iteration: int, values: dict) -> TrainingDiverged:
        bad = ", ".join(f"{k}={v}" for k, v in values.items() if not math.isfinite(v))
        advice = "lower training.lr" + (" or training.weights.physics" if kind_of(run.spec).physics else "")
        return TrainingDiverged(f"model {run.spec['study']}/{run.spec['model']} diverged at iteration "
                                f"{iteration}: {bad}; {advice}")

    # every tensor of the group's training state, by attribute name (the stacked weights are the net's)
    _STATE = ("lr", "steps", "active", "diverged_at", "bad_values", "best", "bad")

    def state_dict(self) -> dict:
        """Everything that determines the rest of the group's training, at a block boundary: the stacked
        weights and Adam moments, every model's rate, steps, plateau and divergence state, iteration and
        batch generator state, and which models (by name and config hash) it holds."""
        return {"models": [(run.spec["model"], run.spec.get("config_hash")) for run in self.runs],
                "iteration": self.iteration, "net": self.net.state_dict(),
                "moments": [(m.clone(), v.clone()) for m, v in self.moments],
                "tensors": {name: getattr(self, name).clone() for name in self._STATE},
                "generators": [run.gen.get_state() for run in self.runs],
                "run_iterations": [run.iteration for run in self.runs]}

    def load_state_dict(self, state: dict) -> None:
        """Continue from `state_dict()` of a group of the same models; the runs' networks follow."""
        models = [(run.spec["model"], run.spec.get("config_hash")) for run in self.runs]
        if state["models"] != models:
            raise ValueError("the checkpoint holds other models (or the same with another config)")
        self.net.load_state_dict(state["net"])
        with torch.no_grad():
            for (m, v), (m0, v0) in zip(self.moments, state["moments"], strict=True):
                m.copy_(m0)
                v.copy_(v0)
        for name in self._STATE:
            setattr(self, name, state["tensors"][name].to(self.device))
        self.iteration = state["iteration"]
        lrs = self.lr.tolist()
        for j, (run, gen, it) in enumerate(zip(self.runs, state["generators"], state["run_iterations"], strict=True)):
            run.gen.set_state(gen)
            run.iteration = it
            run.optimizer.param_groups[0]["lr"] = lrs[j]
            self.net.copy_into(j, run.model)
