"""Error over cuts of the solution space (fhnkit.analysis.error_cuts, thesis Fig. 28, 32, 33, 35)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from fhnkit.analysis.error_cuts import (
    CUT_COLUMNS,
    cut_errors,
    cut_models,
    cut_parameters,
    error_cuts_figure,
    study_cuts,
)
from fhnkit.datasets.simulate import solve_parameter_sets
from fhnkit.nets.base import Surrogate
from fhnkit.nets.itnn import Iterator
from fhnkit.plan.config import validate_config


def config(problem="B"):
    study = {"problem": problem, "i_app": 0.1, "t_max": 6, "times_per_trajectory": 7, "train": {"n": 4},
             "val": {"n": 4}, "grid": {"layers": [1], "layer_configs": [["tanh", 8]]}}
    return validate_config({"data_solver": {"dt": 0.01}, "studies": {"S": study}})


class Frozen(Surrogate):
    """A continuous 'network' that answers its initial state at every t: its error is how far the
    true solution has moved from (U0, W0)."""

    def __init__(self, problem="B"):
        super().__init__()
        self.spec = {"inputs": ["t", "U0", "W0"] + (["K"] if problem == "C" else [])}

    def forward(self, x):
        return x[:, 1:3]


class Still(Iterator):
    """An iterator 'network' whose step leaves the state where it is."""

    def __init__(self, dt=2.0):
        super().__init__()
        self.spec = {"inputs": ["U", "W"], "itnn_dt": dt}
        self.scale = torch.nn.Parameter(torch.ones(1))  # predict() looks for the model's device

    def forward(self, x):
        return x[:, :2] * self.scale


def test_cut_parameters_span_u0_at_fixed_w0_and_k():
    cfg = config("C")
    study = cfg["studies"]["S"]
    p = cut_parameters(study, n_u0=11, w0_fractions=(0.0, 1.0))
    assert p.shape == (22, 3)
    np.testing.assert_allclose(p[:11, 0], np.linspace(*study["ranges"]["u0"], 11))
    assert (p[:11, 1] == study["ranges"]["w0"][0]).all() and (p[11:, 1] == study["ranges"]["w0"][1]).all()
    assert (p[:, 2] == np.mean(study["ranges"]["K"])).all()
    assert cut_parameters(config("B")["studies"]["S"], n_u0=5).shape == (15, 2)


def test_continuous_errors_are_eq_3_3_at_every_point_of_each_cut():
    cfg = config()
    study = cfg["studies"]["S"]
    truth = solve_parameter_sets(cfg, study, cut_parameters(study, n_u0=9, w0_fractions=(0.2, 0.8)))
    cuts = cut_errors(Frozen(), truth, n_cuts=2)
    assert list(cuts.columns) == CUT_COLUMNS and len(cuts) == len(truth) == 18 * 7
    want = (truth["U"] - truth["U0"]).abs() + (truth["W"] - truth["W0"]).abs()
    np.testing.assert_allclose(cuts["err"], want, atol=2e-6)  # float32 evaluation
    assert (cuts.loc[cuts["t"] == 0, "err"] < 1e-6).all()  # the frozen answer is right at t = 0
    assert set(cuts.loc[cuts["cut"] == 0, "W0"]) == {truth["W0"].iloc[0]} and cuts["cut"].nunique() == 2
    assert cuts["K"].isna().all()


def test_iterator_errors_are_rollout_errors_at_its_steps():
    cfg = config()
    study = cfg["studies"]["S"]
    truth = solve_parameter_sets(cfg, study, cut_parameters(study, n_u0=5, w0_fractions=(0.5,)))
    cuts = cut_errors(Still(dt=2.0), truth, n_cuts=1)
    assert sorted(cuts["t"].unique()) == [2.0, 4.0, 6.0] and len(cuts) == 5 * 3
    merged = cuts.merge(truth, on=["U0", "W0", "t"])
    want = (merged["U"] - merged["U0"]).abs() + (merged["W"] - merged["W0"]).abs()
    np.testing.assert_allclose(merged["err"], want, atol=2e-6)


def test_study_cuts_and_figure(tmp_path):
    cfg = config("C")
    study = cfg["studies"]["S"]
    cuts = study_cuts({"frozen": Frozen("C"), "still": Still(dt=1.0)}, cfg, study, n_u0=7)
    assert set(cuts["model"]) == {"frozen", "still"} and set(cuts["cut"]) == {0, 1, 2}
    assert (cuts["K"] == np.mean(study["ranges"]["K"])).all()
    path = error_cuts_figure(cuts, tmp_path / "cuts.png", "S: error over cuts", a=0.4)
    width, height = Image.open(path).size
    assert width > 1200 and 600 < height < 1000  # two rows of three panels at 120 dpi


def test_cut_models_pick_the_best_continuous_and_the_best_iterator():
    summary = pd.DataFrame({
        "study": ["S", "S", "S", "S", "T"], "model": ["d1", "p1", "i1", "i2", "x"],
        "class": ["ddnn", "pinn", "itnn", "itnn", "ddnn"], "mean_err": [0.2, 0.1, 0.3, np.nan, 0.01],
        "status": ["ok", "ok", "ok", "failed", "ok"]})
    assert cut_models(summary, "S") == {"best continuous": "p1", "best ITNN": "i1"}
    assert cut_models(summary[summary["class"] != "itnn"], "S") == {"best continuous": "p1"}
    assert cut_models(summary, "none") == {}


@pytest.mark.parametrize("problem", ["B", "C"])
def test_cut_errors_keep_trajectory_order(problem):
    cfg = config(problem)
    study = cfg["studies"]["S"]
    params = cut_parameters(study, n_u0=4, w0_fractions=(0.1, 0.9))
    truth = solve_parameter_sets(cfg, study, params).sample(frac=1.0, random_state=0)  # shuffled rows
    cuts = cut_errors(Frozen(problem), truth, n_cuts=2)
    first = cuts.groupby("cut")["W0"].first().to_numpy()
    np.testing.assert_allclose(first, [params[0, 1], params[4, 1]])
