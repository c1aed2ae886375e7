"""Time-domain splitting into consecutive windows (thesis 3.4.1, first variant).

The time domain [0, t_max] is cut into n equal windows; each has its own
network, scaled to its own window, and trained only on the points inside it.
The networks are trained together, coupled by the continuity term of eq. 3.20 (`fhnkit.training.terms.ContinuityTerm`):
at each interface t_k, the previous and the next window's networks must give
the same state for the same parameters. `WindowedMLP` routes every input row
to the network of its window, so it is used exactly like one MLP (training
terms, validation, benchmark, export).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .base import Surrogate
from .mlp import MLP, make_spec


class WindowedMLP(Surrogate):
    """One MLP per time window; a row with t in [t_k, t_{k+1}) goes to network k (t_max to the last).

    `spec` is the spec of the whole model: inputs, outputs, layers (of each window's network),
    `window_edges`, and `windows`, the list of the per-window MLP specs.
    """

    def __init__(self, spec: dict):
        super().__init__()
        self.spec = spec
        self.nets = nn.ModuleList(MLP(s) for s in spec["windows"])
        self.register_buffer("inner_edges", torch.tensor(spec["window_edges"][1:-1], dtype=torch.float32))

    @property
    def n_windows(self) -> int:
        """Number of time windows, each with its own network."""
        return len(self.nets)

    def window_of(self, t: torch.Tensor) -> torch.Tensor:
        """Index of the window of each time (an interface belongs to the later window)."""
        return torch.bucketize(t.contiguous(), self.inner_edges, right=True)

    def forward(self, x):
        """x: (batch, n_inputs), time first, in model units -> (batch, n_outputs)."""
        which = self.window_of(x[:, 0])
        out = x.new_zeros((x.shape[0], len(self.spec["outputs"])))
        for k, net in enumerate(self.nets):
            rows = torch.nonzero(which == k).squeeze(1)
            out = out.index_copy(0, rows, net(x.index_select(0, rows)))
        return out


def windowed_spec(inputs, outputs, layers, input_lo, input_hi, edges, output_ranges) -> dict:
    """Spec of a WindowedMLP: window k's network maps t in [edges[k], edges[k+1]] and the other inputs
    in [input_lo, input_hi] to [-1, 1]; `output_ranges[k]` is (lo, hi) of the outputs in window k."""
    nets = []
    for k, (y_lo, y_hi) in enumerate(output_ranges):
        lo, hi = np.array(input_lo, float), np.array(input_hi, float)
        lo[0], hi[0] = edges[k], edges[k + 1]
        y_lo, y_hi = np.asarray(y_lo, float), np.asarray(y_hi, float)
        nets.append(make_spec(inputs, outputs, layers, lo, hi, (y_lo + y_hi) / 2, np.maximum((y_hi - y_lo) / 2, 1e-3)))
    shared = {k: nets[0][k] for k in ("inputs", "outputs", "layers", "fhnkit_version")}
    return {**shared, "window_edges": [float(e) for e in edges], "windows": nets}


@torch.no_grad()
def interface_jumps(model: WindowedMLP, params: torch.Tensor) -> np.ndarray:
    """|dU| + |dW| between neighbouring windows' networks at each interface, for each parameter row
    (params: (n, n_inputs - 1)): array (n_interfaces, n)."""
    device = model.inner_edges.device
    out = []
    for k in range(1, len(model.spec["window_edges"]) - 1):
        t = torch.full((len(params), 1), model.spec["window_edges"][k])
        x = torch.cat([t, params], dim=1).to(device)
        out.append((model.nets[k - 1](x) - model.nets[k](x)).abs().sum(dim=1).cpu().numpy())
    return np.stack(out)
