"""Loss terms of the training objective (thesis eq. 3.5-3.16).

Each term draws its batches with its own torch.Generator (`draw`; the training run
gives every term one, so that a term's batch sequence does not depend on the other
terms) and turns a network's outputs on a batch into a loss (`value`); `loss` is the
two in one. The total loss is the weighted sum of the terms. Batches are drawn on
the CPU (the generator lives there, so that a run draws the same batches on any
device) and moved to the device of the term's data. `draw_block(gen, n)` draws the
next n batches at once, stacked: the very batches n calls of `draw` would give
(torch's CPU generator fills a tensor element after element, tests/test_terms.py).

`value` reduces over the last axes only, so that it also takes a stack of batches,
one per model of a fleet (`fhnkit.training.fleet`): inputs (models, batch, n_in)
evaluated by a stacked network give one loss per model.
"""

from __future__ import annotations

import itertools

import torch

from ..cell.model import FHNParams, rhs


def first(block):
    """The first batch of a block (a tensor, or a tuple of tensors)."""
    return tuple(part[0] for part in block) if isinstance(block, tuple) else block[0]


def stack_blocks(blocks: list, dim: int = 1):
    """Blocks of several runs (each a tensor or a tuple of tensors) stacked along `dim` (the models' axis)."""
    if isinstance(blocks[0], tuple):
        return tuple(torch.stack(parts, dim=dim) for parts in zip(*blocks, strict=True))
    return torch.stack(blocks, dim=dim)


def to_device(block, device):
    """A block (tensor or tuple) on `device` (from the host's pageable memory: pinning a fresh block of
    hundreds of MB costs more than the copy waits)."""
    return tuple(t.to(device) for t in block) if isinstance(block, tuple) else block.to(device)


class LossTerm:
    """A loss term: draws its batches (`host_block`: n batches on the CPU, with the run's generator for this
    term) and turns a network's outputs on a batch into a loss per model (`value`)."""

    name: str
    batch_size: int
    weight: float

    @property
    def device(self) -> torch.device:
        raise NotImplementedError

    def host_block(self, gen: torch.Generator, n: int):
        """The next n batches, stacked (n, batch, ...), on the CPU."""
        raise NotImplementedError

    def draw_block(self, gen: torch.Generator, n: int):
        """The next n batches, stacked (n, batch, ...), on the term's device."""
        return to_device(self.host_block(gen, n), self.device)

    def draw(self, gen: torch.Generator):
        """The next batch, on the term's device."""
        return first(self.draw_block(gen, 1))

    def loss(self, model, gen: torch.Generator) -> torch.Tensor:
        return self.value(model, self.draw(gen))

    def value(self, model, batch) -> torch.Tensor:
        raise NotImplementedError

    @classmethod
    def group_sampler(cls, terms: list[LossTerm]):
        """draw(gens, n): the next n batches of each of `terms` (one per model of a fleet group, with its
        generator in `gens`), stacked (n, models, batch, ...) on the device: the batches each draws alone."""
        device = terms[0].device
        return lambda gens, n: to_device(stack_blocks([t.host_block(g, n) for t, g in zip(terms, gens, strict=True)]),
                                         device)


class DataTerm(LossTerm):
    """Mean over a random batch of 1/2 * |prediction - solver|^2 (eq. 3.7)."""

    kind = "data"

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, batch_size: int, weight: float, name="data"):
        self.inputs, self.targets = inputs, targets
        self.batch_size, self.weight, self.name = min(batch_size, len(inputs)), weight, name

    @property
    def device(self) -> torch.device:
        return self.inputs.device

    def draw_indices(self, gen: torch.Generator, n: int) -> torch.Tensor:
        """The rows of the next n batches, drawn with replacement: (n, batch) on the CPU."""
        return torch.randint(len(self.inputs), (n, self.batch_size), generator=gen)

    def draw_block(self, gen: torch.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """n random batches of (inputs, targets), drawn with replacement: (n, batch, columns) each."""
        idx = to_device(self.draw_indices(gen, n), self.device)
        return self.inputs[idx], self.targets[idx]

    @classmethod
    def group_sampler(cls, terms: list[DataTerm]):
        """As `LossTerm.group_sampler`, with the rows gathered on the device: the terms' data sets (each one
        once, however many models share it) side by side in one tensor, each model's drawn rows offset to
        its own; per block one copy of the rows to the device and one gather."""
        distinct: dict[int, DataTerm] = {}
        for t in terms:
            distinct.setdefault(id(t.inputs), t)
        sizes = [len(t.inputs) for t in distinct.values()]
        starts = dict(zip(distinct, itertools.accumulate(sizes, initial=0), strict=False))  # one start too many
        offsets = torch.tensor([starts[id(t.inputs)] for t in terms])[None, :, None]
        inputs = torch.cat([t.inputs for t in distinct.values()])
        targets = torch.cat([t.targets for t in distinct.values()])

        def draw(gens, n):
            rows = torch.stack([t.draw_indices(g, n) for t, g in zip(terms, gens, strict=True)], dim=1) + offsets
            rows = to_device(rows, inputs.device)
            return inputs[rows], targets[rows]
        return draw

    def value(self, model, batch) -> torch.Tensor:
        inputs, targets = batch
        err = model(inputs) - targets
        return 0.5 * (err ** 2).sum(dim=-1).mean(dim=-1)

    def to(self, device):
        self.inputs, self.targets = self.inputs.to(device), self.targets.to(device)
        return self


class BoxSampler:
    """Uniform points in the input box [lo, hi]; column 0 is time."""

    def __init__(self, lo, hi):
        self.lo = torch.as_tensor(lo, dtype=torch.float32)
        self.hi = torch.as_tensor(hi, dtype=torch.float32)
        self.device = torch.device("cpu")

    def __call__(self, n: int, gen: torch.Generator, blocks: int | None = None, host: bool = False) -> torch.Tensor:
        """n points (n, inputs); with `blocks`, that many sets of n at once (blocks, n, inputs); on the
        sampler's device, or with `host` on the CPU."""
        shape = (n, self.lo.numel()) if blocks is None else (blocks, n, self.lo.numel())
        points = self.lo + torch.rand(shape, generator=gen) * (self.hi - self.lo)
        return points if host else points.to(self.device)

    def to(self, device):
        self.device = torch.device(device)
        return self


class PhysicsTerm(LossTerm):
    """Mean squared ODE residual d(net)/dt - f(net) at random collocation points (eq. 3.13).

    `current(x)` gives I_app for each collocation point (constant, or from the K column).
    """

    kind = "physics"

    def __init__(self, sampler: BoxSampler, params: FHNParams, current, batch_size: int, weight: float,
                 name="physics"):
        self.sampler, self.params, self.current = sampler, params, current
        self.batch_size, self.weight, self.name = batch_size, weight, name

    @property
    def device(self) -> torch.device:
        return self.sampler.device

    def host_block(self, gen: torch.Generator, n: int) -> torch.Tensor:
        """n batches of random collocation points in the term's box: (n, batch, inputs)."""
        return self.sampler(self.batch_size, gen, blocks=n, host=True)

    def value(self, model, batch) -> torch.Tensor:
        out, slope = model.with_time_derivative(batch)
        fu, fw = rhs(out[..., 0], out[..., 1], self.current(batch), self.params)
        return ((slope[..., 0] - fu) ** 2 + (slope[..., 1] - fw) ** 2).mean(dim=-1)

    def to(self, device):
        self.sampler.to(device)
        return self


class InitialTerm(LossTerm):
    """Mean squared miss of the initial state at t = 0 (eq. 3.15).

    Problem A has one fixed initial state; B and C read (U0, W0) from input columns 1 and 2.
    """

    kind = "initial"

    def __init__(self, sampler: BoxSampler, batch_size: int, weight: float, fixed_state=None, name="initial"):
        self.sampler, self.batch_size, self.weight, self.name = sampler, batch_size, weight, name
        self.fixed = None if fixed_state is None else torch.as_tensor(fixed_state, dtype=torch.float32)

    @property
    def device(self) -> torch.device:
        return self.sampler.device

    def host_block(self, gen: torch.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """n batches of (inputs at t = 0, the initial states they must give): (n, batch, columns) each."""
        if self.fixed is not None:
            return torch.zeros((n, 1, self.sampler.lo.numel())), self.fixed.expand(n, 1, -1).clone()
        x = self.sampler(self.batch_size, gen, blocks=n, host=True)
        x[..., 0] = 0.0
        return x, x[..., 1:3].clone()

    def value(self, model, batch) -> torch.Tensor:
        x, target = batch
        return ((model(x) - target) ** 2).sum(dim=-1).mean(dim=-1)

    def to(self, device):
        self.sampler.to(device)
        return self


class ContinuityTerm(LossTerm):
    """Eq. 3.20: mean over a batch of parameter sets of |net_k(t_k, p) - net_{k+1}(t_k, p)|^2 at every
    interface t_k, averaged over the interfaces."""

    kind = "continuity"

    def __init__(self, sampler, edges, batch_size: int, weight: float, name="continuity"):
        self.sampler, self.edges = sampler, list(edges)
        self.batch_size, self.weight, self.name = batch_size, weight, name

    def loss(self, model, gen: torch.Generator) -> torch.Tensor:
        x = self.sampler(self.batch_size, gen)
        jumps = []
        for k in range(1, len(self.edges) - 1):
            x_k = x.clone()
            x_k[:, 0] = self.edges[k]
            jumps.append(((model.nets[k - 1](x_k) - model.nets[k](x_k)) ** 2).sum(dim=1).mean())
        return torch.stack(jumps).mean()

    def to(self, device):
        self.sampler.to(device)
        return self
