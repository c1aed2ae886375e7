"""Time-domain splitting by marching (thesis 3.4.1, second variant).

A network trained on the small window [0, T_w] with the initial state as an
input is reused window after window: its state at T_w becomes the next
window's (U0, W0). Validated against solver trajectories on [0, horizon]
stored on the training data's time lattice, with eq. 3.3 at every stored point.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..nets.evaluate import predict
from ..nets.itnn import trajectories


class MarchValidation:
    """Marching errors of a (t, U0, W0[, K]) network on trajectories longer than its window."""

    def __init__(self, df: pd.DataFrame, problem: str, window: float):
        times, self.U, self.W, self.K = trajectories(df, problem)
        self.problem, self.window = problem, window
        per_window = np.flatnonzero((times > 0) & (times <= window + 1e-9))
        if per_window.size == 0 or abs(times[per_window[-1]] - window) > 1e-9:
            raise ValueError(f"the marching set's save step does not divide the window {window}")
        self.n_windows = int(round(times[-1] / window))
        self.tau = times[per_window]  # times inside one window, ending at the window's end
        self.stride = per_window[-1]  # stored steps per window

    def errors(self, model) -> np.ndarray:
        """|dU| + |dW| at every stored point after t = 0 of every trajectory: (n_points, n_traj)."""
        n = self.U.shape[0]
        state = torch.tensor(np.stack([self.U[:, 0], self.W[:, 0]], axis=1), dtype=torch.float32)
        k = torch.tensor(self.K, dtype=torch.float32)[:, None]
        errs = []
        for w in range(self.n_windows):
            tau = torch.tensor(np.repeat(self.tau, n), dtype=torch.float32)[:, None]
            rep = state.repeat(len(self.tau), 1)
            x = torch.cat([tau, rep] + ([k.repeat(len(self.tau), 1)] if self.problem == "C" else []), dim=1)
            pred = predict(model, x).reshape(len(self.tau), n, 2)
            idx = w * self.stride + np.arange(1, self.stride + 1)
            truth = torch.tensor(np.stack([self.U[:, idx].T, self.W[:, idx].T], axis=-1), dtype=torch.float32)
            errs.append((pred - truth).abs().sum(dim=-1).numpy())
            state = pred[-1]  # the window's end is the next window's initial state
        return np.concatenate(errs)
