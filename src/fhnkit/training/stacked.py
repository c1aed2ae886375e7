"""Many MLPs of one depth as one batched computation, for training them together (a fleet).

Model i's layer l is the top-left corner of a zero-padded weight tensor of shape
(models, widest output, widest input): one `baddbmm` evaluates every model's layer.
A padded unit's activation is masked to 0, so it contributes nothing downstream and
its weights get no gradient: padding never changes a model's outputs or gradients
(only the floating-point order of a matrix product's sums). Each model keeps its own
activation per layer, input/output scaling and weights.
"""

from __future__ import annotations

import torch
from torch import nn

from ..nets.mlp import ACTIVATIONS, MLP


def _linears(net: MLP) -> list[nn.Linear]:
    return [m for m in net.net if isinstance(m, nn.Linear)]


def stack_key(net: nn.Module) -> tuple | None:
    """What models must share to be stacked (exact type MLP or its iterator subclass, depth, inputs and
    outputs); None for a network that cannot be stacked (e.g. one MLP per time window)."""
    if not isinstance(net, MLP):
        return None
    linears = _linears(net)
    return (type(net).__name__, len(linears), linears[0].in_features, linears[-1].out_features)


class StackedMLP(nn.Module):
    """`len(nets)` MLPs of equal depth, inputs and outputs, evaluated together on (models, batch, n_in)."""

    def __init__(self, nets: list[MLP]):
        super().__init__()
        keys = {stack_key(net) for net in nets}
        if len(keys) != 1 or None in keys:
            raise ValueError(f"cannot stack networks of different kinds, depths, inputs or outputs: {keys}")
        layers = [_linears(net) for net in nets]
        n_models, depth = len(nets), len(layers[0])
        device = layers[0][0].weight.device
        self.weights, self.biases = nn.ParameterList(), nn.ParameterList()
        for depth_i in range(depth):
            n_out = max(ls[depth_i].out_features for ls in layers)
            n_in = max(ls[depth_i].in_features for ls in layers)
            weight = torch.zeros((n_models, n_out, n_in), device=device)
            bias = torch.zeros((n_models, n_out), device=device)
            for i, ls in enumerate(layers):
                lin = ls[depth_i]
                weight[i, : lin.out_features, : lin.in_features] = lin.weight.detach()
                bias[i, : lin.out_features] = lin.bias.detach()
            self.weights.append(nn.Parameter(weight))
            self.biases.append(nn.Parameter(bias))
        # per hidden layer: which units exist (1) or pad (0), and which activation each model applies
        self.unit_masks = []
        self.activations = []
        for depth_i in range(depth - 1):
            width = self.weights[depth_i].shape[1]
            mask = torch.zeros((n_models, 1, width), device=device)
            for i, net in enumerate(nets):
                mask[i, 0, : net.spec["layers"][depth_i][1]] = 1.0
            self.unit_masks.append(mask)
            names = [net.spec["layers"][depth_i][0] for net in nets]
            self.activations.append([(name, ACTIVATIONS[name](),
                                      torch.tensor([n == name for n in names], device=device).view(-1, 1, 1))
                                     for name in sorted(set(names))])
        for name in ("input_offset", "input_scale", "output_offset", "output_scale"):
            self.register_buffer(name, torch.stack([getattr(net, name) for net in nets]).unsqueeze(1))

    @property
    def n_models(self) -> int:
        return self.weights[0].shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (models, batch, n_inputs) in model units -> (models, batch, n_outputs) in model units."""
        z = (x - self.input_offset) / self.input_scale
        for depth_i, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            z = torch.baddbmm(bias.unsqueeze(1), z, weight.transpose(1, 2))
            if depth_i < len(self.activations):
                z = self._activate(depth_i, z) * self.unit_masks[depth_i]
        return z * self.output_scale + self.output_offset

    def _activate(self, depth_i: int, z: torch.Tensor) -> torch.Tensor:
        acts = self.activations[depth_i]
        if len(acts) == 1:
            return acts[0][1](z)
        out = torch.zeros_like(z)
        for _, act, which in acts:
            out = torch.where(which, act(z), out)
        return out

    @torch.no_grad()
    def copy_into(self, i: int, net: MLP) -> None:
        """Write model i's weights into `net` (the network it was stacked from)."""
        for lin, weight, bias in zip(_linears(net), self.weights, self.biases, strict=True):
            lin.weight.copy_(weight[i, : lin.out_features, : lin.in_features])
            lin.bias.copy_(bias[i, : lin.out_features])
