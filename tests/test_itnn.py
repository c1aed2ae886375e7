"""Iterator networks (ITNN): training pairs, feedback rollouts, training and benchmarking."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from fhnkit.cell.model import FHNParams
from fhnkit.datasets.simulate import make_dataset
from fhnkit.inference.benchmark import benchmark_model
from fhnkit.nets import itnn, load_model
from fhnkit.plan.config import ConfigError, validate_config
from fhnkit.plan.grid import expand_study
from fhnkit.plan.model_spec import ModelSpec
from fhnkit.training.train import train_model

GRID = {"layers": [2], "layer_configs": [["tanh", 16]], "classes": ["itnn"], "batch_size": [64]}


def config(problem="B", **extra):
    study = {"problem": problem, "i_app": 0.1, "t_max": 10, "times_per_trajectory": 21, "train": {"n": 40},
             "val": {"n": 8}, "grid": GRID, "itnn": {"dt": 2.0},
             "training": {"iterations": 300, "validate_every": 100}} | extra
    return validate_config({"data_solver": {"dt": 0.01}, "benchmark": {"n_sets": 500, "repeats": 2, "warmup": 1,
                                                                        "threads": 1}, "studies": {"S": study}})


@pytest.fixture(scope="module")
def data():
    cfg = config()
    return cfg, {split: make_dataset(cfg, "S", split)[0] for split in ("train", "val")}


def test_pairs_map_each_state_to_the_state_dt_later(data):
    _, sets = data
    x, y = itnn.pairs(sets["train"], "B", 2.0)
    assert x.shape == (40 * (21 - 4), 2) and y.shape == x.shape  # save step 0.5: Δt = 4 stored steps
    traj = sets["train"][sets["train"]["traj"] == 0].set_index("t")
    np.testing.assert_allclose(x[0].numpy(), traj.loc[0.0, ["U", "W"]].to_numpy(np.float32))
    np.testing.assert_allclose(y[0].numpy(), traj.loc[2.0, ["U", "W"]].to_numpy(np.float32))
    np.testing.assert_allclose(y[1].numpy(), traj.loc[2.5, ["U", "W"]].to_numpy(np.float32))
    with pytest.raises(ValueError, match="not a multiple of the data's save step"):
        itnn.pairs(sets["train"], "B", 0.7)


def test_problem_c_pairs_carry_k(data):
    cfg = config(problem="C")
    df = make_dataset(cfg, "S", "train")[0]
    x, _ = itnn.pairs(df, "C", 2.0)
    assert x.shape[1] == 3 and set(np.round(x[:, 2].numpy(), 6)) == set(np.round(df["K"].unique(), 6).astype(
        np.float32))


class Halve(torch.nn.Module):
    spec = {"inputs": ["U", "W"]}

    def forward(self, x):
        return x[:, :2] * 0.5


def test_rollout_feeds_the_output_back():
    out = itnn.rollout(Halve(), np.array([1.0, 2.0]), np.array([4.0, 8.0]), np.zeros(2), 3)
    assert out.shape == (3, 2, 2)
    np.testing.assert_allclose(out[:, 0, 0].numpy(), [0.5, 0.25, 0.125])
    np.testing.assert_allclose(out[2, 1].numpy(), [0.25, 1.0])


def test_itnn_on_problem_a_is_refused():
    with pytest.raises(ConfigError, match="itnn needs problem B or C"):
        validate_config({"studies": {"S": {"problem": "A", "train": {"n": 5}, "val": {"n": 5}, "grid": GRID}}})


def test_itnn_trains_validates_on_rollouts_and_benchmarks(data, tmp_path):
    cfg, sets = data
    for split, df in sets.items():
        df.to_parquet(tmp_path / f"{split}.parquet")
    spec = expand_study(cfg, "S")[0]
    assert spec["model"] == "itnn_tanh16-tanh16_bs64_s0"
    metrics = train_model(ModelSpec.from_mapping(spec), tmp_path / "train.parquet", tmp_path / "val.parquet",
                          tmp_path / "m",
                          progress=False)
    history = pd.read_parquet(tmp_path / "m" / "history.parquet")
    assert {"val_mean", "val_max", "val_rollout_mean", "val_rollout_max"} <= set(history)
    assert metrics["mean_err"] == pytest.approx(history["val_rollout_mean"].iloc[-1])  # judged on rollouts
    assert history["val_mean"].iloc[-1] < history["val_mean"].iloc[0]
    model = load_model(tmp_path / "m")
    assert model.spec["inputs"] == ["U", "W"] and model.spec["itnn_dt"] == 2.0
    assert isinstance(model, itnn.IteratorMLP) and model.is_iterator and model.iterator_dt == 2.0
    assert model.problem == "B" and model.n_windows == 1
    pairs = itnn.pairs(sets["val"], "B", 2.0)
    assert all(torch.equal(a, b) for a, b in zip(model.examples(sets["val"]), pairs, strict=True))
    validation = itnn.RolloutValidation(sets["val"], "B", 2.0)
    assert validation.n_steps == 5 and validation.errors(model).shape == (5, 8)
    np.testing.assert_array_equal(model.rollout_validation(sets["val"]).errors(model), validation.errors(model))
    rec = benchmark_model(model, cfg["studies"]["S"], FHNParams(), cfg["benchmark"], 1, "S")
    assert rec["network_points"] == 5 and rec["n_points"] == 10
    assert rec["inference_time_s"]["median"] > 0
    json.dumps(rec)
