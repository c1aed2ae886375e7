"""Periodic training checkpoints, so that a killed job resumes where it stopped.

A checkpoint holds everything that determines the rest of the run: weights,
Adam and ReduceLROnPlateau states, the iteration (which also says where the
counter-based batch draws go on) and the history so far. It is written atomically (a killed write leaves the
previous checkpoint intact) and only taken for a spec with the same config
hash, so a changed model never resumes from another's state. On a CPU a
resumed run ends with exactly the weights of an uninterrupted one.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from .draws import DRAWS

log = logging.getLogger(__name__)
NAME = "checkpoint.pt"


def save(run, rows: list[dict], directory) -> Path:
    """Write the state of `run` (a TrainingRun) and its history rows to `directory/checkpoint.pt`."""
    path = Path(directory) / NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"config_hash": run.spec.config_hash, "model": run.spec.model, "iteration": run.iteration,
             "weights": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
             "scheduler": run.scheduler.state_dict(), "draws": DRAWS, "rows": rows}
    tmp = path.with_name(f".{NAME}.tmp{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def restore(run, directory) -> list[dict] | None:
    """Load a matching checkpoint into `run`; returns its history rows, or None when there is none to take."""
    path = Path(directory) / NAME
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a truncated file from an old crash: start over rather than fail
        log.warning("ignoring unreadable checkpoint %s (%s)", path, exc)
        return None
    if state.get("config_hash") != run.spec.config_hash or state.get("model") != run.spec.model:
        log.warning("ignoring checkpoint %s: it belongs to another spec", path)
        return None
    if state.get("draws") != DRAWS:  # drawn by torch generators, which a run cannot go on from here
        log.warning("ignoring checkpoint %s: written by an older fhnkit (other batch draws); the model starts over",
                    path)
        return None
    run.model.load_state_dict(state["weights"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.iteration = state["iteration"]
    log.info("resuming %s from its checkpoint at iteration %d", run.spec.model, run.iteration)
    return state["rows"]


def remove(directory) -> None:
    """Delete the checkpoint of a finished model."""
    (Path(directory) / NAME).unlink(missing_ok=True)
