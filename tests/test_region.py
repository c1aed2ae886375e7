"""Region terms (thesis 3.4.2, DDNNa/PINNa): config, grid axis, region data set, loss terms."""

from __future__ import annotations

import pandas as pd
import pytest

from fhnkit.datasets.simulate import make_dataset
from fhnkit.plan.config import ConfigError, validate_config
from fhnkit.plan.grid import expand_study
from fhnkit.plan.layout import needs_region_data
from fhnkit.plan.model_spec import ModelSpec
from fhnkit.training.train import TrainingRun, fit

GRID = {"layers": [1], "layer_configs": [["tanh", 8]], "classes": ["ddnn", "pinn"], "batch_size": [16],
        "region": [False, True]}
REGION = {"ranges": {"u0": [0.35, 0.45]}, "physics": {"weight": 2.0, "batch": 32},
          "data": {"n": 6, "weight": 3.0, "batch": 8}}


def config(**study):
    base = {"problem": "B", "t_max": 5, "times_per_trajectory": 6, "train": {"n": 8}, "val": {"n": 4},
            "grid": GRID, "region": REGION, "training": {"iterations": 20, "validate_every": 10}}
    return validate_config({"data_solver": {"dt": 0.01}, "studies": {"S": base | study}})


def test_region_axis_doubles_the_grid_and_names_the_a_variants():
    specs = expand_study(config(), "S")
    assert sorted(s["model"] for s in specs) == ["ddnn_tanh8_bs16_s0", "ddnna_tanh8_bs16_s0",
                                                 "pinn_tanh8_bs16_s0", "pinna_tanh8_bs16_s0"]
    with_region = [s for s in specs if s["region"]]
    assert all(s["region_settings"]["physics"]["weight"] == 2.0 for s in with_region)
    assert all(needs_region_data(s) for s in with_region) and not any(needs_region_data(s) for s in specs
                                                                       if not s["region"])


@pytest.mark.parametrize("edit, message", [
    ({"region": None}, "grid.region: true needs studies.S.region"),
    ({"region": {"ranges": {"u0": [0.5, 1.2]}}}, r"region.ranges.u0: \[0.5, 1.2\] must be an increasing range"),
    ({"problem": "A", "t_max": 20, "region": {"ranges": {"t": [0, 5]}, "data": {"n": 5}}},
     "problem A has no region data set"),
])
def test_bad_regions_are_refused_naming_the_key(edit, message):
    study = {k: v for k, v in edit.items() if v is not None}
    if edit.get("region", "") is None:
        with pytest.raises(ConfigError, match=message):
            validate_config({"studies": {"S": {"problem": "B", "train": {"n": 3}, "val": {"n": 3}, "grid": GRID}}})
        return
    with pytest.raises(ConfigError, match=message):
        config(**study)


def test_region_data_set_lies_in_the_region_and_is_seeded():
    cfg = config()
    df, meta = make_dataset(cfg, "S", "region")
    assert df["traj"].nunique() == 6 and df["U0"].between(0.35, 0.45).all()
    assert df["W0"].between(0.0, 0.18).all() and meta["region"]["ranges"] == {"u0": [0.35, 0.45]}
    pd.testing.assert_frame_equal(df, make_dataset(cfg, "S", "region")[0])
    plain = validate_config({"studies": {"S": {"problem": "B", "train": {"n": 3}, "val": {"n": 3},
                                               "grid": GRID | {"region": [False]}}}})
    with pytest.raises(ValueError, match="no region data set"):
        make_dataset(plain, "S", "region")


@pytest.mark.parametrize("model, terms", [
    ("ddnna_tanh8_bs16_s0", {"loss_data", "loss_physics_region", "loss_data_region"}),
    ("pinna_tanh8_bs16_s0", {"loss_data", "loss_physics", "loss_initial", "loss_physics_region",
                             "loss_data_region"}),
    ("ddnn_tanh8_bs16_s0", {"loss_data"}),
])
def test_region_models_train_with_their_extra_terms(model, terms):
    cfg = config()
    spec = {s["model"]: s for s in expand_study(cfg, "S")}[model]
    data = {split: make_dataset(cfg, "S", split)[0] for split in ("train", "val", "region")}
    run = TrainingRun(ModelSpec.from_mapping(spec), data["train"], data["val"],
                      data["region"] if needs_region_data(spec) else None)
    weights = {t.name: t.weight for t in run.terms}
    if spec["region"]:
        assert weights["physics_region"] == 2.0 and weights["data_region"] == 3.0
        region_sampler = [t for t in run.terms if t.name == "physics_region"][0].sampler
        assert region_sampler.lo[1].item() == pytest.approx(0.35) and region_sampler.hi[1].item() == pytest.approx(0.45)
    history = fit(run, progress=False)
    assert {c for c in history.columns if c.startswith("loss_") and c != "loss_total"} == terms
