"""Accuracy of a trained network on a data set (thesis eq. 3.3)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..cell.problems import OUTPUTS


@torch.no_grad()
def predict(model, x: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
    """Network outputs for inputs `x` (n, n_inputs), evaluated in chunks on the model's device;
    returned on the CPU."""
    was_training = model.training
    model.eval()
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    out = (torch.cat([model(x[i:i + chunk].to(device)).cpu() for i in range(0, len(x), chunk)]) if len(x)
           else x[:, :2])
    model.train(was_training)  # leave the model in the mode it came in
    return out


def sample_errors(model, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Per-sample error V = |U_pred - U_true| + |W_pred - W_true| (eq. 3.3)."""
    return (predict(model, x) - y).abs().sum(dim=1).numpy()


def evaluate_frame(model, df: pd.DataFrame) -> dict:
    """Mean, median and max of eq. 3.3 over the rows of a data set (inputs taken from the model spec)."""
    x = torch.tensor(df[model.spec["inputs"]].to_numpy(np.float32))
    y = torch.tensor(df[OUTPUTS].to_numpy(np.float32))
    err = sample_errors(model, x, y)
    return {"n": int(err.size), "mean_err": float(err.mean()), "median_err": float(np.median(err)),
            "max_err": float(err.max())}
