"""Time-domain splitting by marching: a small-window network reused up to a longer horizon."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from fhnkit.datasets.simulate import make_dataset
from fhnkit.plan.config import ConfigError, validate_config
from fhnkit.plan.grid import expand_study
from fhnkit.plan.model_spec import ModelSpec
from fhnkit.training.marching import MarchValidation
from fhnkit.training.train import train_model

GRID = {"layers": [1], "layer_configs": [["tanh", 8]], "classes": ["ddnn"], "batch_size": [32]}


def config(**extra):
    study = {"problem": "B", "i_app": 0.1, "t_max": 5, "times_per_trajectory": 11, "train": {"n": 20},
             "val": {"n": 5}, "marching": {"horizon": 20, "n": 4}, "grid": GRID,
             "training": {"iterations": 40, "validate_every": 20}} | extra
    return validate_config({"data_solver": {"dt": 0.01}, "studies": {"S": study}})


class Frozen(torch.nn.Module):
    """A 'network' that returns its initial-state inputs: the state never moves."""

    spec = {"inputs": ["t", "U0", "W0"]}

    def forward(self, x):
        return x[:, 1:3]


def test_marching_feeds_each_window_end_into_the_next():
    df = make_dataset(config(), "S", "march")[0]
    check = MarchValidation(df, "B", 5.0)
    assert check.n_windows == 4 and check.stride == 10 and len(check.tau) == 10
    err = check.errors(Frozen())
    assert err.shape == (40, 4)
    traj = df.sort_values(["traj", "t"])
    U = traj["U"].to_numpy().reshape(4, -1)
    W = traj["W"].to_numpy().reshape(4, -1)
    want = np.abs(U[:, 1:] - U[:, :1]) + np.abs(W[:, 1:] - W[:, :1])  # frozen at the initial state
    np.testing.assert_allclose(err, want.T, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("edit, message", [
    ({"marching": {"horizon": 12}}, "must be a multiple"),
    ({"marching": {"horizon": 5}}, "must be a multiple"),
    ({"problem": "A", "t_max": 20, "times_per_trajectory": 11}, "needs problem B or C"),
])
def test_bad_marching_is_refused(edit, message):
    with pytest.raises(ConfigError, match=message):
        config(**edit)


def test_training_records_the_march_error(tmp_path):
    cfg = config()
    paths = {}
    for split in ("train", "val", "march"):
        paths[split] = tmp_path / f"{split}.parquet"
        make_dataset(cfg, "S", split)[0].to_parquet(paths[split])
    spec = expand_study(cfg, "S")[0]
    metrics = train_model(ModelSpec.from_mapping(spec), paths["train"], paths["val"], tmp_path / "m", progress=False,
                          march_path=paths["march"])
    history = pd.read_parquet(tmp_path / "m" / "history.parquet")
    assert {"val_march_mean", "val_march_max"} <= set(history)
    assert metrics["march_err"] == pytest.approx(history["val_march_mean"].iloc[-1])
    assert metrics["march_horizon"] == 20
