"""The multi-layer perceptron of SPEC.md section 4, and its portable spec.

A model is fully described by a JSON-able spec: input/output names, hidden
layers as (activation, width), and the fixed affine maps that scale inputs
to [-1, 1] and outputs back to model units. `load_model` rebuilds it from the
spec and a weights file without any training code, as the network class the
spec describes (`network_class`), each a `fhnkit.nets.base.Surrogate`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from .. import __version__
from ..artifacts import write_json
from .base import Surrogate


class Sin(nn.Module):
    """sin(x) activation (the thesis's SIN layers)."""

    def forward(self, x):
        return torch.sin(x)


ACTIVATIONS = {"silu": nn.SiLU, "tanh": nn.Tanh, "elu": nn.ELU, "relu": nn.ReLU, "sigmoid": nn.Sigmoid,
               "sin": Sin}


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


def save_model(model: Surrogate, directory) -> None:
    """Write `spec.json` and `weights.pt` (a plain state_dict) into `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / ".weights.pt.tmp"
    torch.save(model.state_dict(), tmp)
    tmp.replace(directory / "weights.pt")
    write_json(model.spec, directory / "spec.json")


def network_class(spec: dict) -> type[Surrogate]:
    """The network class a (saved) network spec describes: one MLP per time window (a spec with
    `windows`), an iterator network (a spec with `itnn_dt`), else one MLP of (t, parameters).

    The one place that tells network kinds apart by the keys of a spec; everything else asks the network.
    """
    if "windows" in spec:
        from .windows import WindowedMLP

        return WindowedMLP
    if "itnn_dt" in spec:
        from .itnn import IteratorMLP

        return IteratorMLP
    return MLP


def build_network(spec: dict) -> Surrogate:
    """The network a spec describes (`network_class`), freshly initialised."""
    return network_class(spec)(spec)


def load_model(directory, map_location="cpu") -> Surrogate:
    """Rebuild a saved model from `spec.json` + `weights.pt`, in eval mode."""
    directory = Path(directory)
    spec = json.loads((directory / "spec.json").read_text())
    model = build_network(spec)
    model.load_state_dict(torch.load(directory / "weights.pt", map_location=map_location, weights_only=True))
    return model.eval()
