"""What a trained surrogate network says about itself, so that callers ask it instead of reading its spec.

Every network `load_model` rebuilds is a `Surrogate`: a torch module with its
portable `spec` (`fhnkit.nets.mlp`) that knows its kind of surrogate. A
continuous network (an MLP of (t, parameters), `fhnkit.nets.mlp.MLP`, or one
MLP per time window, `fhnkit.nets.windows.WindowedMLP`) is evaluated at any
time; an iterator network (`fhnkit.nets.itnn.IteratorMLP`) answers the state
one step Δt later and is rolled out by feeding back (eq. 3.18). Which class a
saved spec describes is decided once, by `fhnkit.nets.mlp.network_class`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:  # pandas is not needed to load and run a network
    import pandas as pd


class Surrogate(nn.Module):
    """A trained network and its spec; by default a continuous network of (t, parameters) on one domain.

    Subclasses set `spec` in their constructor and override what differs for their kind.
    """

    spec: dict

    def with_time_derivative(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(outputs, d outputs / d t) at x (batch, n_inputs), t being input column 0, both differentiable
        (a PINN's residual is trained on them); by autograd here, by forward mode where a network can."""
        x = x.detach().requires_grad_(True)
        out = self(x)
        slopes = [torch.autograd.grad(out[..., k].sum(), x, create_graph=True)[0][..., 0]
                  for k in range(out.shape[-1])]
        return out, torch.stack(slopes, dim=-1)

    @property
    def inputs(self) -> list[str]:
        """Names of the input columns, in order."""
        return list(self.spec["inputs"])

    @property
    def iterator_dt(self) -> float | None:
        """Δt of one step of an iterator network (eq. 3.18); None for a continuous network."""
        return None

    @property
    def is_iterator(self) -> bool:
        """Whether the network steps a state Δt ahead (rolled out) instead of answering the state at t."""
        return self.iterator_dt is not None

    @property
    def n_windows(self) -> int:
        """How many time windows the network's domain is split into (1: one network on the whole domain)."""
        return 1

    def examples(self, df: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets) float32 tensors the network is judged on over the rows of a solved data set:
        for a continuous network, each row's inputs and its state (U, W)."""
        return (torch.tensor(df[self.inputs].to_numpy(np.float32)),
                torch.tensor(df[list(self.spec["outputs"])].to_numpy(np.float32)))
