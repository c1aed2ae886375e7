"""A network on disk: `spec.json` plus `weights.pt`, written by `save_model` and rebuilt by `load_model`.

`load_model` needs no training code: the saved spec says which network class to rebuild
(`network_class`), each a `fhnkit.nets.base.Surrogate`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..artifacts import write_json
from ..provenance import ModelFileError
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
    """Rebuild a saved model from `spec.json` + `weights.pt`, in eval mode. A missing, unreadable or
    damaged file, or weights that do not fit the spec, raise ModelFileError naming the file."""
    directory = Path(directory)
    spec_path, weights_path = directory / "spec.json", directory / "weights.pt"
    for path in (spec_path, weights_path):
        if not path.is_file():
            raise ModelFileError(f"{path} is missing: {directory} holds no saved model (see `fhnkit train`)")
    try:
        spec = json.loads(spec_path.read_text())
        model = build_network(spec)
    except (ValueError, KeyError, TypeError, IndexError) as err:
        raise ModelFileError(f"{spec_path} is damaged or not a network spec ({type(err).__name__}: {err}); "
                             "train the model again") from None
    try:
        state = torch.load(weights_path, map_location=map_location, weights_only=True)
        model.load_state_dict(state)
    except Exception as err:  # noqa: BLE001 (torch raises many types for a damaged file)
        raise ModelFileError(f"{weights_path} is damaged or does not fit {spec_path} ({type(err).__name__}: "
                             f"{str(err).splitlines()[0] if str(err) else ''}); train the model again") from None
    return model.eval()
