"""High-error resampling (thesis 3.4.2): error maps, selection rules, sampling around points, chunks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from fhnkit.artifacts import read_parquet_meta
from fhnkit.datasets.simulate import solve_parameter_sets, write_dataset
from fhnkit.plan.config import ConfigError, validate_config
from fhnkit.plan.grid import expand_study, resample_specs
from fhnkit.plan.layout import data_files
from fhnkit.plan.model_spec import ModelSpec
from fhnkit.resampling.high_error import (
    chunks,
    merge_solved,
    sample_around,
    select_high_error,
    state_errors,
    trajectory_errors,
    write_selection,
)
from fhnkit.training.loss import build_terms
from fhnkit.training.train import train_model


def config(problem="B", **resample):
    study = {"problem": problem, "i_app": 0.1, "t_max": 6, "times_per_trajectory": 7, "train": {"n": 30},
             "val": {"n": 8}, "training": {"iterations": 30, "validate_every": 15},
             "grid": {"layers": [1], "layer_configs": [["tanh", 8]], "batch_size": [32], "region": [False, True]},
             "resample": {"base": {"layers": [["tanh", 8]], "batch_size": 16}, **resample}}
    if problem == "A":
        study.pop("times_per_trajectory")
    return validate_config({"data_solver": {"dt": 0.01}, "studies": {"S": study}})


class Frozen(torch.nn.Module):
    """A 'network' that returns its initial-state inputs: the state never moves."""

    spec = {"inputs": ["t", "U0", "W0"]}

    def forward(self, x):
        return x[:, 1:3]


def errors(values):
    return pd.DataFrame({"U0": np.linspace(0, 1, len(values)), "W0": 0.1, "mean_err": values, "max_err": values})


def test_top_fraction_takes_the_highest_errors_first():
    chosen = select_high_error(errors([0.1, 0.5, 0.3, 0.9, 0.2, 0.05, 0.0, 0.4, 0.6, 0.7]), "top_fraction", 0.25, 0)
    assert list(chosen["mean_err"]) == [0.9, 0.7, 0.6]  # ceil(0.25 * 10)


def test_threshold_takes_every_error_above_it_and_may_take_none():
    assert list(select_high_error(errors([0.1, 0.5, 0.3]), "threshold", 1, 0.2)["mean_err"]) == [0.5, 0.3]
    assert select_high_error(errors([0.1, 0.05]), "threshold", 1, 0.2).empty


def test_sampling_around_points_is_seeded_clipped_and_capped():
    centers = np.array([[0.5, 0.09], [0.0, 0.0]])
    a = sample_around(centers, [0, 0], [1, 0.18], 0.05, 500, 10_000, seed=3)
    assert a.shape == (1000, 2) and np.array_equal(a, sample_around(centers, [0, 0], [1, 0.18], 0.05, 500, 10_000, 3))
    assert (a >= 0).all() and (a[:, 0] <= 1).all() and (a[:, 1] <= 0.18).all()
    first = a[:500]
    np.testing.assert_allclose(first.mean(axis=0), [0.5, 0.09], atol=0.01)
    np.testing.assert_allclose(first.std(axis=0), [0.05, 0.05 * 0.18], rtol=0.15)
    assert (a[500:] <= 0.25).all()  # the corner point: half its draws clipped onto the bounds
    capped = sample_around(centers, [0, 0], [1, 0.18], 0.05, 500, 999, seed=3)
    assert np.array_equal(capped, a[:500])  # a cap drops the lowest-error (last) center


def test_trajectory_errors_are_eq_3_3_averaged_over_each_trajectory():
    cfg = config()
    df = solve_parameter_sets(cfg, cfg["studies"]["S"], np.array([[0.2, 0.0], [0.8, 0.1]]))
    table = trajectory_errors(Frozen(), df, "B")
    for traj, rows in df.groupby("traj"):
        want = (rows["U"] - rows["U0"]).abs() + (rows["W"] - rows["W0"]).abs()
        assert table.loc[traj, "mean_err"] == pytest.approx(want.mean(), rel=1e-5)
        assert table.loc[traj, "max_err"] == pytest.approx(want.max(), rel=1e-5)
    assert list(table[["U0", "W0"]].itertuples(index=False, name=None)) == [(0.2, 0.0), (0.8, 0.1)]


def test_state_errors_rank_each_one_step_state_of_an_iterator():
    cfg = config()
    df = solve_parameter_sets(cfg, cfg["studies"]["S"], np.array([[0.2, 0.0], [0.8, 0.1]]))
    identity = torch.nn.Identity()
    identity.spec = {"inputs": ["U", "W"], "itnn_dt": 2.0}
    table = state_errors(identity, df, "B", 2.0)
    # 7 stored times (save step 1), Δt = 2: pairs from the first 5 states of each trajectory
    assert len(table) == 2 * 5 and list(table.columns) == ["U0", "W0", "mean_err", "max_err"]
    assert table["mean_err"].iloc[0] == pytest.approx(abs(df["U"].iloc[2] - 0.2) + abs(df["W"].iloc[2]), rel=1e-5)


def test_chunks_and_merge_renumber_trajectories():
    frame = pd.DataFrame({"U0": np.arange(7.0)})
    assert [len(c) for c in chunks(frame, 3)] == [3, 3, 1] and chunks(frame.iloc[:0], 3) == []
    solved = [pd.DataFrame({"traj": [0, 0, 1, 1], "t": [0, 1, 0, 1]}), pd.DataFrame({"traj": [0, 0], "t": [0, 1]})]
    assert list(merge_solved(solved, ["traj", "t"])["traj"]) == [0, 0, 1, 1, 2, 2]
    assert list(merge_solved([], ["traj", "t"]).columns) == ["traj", "t"]


def test_resampling_specs_and_which_models_train_on_the_high_error_set():
    cfg = config()
    specs = resample_specs(cfg, "S")
    assert specs["base"]["model"] == "resample-base" and specs["base"]["resample"] is None
    assert specs["retrained"]["region"] and specs["retrained"]["resample"]["per_point"] == 10
    assert data_files(specs["retrained"])["resampled"] == "results/S/resample/data.parquet"
    assert "resampled" not in data_files(specs["base"])
    grid = {s["model"]: s for s in expand_study(cfg, "S")}
    assert "resampled" in data_files(grid["ddnna_tanh8_bs32_s0"]) and "resampled" not in data_files(
        grid["ddnn_tanh8_bs32_s0"])
    assert resample_specs(config(), "S")["base"]["config_hash"] == specs["base"]["config_hash"]


def test_an_empty_high_error_set_adds_no_term():
    spec = resample_specs(config(), "S")["retrained"]
    df = pd.DataFrame({"traj": [0, 0], "t": [0.0, 6.0], "U0": [0.1, 0.1], "W0": [0.0, 0.0], "U": [0.1, 0.2],
                       "W": [0.0, 0.1]})
    spec = ModelSpec.from_mapping(spec)
    assert [t.name for t in build_terms(spec, df, resampled_df=df)] == ["data", "data_resampled"]
    assert [t.name for t in build_terms(spec, df, resampled_df=df.iloc[:0])] == ["data"]


@pytest.mark.parametrize("edit, message", [
    ({"problem": "A"}, "resample: needs problem B or C"),
    ({"error": "rollout"}, r"resample.error: rollout ranks an iterator network's rollouts and the base is ddnn"),
    ({"iterations": 0}, "resample.iterations"),
])
def test_bad_resampling_is_refused(edit, message):
    with pytest.raises(ConfigError, match=message):
        config(**edit)


def test_rule_and_spread_are_checked_by_the_schema():
    with pytest.raises(ConfigError, match="resample.rule"):
        config(rule="worst")
    with pytest.raises(ConfigError, match="resample.spread"):
        config(spread=0)


def test_selection_writes_a_data_dependent_number_of_chunks(tmp_path):
    cfg = config(q=0.2, per_point=4, chunk=5)
    for split in ("train", "val"):
        write_dataset(cfg, "S", split, tmp_path / f"{split}.parquet")
    base = resample_specs(cfg, "S")["base"]
    train_model(ModelSpec.from_mapping(base), tmp_path / "train.parquet", tmp_path / "val.parquet", tmp_path / "base",
                progress=False)
    study = cfg["studies"]["S"]
    counts = write_selection(tmp_path / "base", tmp_path / "train.parquet", study, study["resample"], 11,
                             tmp_path / "centers.parquet", tmp_path / "chunks")
    assert counts == {"n_candidates": 30, "n_centers": 6, "n_new": 24}
    pieces = sorted((tmp_path / "chunks").glob("*.parquet"))
    assert [len(pd.read_parquet(p)) for p in pieces] == [5, 5, 5, 5, 4]
    assert read_parquet_meta(pieces[0])["rule"] == "top_fraction"
    centers = pd.read_parquet(tmp_path / "centers.parquet")
    assert centers["mean_err"].is_monotonic_decreasing and len(centers) == 6

    study["resample"] = {**study["resample"], "rule": "threshold", "threshold": 1e9}
    counts = write_selection(tmp_path / "base", tmp_path / "train.parquet", study, study["resample"], 11,
                             tmp_path / "centers2.parquet", tmp_path / "chunks2")
    assert counts["n_new"] == 0 and list((tmp_path / "chunks2").iterdir()) == []


def test_the_retraining_budget_is_the_bases_unless_resample_iterations_says_otherwise():
    default = resample_specs(config(), "S")
    assert default["retrained"]["training"]["iterations"] == default["base"]["training"]["iterations"] == 30
    longer = resample_specs(config(iterations=120), "S")
    assert longer["retrained"]["training"]["iterations"] == 120
    assert longer["base"]["training"]["iterations"] == 30  # the base, and so its selection, stay as they were
    assert longer["base"]["config_hash"] == default["base"]["config_hash"]
    assert longer["retrained"]["config_hash"] != default["retrained"]["config_hash"]
    assert ModelSpec.from_mapping(longer["retrained"]).training.iterations == 120


def test_an_iterator_base_ranks_rollouts_or_one_step_states(tmp_path):
    """`resample.error: rollout` ranks each training trajectory by the base iterator's full rollout (one
    candidate per trajectory, its initial state the point); one_step ranks every state it steps from."""
    cfg = config(q=0.2, per_point=2, chunk=100, base={"class": "itnn", "layers": [["tanh", 8]], "batch_size": 16})
    for split in ("train", "val"):
        write_dataset(cfg, "S", split, tmp_path / f"{split}.parquet")
    base = resample_specs(cfg, "S")["base"]
    train_model(ModelSpec.from_mapping(base), tmp_path / "train.parquet", tmp_path / "val.parquet", tmp_path / "base",
                progress=False)
    study = cfg["studies"]["S"]
    one_step = write_selection(tmp_path / "base", tmp_path / "train.parquet", study, study["resample"], 11,
                               tmp_path / "c1.parquet", tmp_path / "k1")
    rollout_settings = {**study["resample"], "error": "rollout"}
    rollout = write_selection(tmp_path / "base", tmp_path / "train.parquet", study, rollout_settings, 11,
                              tmp_path / "c2.parquet", tmp_path / "k2")
    # 30 trajectories of 7 stored times; the iterator's step (2.0) covers 2 of them: 5 one-step states each
    assert one_step["n_candidates"] == 30 * 5 and rollout["n_candidates"] == 30
    assert rollout == {"n_candidates": 30, "n_centers": 6, "n_new": 12}
    assert read_parquet_meta(tmp_path / "c2.parquet")["error"] == "rollout"
    centers = pd.read_parquet(tmp_path / "c2.parquet")
    train = pd.read_parquet(tmp_path / "train.parquet")
    starts = train[train["t"] == 0][["U0", "W0"]].round(12)
    assert centers[["U0", "W0"]].round(12).merge(starts).shape[0] == 6  # each point a trajectory's initial state
    assert centers["mean_err"].is_monotonic_decreasing
