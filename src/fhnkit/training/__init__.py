"""The train stage: a model's loss terms (eq. 3.16), its training loop, checkpoints and validation.

`train_model` is what the rule `train` (and each rank of `fhnkit train-grid`) runs: it writes
`weights.pt`, `spec.json`, `history.parquet` and, last, `metrics.json` into the model's directory,
resuming from a checkpoint where one exists. `fit_fleet` trains many models of a study as a few batched
computations per iteration, each model as it would train alone (`fleet`, `stacked`); `throughput`
times the two against each other (`fhnkit bench train`).
"""

from . import checkpoint
from .fleet import fit_fleet, train_fleet
from .loss import build_terms, frame_tensor
from .marching import MarchValidation
from .terms import BoxSampler, ContinuityTerm, DataTerm, InitialTerm, PhysicsTerm
from .train import (
    TrainingDiverged,
    TrainingRun,
    fit,
    load_training_data,
    network_spec,
    train_model,
    training_device,
    write_finished,
)

__all__ = [
    "BoxSampler",
    "ContinuityTerm",
    "DataTerm",
    "InitialTerm",
    "MarchValidation",
    "PhysicsTerm",
    "TrainingDiverged",
    "TrainingRun",
    "build_terms",
    "checkpoint",
    "fit",
    "fit_fleet",
    "train_fleet",
    "frame_tensor",
    "load_training_data",
    "network_spec",
    "train_model",
    "training_device",
    "write_finished",
]
