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

import torch

from ..cell.model import FHNParams, rhs


def first(block):
    """The first batch of a block (a tensor, or a tuple of tensors)."""
    return tuple(part[0] for part in block) if isinstance(block, tuple) else block[0]


class DataTerm:
    """Mean over a random batch of 1/2 * |prediction - solver|^2 (eq. 3.7)."""

    kind = "data"

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, batch_size: int, weight: float, name="data"):
        self.inputs, self.targets = inputs, targets
        self.batch_size, self.weight, self.name = min(batch_size, len(inputs)), weight, name

    def draw_block(self, gen: torch.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """n random batches of (inputs, targets), drawn with replacement: (n, batch, columns) each."""
        idx = torch.randint(len(self.inputs), (n, self.batch_size), generator=gen).to(self.inputs.device)
        return self.inputs[idx], self.targets[idx]

    def draw(self, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """A random batch of (inputs, targets), drawn with replacement."""
        return first(self.draw_block(gen, 1))

    def value(self, model, batch) -> torch.Tensor:
        inputs, targets = batch
        err = model(inputs) - targets
        return 0.5 * (err ** 2).sum(dim=-1).mean(dim=-1)

    def loss(self, model, gen: torch.Generator) -> torch.Tensor:
        return self.value(model, self.draw(gen))

    def to(self, device):
        self.inputs, self.targets = self.inputs.to(device), self.targets.to(device)
        return self


class BoxSampler:
    """Uniform points in the input box [lo, hi]; column 0 is time."""

    def __init__(self, lo, hi):
        self.lo = torch.as_tensor(lo, dtype=torch.float32)
        self.hi = torch.as_tensor(hi, dtype=torch.float32)
        self.device = torch.device("cpu")

    def __call__(self, n: int, gen: torch.Generator, blocks: int | None = None) -> torch.Tensor:
        """n points (n, inputs); with `blocks`, that many sets of n at once (blocks, n, inputs)."""
        shape = (n, self.lo.numel()) if blocks is None else (blocks, n, self.lo.numel())
        return (self.lo + torch.rand(shape, generator=gen) * (self.hi - self.lo)).to(self.device)

    def to(self, device):
        self.device = torch.device(device)
        return self


class PhysicsTerm:
    """Mean squared ODE residual d(net)/dt - f(net) at random collocation points (eq. 3.13).

    `current(x)` gives I_app for each collocation point (constant, or from the K column).
    """

    kind = "physics"

    def __init__(self, sampler: BoxSampler, params: FHNParams, current, batch_size: int, weight: float,
                 name="physics"):
        self.sampler, self.params, self.current = sampler, params, current
        self.batch_size, self.weight, self.name = batch_size, weight, name

    def draw_block(self, gen: torch.Generator, n: int) -> torch.Tensor:
        """n batches of random collocation points in the term's box: (n, batch, inputs)."""
        return self.sampler(self.batch_size, gen, blocks=n)

    def draw(self, gen: torch.Generator) -> torch.Tensor:
        """Random collocation points in the term's box."""
        return first(self.draw_block(gen, 1))

    def value(self, model, batch) -> torch.Tensor:
        out, slope = model.with_time_derivative(batch)
        fu, fw = rhs(out[..., 0], out[..., 1], self.current(batch), self.params)
        return ((slope[..., 0] - fu) ** 2 + (slope[..., 1] - fw) ** 2).mean(dim=-1)

    def loss(self, model, gen: torch.Generator) -> torch.Tensor:
        return self.value(model, self.draw(gen))

    def to(self, device):
        self.sampler.to(device)
        return self


class InitialTerm:
    """Mean squared miss of the initial state at t = 0 (eq. 3.15).

    Problem A has one fixed initial state; B and C read (U0, W0) from input columns 1 and 2.
    """

    kind = "initial"

    def __init__(self, sampler: BoxSampler, batch_size: int, weight: float, fixed_state=None, name="initial"):
        self.sampler, self.batch_size, self.weight, self.name = sampler, batch_size, weight, name
        self.fixed = None if fixed_state is None else torch.as_tensor(fixed_state, dtype=torch.float32)

    def draw_block(self, gen: torch.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """n batches of (inputs at t = 0, the initial states they must give): (n, batch, columns) each."""
        if self.fixed is not None:
            x = torch.zeros((n, 1, self.sampler.lo.numel()), device=self.sampler.device)
            return x, self.fixed.to(self.sampler.device).expand(n, 1, -1)
        x = self.sampler(self.batch_size, gen, blocks=n)
        x[..., 0] = 0.0
        return x, x[..., 1:3]

    def draw(self, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs at t = 0, the initial states they must give)."""
        return first(self.draw_block(gen, 1))

    def value(self, model, batch) -> torch.Tensor:
        x, target = batch
        return ((model(x) - target) ** 2).sum(dim=-1).mean(dim=-1)

    def loss(self, model, gen: torch.Generator) -> torch.Tensor:
        return self.value(model, self.draw(gen))

    def to(self, device):
        self.sampler.to(device)
        return self


class ContinuityTerm:
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
