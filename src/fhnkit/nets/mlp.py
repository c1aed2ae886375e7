"""The multi-layer perceptron of SPEC.md section 4, and its portable spec.

A model is fully described by a JSON-able spec: input/output names, hidden
layers as (activation, width), and the fixed affine maps that scale inputs
to [-1, 1] and outputs back to model units (`fhnkit.nets.files` saves and
rebuilds a network from its spec and weights).
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from .. import __version__
from .base import Surrogate


class Sin(nn.Module):
    """sin(x) activation (the thesis's SIN layers)."""

    def forward(self, x):
        return torch.sin(x)


# "identity" is no choice of the config (its schema lists the others): a stacked group passes a shallower
# model's last hidden layer through it, unchanged, to the deepest model's output layer (`fhnkit.training.stacked`)
ACTIVATIONS = {"silu": nn.SiLU, "tanh": nn.Tanh, "elu": nn.ELU, "relu": nn.ReLU, "sigmoid": nn.Sigmoid,
               "sin": Sin, "identity": nn.Identity}

# per activation: the function and its derivative act'(z) from z and h = act(z), as differentiable
# torch expressions (a PINN's loss is differentiated through them)
ACTIVATION_FUNCTIONS = {"silu": torch.nn.functional.silu, "tanh": torch.tanh, "elu": torch.nn.functional.elu,
                        "relu": torch.relu, "sigmoid": torch.sigmoid, "sin": torch.sin, "identity": lambda z: z}
SLOPES = {
    "silu": lambda z, h: torch.sigmoid(z) * (1 + z - h),  # σ + z σ (1 - σ) = σ (1 + z - h), h = z σ
    "tanh": lambda z, h: 1 - h * h,
    "elu": lambda z, h: torch.where(z > 0, 1.0, h + 1),
    "relu": lambda z, h: (z > 0).to(z.dtype),
    "sigmoid": lambda z, h: h * (1 - h),
    "sin": lambda z, h: torch.cos(z),
    "identity": lambda z, h: torch.ones_like(z),
}


def activation_and_slope(name: str, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(act(z), act'(z)) of the activation `name`, both differentiable."""
    h = ACTIVATION_FUNCTIONS[name](z)
    return h, SLOPES[name](z, h)


def time_tangent(x, input_scale, layers, output_scale):
    """(outputs, d outputs / d t) of an MLP whose input column 0 is time, the derivative carried forward
    through the layers beside the values (forward mode: one extra product per layer, no second backward).
    x is already offset, not yet scaled. `layers`: per layer (affine, activate), where affine(h, True) is
    h W^T + b and affine(dh, False) is dh W^T, and activate(z) is (act(z), act'(z)), None for the output."""
    z = x / input_scale
    dz = torch.zeros_like(z)
    dz[..., 0] = 1.0 / input_scale[..., 0]
    h, dh = z, dz
    for affine, activate in layers:
        z, dz = affine(h, True), affine(dh, False)
        if activate is None:
            return z * output_scale, dz * output_scale
        h, slope = activate(z)
        dh = slope * dz
    raise ValueError("an MLP ends with its linear output layer")



class MLP(Surrogate):
    """Hidden layers of (activation, width) and a linear output, with built-in input/output scaling;
    as a surrogate, a continuous network of (t, parameters)."""

    def __init__(self, spec: dict):
        super().__init__()
        self.spec = spec
        n_in, n_out = len(spec["inputs"]), len(spec["outputs"])
        layers, width_in = [], n_in
        for act, width in spec["layers"]:
            if act not in ACTIVATIONS:
                raise ValueError(f"unknown activation {act!r}; choose one of {sorted(ACTIVATIONS)}")
            layers += [nn.Linear(width_in, width), ACTIVATIONS[act]()]
            width_in = width
        layers.append(nn.Linear(width_in, n_out))
        self.net = nn.Sequential(*layers)
        for name, size in (("input_offset", n_in), ("input_scale", n_in), ("output_offset", n_out),
                           ("output_scale", n_out)):
            default = 1.0 if name.endswith("scale") else 0.0
            value = torch.as_tensor(spec.get(name, [default] * size), dtype=torch.float32)
            self.register_buffer(name, value)

    def forward(self, x):
        """x: (batch, n_inputs) in model units -> (batch, n_outputs) in model units."""
        z = (x - self.input_offset) / self.input_scale
        return self.net(z) * self.output_scale + self.output_offset

    def with_time_derivative(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(outputs, d outputs / d t) at x (batch, n_inputs), t being input column 0; forward mode."""
        linears = [m for m in self.net if isinstance(m, nn.Linear)]
        activations = [functools.partial(activation_and_slope, act) for act, _ in self.spec["layers"]] + [None]

        def affine(lin):
            return lambda h, bias: torch.nn.functional.linear(h, lin.weight, lin.bias if bias else None)

        layers = zip(map(affine, linears), activations, strict=True)
        y, dy = time_tangent(x - self.input_offset, self.input_scale, layers, self.output_scale)
        return y + self.output_offset, dy


def make_spec(inputs, outputs, layers, input_lo, input_hi, output_offset, output_scale) -> dict:
    """Spec of an MLP whose inputs in [input_lo, input_hi] are mapped to [-1, 1]."""
    lo, hi = torch.as_tensor(input_lo, dtype=torch.float64), torch.as_tensor(input_hi, dtype=torch.float64)
    return {"inputs": list(inputs), "outputs": list(outputs), "layers": [list(layer) for layer in layers],
            "input_offset": ((lo + hi) / 2).tolist(), "input_scale": ((hi - lo) / 2).tolist(),
            "output_offset": list(map(float, output_offset)), "output_scale": list(map(float, output_scale)),
            "fhnkit_version": __version__}


def n_params(model: nn.Module) -> int:
    """Number of trainable values (weights and biases) of a network."""
    return sum(p.numel() for p in model.parameters())
