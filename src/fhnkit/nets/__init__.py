"""The networks: MLPs of (t, parameters), time-windowed MLPs and iterator networks, their specs and files.

Every network is a `Surrogate`: callers ask it what it is (`is_iterator`, `iterator_dt`, `n_windows`)
and what it is judged on (`examples`), never the spec's keys. `load_model` reads a model directory
written by `save_model` (`weights.pt` + `spec.json`) without any training code.
"""

from ..cell.problems import window_edges
from .base import Surrogate
from .evaluate import evaluate_frame, predict, sample_errors
from .files import ModelFileError, build_network, load_model, network_class, save_model
from .itnn import Iterator, IteratorMLP, RolloutValidation, itnn_inputs, pairs, rollout, trajectories
from .mlp import ACTIVATIONS, MLP, make_spec, n_params
from .windows import WindowedMLP, interface_jumps, windowed_spec

__all__ = [
    "ModelFileError",
    "ACTIVATIONS",
    "MLP",
    "Iterator",
    "IteratorMLP",
    "RolloutValidation",
    "Surrogate",
    "WindowedMLP",
    "build_network",
    "evaluate_frame",
    "interface_jumps",
    "itnn_inputs",
    "load_model",
    "make_spec",
    "n_params",
    "network_class",
    "pairs",
    "predict",
    "rollout",
    "sample_errors",
    "save_model",
    "trajectories",
    "window_edges",
    "windowed_spec",
]
