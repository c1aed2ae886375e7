"""Loss terms of the training objective (thesis eq. 3.5-3.16).

Each term turns a network's outputs on a batch into a loss (`value`) and says how its batches
are drawn (`sampler`): counter-based draws (`fhnkit.training.draws`), the k-th batch of a model's
term a pure function of the term's stream seed and k, computed on the term's device. One sampler
draws for one model (a run alone) or for every model of a fleet group at once, stacked
(models, batch, ...): the same batches either way, on any device. The total loss is the weighted
sum of the terms.

`value` reduces over the last axes only, so that it also takes a stack of batches, one per model
of a fleet (`fhnkit.training.fleet`): inputs (models, batch, n_in) evaluated by a stacked network
give one loss per model.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch

from ..cell.model import FHNParams, rhs
from .draws import Draws

# draw number(s) -> a batch per model (models, batch, ...): k is an int64 tensor, one number for all models or
# one per model, or a column (iterations, 1) of numbers, which gives a block of batches (iterations, models, ...)
Sampler = Callable[[torch.Tensor], object]


def mean_rows(values: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
    """The mean over the last axis (a batch's rows), or with `rows` the sum weighted by it (a padded row,
    weighted 0, counts 0 even where its value is not finite)."""
    return values.mean(dim=-1) if rows is None else (torch.where(rows > 0, values, 0.0) * rows).sum(dim=-1)


def entry(batch, i: int = 0):
    """Entry i (by default the first) along the leading axis of a batch (a tensor, or a tuple of tensors): one
    model's batch of a stacked batch, or one iteration's batches of a block."""
    return tuple(part[i] for part in batch) if isinstance(batch, tuple) else batch[i]


class LossTerm:
    """A loss term: `value(model, batch)`, its loss on a batch (per model, for a stacked batch), and
    `sampler(terms, seeds)`, how the batches of one or many such terms are drawn."""

    name: str
    batch_size: int
    weight: float

    @property
    def rows(self) -> int:
        """Rows per batch (the batch size; one for a fixed initial state)."""
        return self.batch_size

    def value(self, model, batch, rows: torch.Tensor | None = None) -> torch.Tensor:
        """The loss on `batch` (per model, for a stacked batch): the mean over its rows, or, with `rows`
        (models, batch), the sum weighted by it (a fleet group pads smaller batches to its largest,
        weighting a model's own rows 1 / its batch size and the padding 0)."""
        raise NotImplementedError

    def loss(self, model, seed: int, k: int = 0) -> torch.Tensor:
        """The loss of one model on its k-th batch of the stream `seed` (as a run draws it alone)."""
        device = next((p.device for p in model.parameters()), self.device)
        return self.value(model, entry(type(self).batch_sampler([self], [seed])(torch.tensor(k, device=device))))

    @property
    def device(self) -> torch.device:
        raise NotImplementedError

    @classmethod
    def batch_sampler(cls, terms: list[LossTerm], seeds: list[int]) -> Sampler:
        """draw(k): the k-th batch of each of `terms` (one per model, drawn from the stream of its seed in
        `seeds`), stacked (models, batch, ...) on the terms' device; k is an int64 tensor, one number per
        model or one for all."""
        raise NotImplementedError


def _first_equal(distinct: list, term) -> int:
    """The index in `distinct` of a data term with the same data as `term` (appended when there is none)."""
    for i, seen in enumerate(distinct):
        same = seen.inputs is term.inputs and seen.targets is term.targets
        if same or (seen.inputs.shape == term.inputs.shape and seen.targets.shape == term.targets.shape
                    and torch.equal(seen.inputs, term.inputs) and torch.equal(seen.targets, term.targets)):
            return i
    distinct.append(term)
    return len(distinct) - 1


class DataTerm(LossTerm):
    """Mean over a random batch of 1/2 * |prediction - solver|^2 (eq. 3.7)."""

    kind = "data"

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, batch_size: int, weight: float, name="data"):
        self.inputs, self.targets = inputs, targets
        self.batch_size, self.weight, self.name = min(batch_size, len(inputs)), weight, name

    @property
    def device(self) -> torch.device:
        return self.inputs.device

    @classmethod
    def batch_sampler(cls, terms: list[DataTerm], seeds: list[int]) -> Sampler:
        """Rows drawn with replacement (each model's from its own data set). The data sets, each once
        however many models share it, lie side by side in one tensor: one gather draws for all."""
        distinct: list[DataTerm] = []  # each data set once (equal sets of different runs are one)
        which = [_first_equal(distinct, t) for t in terms]
        starts = list(itertools.accumulate([len(t.inputs) for t in distinct], initial=0))
        device = terms[0].inputs.device
        offsets = torch.tensor([starts[i] for i in which], device=device)[:, None]
        rows = torch.tensor([len(t.inputs) for t in terms], device=device)[:, None]
        # inputs and targets side by side: one gather of whole rows (index_select: faster than indexing)
        table = torch.cat([torch.cat([t.inputs, t.targets], dim=1) for t in distinct])
        n_inputs = terms[0].inputs.shape[1]
        draws = Draws(seeds, max(t.rows for t in terms), device)

        def draw(k):
            picked = draws(k) % rows + offsets
            batch = table.index_select(0, picked.flatten()).view(*picked.shape, table.shape[1])
            return batch[..., :n_inputs], batch[..., n_inputs:]
        return draw

    def value(self, model, batch, rows: torch.Tensor | None = None) -> torch.Tensor:
        inputs, targets = batch
        err = model(inputs) - targets
        return 0.5 * mean_rows((err ** 2).sum(dim=-1), rows)

    def to(self, device):
        self.inputs, self.targets = self.inputs.to(device), self.targets.to(device)
        return self


class BoxSampler:
    """Uniform points in the input box [lo, hi]; column 0 is time."""

    def __init__(self, lo, hi):
        self.lo = torch.as_tensor(lo, dtype=torch.float32)
        self.hi = torch.as_tensor(hi, dtype=torch.float32)

    @property
    def device(self) -> torch.device:
        return self.lo.device

    @staticmethod
    def points(boxes: list[BoxSampler], seeds: list[int], n: int) -> Sampler:
        """draw(k): n uniform points of each model's box (from its stream), (models, n, inputs)."""
        lo = torch.stack([b.lo for b in boxes])[:, None, :]
        span = torch.stack([b.hi - b.lo for b in boxes])[:, None, :]
        draws = Draws(seeds, n * lo.shape[-1], lo.device)
        def draw(k):
            uniform = draws.uniform(k)
            return lo + uniform.view(*uniform.shape[:-1], n, -1) * span
        return draw

    def to(self, device):
        self.lo, self.hi = self.lo.to(device), self.hi.to(device)
        return self


class BoxTerm(LossTerm):
    """A term whose batches are uniform points of an input box (`self.sampler`, a BoxSampler)."""

    sampler: BoxSampler

    @property
    def device(self) -> torch.device:
        return self.sampler.device

    @classmethod
    def batch_sampler(cls, terms: list[BoxTerm], seeds: list[int]) -> Sampler:
        """Points uniform in each term's box."""
        return BoxSampler.points([t.sampler for t in terms], seeds, max(t.rows for t in terms))

    def to(self, device):
        self.sampler.to(device)
        return self


class PhysicsTerm(BoxTerm):
    """Mean squared ODE residual d(net)/dt - f(net) at random collocation points (eq. 3.13).

    `current(x)` gives I_app for each collocation point (constant, or from the K column).
    """

    kind = "physics"

    def __init__(self, sampler: BoxSampler, params: FHNParams, current, batch_size: int, weight: float,
                 name="physics"):
        self.sampler, self.params, self.current = sampler, params, current
        self.batch_size, self.weight, self.name = batch_size, weight, name

    def value(self, model, batch, rows: torch.Tensor | None = None) -> torch.Tensor:
        out, slope = model.with_time_derivative(batch)
        fu, fw = rhs(out[..., 0], out[..., 1], self.current(batch), self.params)
        return mean_rows((slope[..., 0] - fu) ** 2 + (slope[..., 1] - fw) ** 2, rows)


class InitialTerm(BoxTerm):
    """Mean squared miss of the initial state at t = 0 (eq. 3.15).

    Problem A has one fixed initial state; B and C read (U0, W0) from input columns 1 and 2.
    """

    kind = "initial"

    def __init__(self, sampler: BoxSampler, batch_size: int, weight: float, fixed_state=None, name="initial"):
        self.sampler, self.batch_size, self.weight, self.name = sampler, batch_size, weight, name
        self.fixed = None if fixed_state is None else torch.as_tensor(fixed_state, dtype=torch.float32)

    @classmethod
    def batch_sampler(cls, terms: list[InitialTerm], seeds: list[int]) -> Sampler:
        """(inputs at t = 0, the initial states they must give): uniform in the box with t set to 0, or
        the one fixed state of problem A (nothing random)."""
        if terms[0].fixed is not None:
            x = torch.zeros((len(terms), 1, terms[0].sampler.lo.numel()), device=terms[0].sampler.device)
            fixed = torch.stack([t.fixed for t in terms])[:, None, :].to(x.device)
            return lambda k: (x.expand(*k.shape[:-1], *x.shape), fixed.expand(*k.shape[:-1], *fixed.shape))
        points = super().batch_sampler(terms, seeds)

        def draw(k):
            x = points(k)
            x[..., 0].zero_()  # (not `= 0.0`: that makes a tensor from a host number every iteration)
            return x, x[..., 1:3]
        return draw

    @property
    def rows(self) -> int:
        return 1 if self.fixed is not None else self.batch_size

    def value(self, model, batch, rows: torch.Tensor | None = None) -> torch.Tensor:
        x, target = batch
        return mean_rows(((model(x) - target) ** 2).sum(dim=-1), rows)


class ContinuityTerm(BoxTerm):
    """Eq. 3.20: mean over a batch of parameter sets of |net_k(t_k, p) - net_{k+1}(t_k, p)|^2 at every
    interface t_k, averaged over the interfaces."""

    kind = "continuity"

    def __init__(self, sampler, edges, batch_size: int, weight: float, name="continuity"):
        self.sampler, self.edges = sampler, list(edges)
        self.batch_size, self.weight, self.name = batch_size, weight, name

    def value(self, model, batch, rows: torch.Tensor | None = None) -> torch.Tensor:
        """One model's (windowed) continuity loss on points x (batch, inputs) (never stacked: no `rows`)."""
        jumps = []
        for k in range(1, len(self.edges) - 1):
            x_k = batch.clone()
            x_k[:, 0] = self.edges[k]
            jumps.append(((model.nets[k - 1](x_k) - model.nets[k](x_k)) ** 2).sum(dim=1).mean())
        return torch.stack(jumps).mean()
