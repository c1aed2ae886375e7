"""A network on disk: `spec.json` plus `weights.pt`, written by `save_model` and rebuilt by `load_model`.

`load_model` needs no training code: the saved spec says which network class to rebuild
(`network_class`), each a `fhnkit.nets.base.Surrogate`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..artifacts import write_json
from .base import Surrogate
from .itnn import IteratorMLP
from .mlp import MLP
from .windows import WindowedMLP


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
        return WindowedMLP
    if "itnn_dt" in spec:
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
