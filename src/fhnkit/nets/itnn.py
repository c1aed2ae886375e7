"""Iterator networks (ITNN, thesis 3.3.3): learn the state Δt later, evaluated by feeding back (eq. 3.18).

Training pairs come from the same solved trajectories as the other classes:
with states stored every h time units and Δt a multiple k of h, each
trajectory gives the pairs (U(t), W(t)[, K]) -> (U(t+Δt), W(t+Δt)).
Validation is both one-step (the pairs of the validation trajectories) and
by full rollout from (U0, W0) to the end of the trajectory, compared with the
solver at every multiple of Δt (eq. 3.3 per point).

A saved iterator network loads as an `IteratorMLP`, which knows its step Δt
(`iterator_dt`) and its problem, and so builds its own pairs and rollouts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .base import Surrogate
from .evaluate import predict
from .mlp import MLP

STATE = ["U", "W"]


def itnn_inputs(problem: str) -> list[str]:
    """Inputs of an iterator network: the state, plus K for problem C."""
    return STATE + (["K"] if problem == "C" else [])


def trajectories(df: pd.DataFrame, problem: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(times (n_t,), U (n_traj, n_t), W (n_traj, n_t), K (n_traj,) or zeros) of a B/C data set."""
    df = df.sort_values(["traj", "t"])
    n_traj = df["traj"].nunique()
    times = df["t"].to_numpy()[: len(df) // n_traj]
    U = df["U"].to_numpy().reshape(n_traj, -1)
    W = df["W"].to_numpy().reshape(n_traj, -1)
    K = df.groupby("traj")["K"].first().to_numpy() if problem == "C" else np.zeros(n_traj)
    return times, U, W, K


def stride(times: np.ndarray, dt_net: float) -> int:
    """Number of stored steps in one network step Δt (which must be a multiple of the save step)."""
    h = times[1] - times[0]
    k = int(round(dt_net / h))
    if k < 1 or abs(k * h - dt_net) > 1e-9 * max(1.0, dt_net):
        raise ValueError(f"itnn.dt = {dt_net} is not a multiple of the data's save step {h:g}; "
                         "change itnn.dt or times_per_trajectory")
    return k


def pairs(df: pd.DataFrame, problem: str, dt_net: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One-step training pairs (inputs (n, 2[+1]), targets (n, 2)) as float32 tensors."""
    times, U, W, K = trajectories(df, problem)
    k = stride(times, dt_net)
    cols = [U[:, :-k], W[:, :-k]] + ([np.broadcast_to(K[:, None], U[:, :-k].shape)] if problem == "C" else [])
    x = np.stack([c.reshape(-1) for c in cols], axis=1)
    y = np.stack([U[:, k:].reshape(-1), W[:, k:].reshape(-1)], axis=1)
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)


@torch.no_grad()
def rollout(model, u0, w0, K, n_steps: int) -> torch.Tensor:
    """States after 1..n_steps network steps from (u0, w0): (n_steps, n, 2) (eq. 3.18)."""
    state = torch.tensor(np.stack([u0, w0], axis=1), dtype=torch.float32)
    extra = [torch.tensor(np.asarray(K)[:, None], dtype=torch.float32)] if "K" in model.spec["inputs"] else []
    out = []
    for _ in range(n_steps):
        state = predict(model, torch.cat([state] + extra, dim=1))
        out.append(state)
    return torch.stack(out)


class RolloutValidation:
    """Full-rollout errors of an iterator network on a validation data set."""

    def __init__(self, df: pd.DataFrame, problem: str, dt_net: float):
        times, U, W, self.K = trajectories(df, problem)
        self.k = stride(times, dt_net)
        self.n_steps = (len(times) - 1) // self.k
        idx = self.k * np.arange(1, self.n_steps + 1)
        self.u0, self.w0 = U[:, 0], W[:, 0]
        self.truth = torch.tensor(np.stack([U[:, idx].T, W[:, idx].T], axis=-1), dtype=torch.float32)

    def errors(self, model) -> np.ndarray:
        """|dU| + |dW| at every (rollout step, trajectory), eq. 3.3."""
        pred = rollout(model, self.u0, self.w0, self.K, self.n_steps)
        return (pred - self.truth).abs().sum(dim=-1).numpy()


class Iterator(Surrogate):
    """What an iterator network does differently, for any network whose spec holds `itnn_dt` (its Δt)
    and the inputs of `itnn_inputs`: one-step pairs as examples, validation by full rollouts."""

    @property
    def iterator_dt(self) -> float:
        """Δt of one network step (the spec's `itnn_dt`)."""
        return self.spec["itnn_dt"]

    @property
    def problem(self) -> str:
        """The problem whose states the network steps: C when K is an input, else B."""
        return "C" if "K" in self.spec["inputs"] else "B"

    def examples(self, df: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
        """The one-step pairs (state, state Δt later) of the trajectories of a B/C data set (`pairs`)."""
        return pairs(df, self.problem, self.iterator_dt)

    def rollout_validation(self, df: pd.DataFrame) -> RolloutValidation:
        """Full-rollout validation of this network on the trajectories of a B/C data set."""
        return RolloutValidation(df, self.problem, self.iterator_dt)


class IteratorMLP(Iterator, MLP):
    """An MLP iterator network: what `fhnkit.nets.mlp.load_model` rebuilds for an ITNN."""
