"""Tests of configuration loading, validation, fingerprints and seeds (fhnkit.plan.config)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from fhnkit.plan.config import ConfigError, config_hash, derive_seed, load_config, load_schema, validate_config

ROOT = Path(__file__).resolve().parents[1]


def minimal(**study_overrides) -> dict:
    """The smallest valid config: one problem-A study with only its required keys."""
    study = {"problem": "A", "train": {"n": 10}, "val": {"n": 20},
             "grid": {"layers": [1], "layer_configs": [["tanh", 8]]}}
    study.update(study_overrides)
    return {"studies": {"s1": study}}


def errors_of(config) -> str:
    with pytest.raises(ConfigError) as info:
        validate_config(config)
    return str(info.value)


# --------------------------------------------------------------------------- defaults


def test_defaults_filled_at_every_level():
    cfg = validate_config(minimal())
    assert cfg["seed"] == 2026
    assert cfg["model"] == {"k": 10.0, "a": 0.4, "epsilon": 0.2, "beta": 0.2, "gamma": 0.8}
    assert cfg["data_solver"] == {"method": "rk4", "dt": 0.01, "precision": "float64", "backend": "auto"}
    assert set(cfg["benchmark"]) >= {"n_sets", "repeats", "warmup", "dt", "t_end", "n_points", "precision",
                                     "threads"}
    assert set(cfg["analysis"]) >= {"neuron_threshold", "ttest_studies", "curves_per_class"}
    study = cfg["studies"]["s1"]
    assert study["i_app"] == 0.0 and study["t_max"] == 50 and study["times_per_trajectory"] == 51
    assert study["initial_state"] == [0.5, 0.0] and study["k_to_i_app"] == [0.08, 0.04]
    assert study["ranges"] == {"u0": [0.0, 1.0], "w0": [0.0, 0.18], "K": [0.0, 1.0]}
    assert study["train"]["sampler"] == "uniform" and study["val"]["sampler"] == "uniform"
    grid = study["grid"]
    assert grid["classes"] == ["ddnn"] and grid["batch_size"] == [64] and grid["seeds"] == [0]
    assert grid["max_models"] == 5000
    training = study["training"]
    assert training["iterations"] == 10000 and training["validate_every"] == 500 and training["lr"] == 0.001
    assert training["threads"] == 1
    assert training["plateau"] == {"factor": 0.999999, "patience": 1000, "threshold": 0.001, "min_lr": 1e-5,
                                   "eps": 1e-8}
    assert training["weights"] == {"data": 1.0, "physics": 1.0, "initial": 1.0, "continuity": 1.0}
    assert training["batch"] == {"physics": 256, "initial": 64, "continuity": 256}
    assert training["device"] == "auto" and training["on_divergence"] == "record"
    assert grid["windows"] == [1]


def test_defaults_fill_partial_nested_objects_and_keep_given_values():
    cfg = minimal(training={"lr": 0.01, "plateau": {"patience": 7}}, ranges={"u0": [0.1, 0.9]})
    cfg["model"] = {"k": 5.0}
    out = validate_config(cfg)
    study = out["studies"]["s1"]
    assert study["training"]["lr"] == 0.01 and study["training"]["iterations"] == 10000
    assert study["training"]["plateau"]["patience"] == 7
    assert study["training"]["plateau"]["factor"] == 0.999999
    assert study["ranges"] == {"u0": [0.1, 0.9], "w0": [0.0, 0.18], "K": [0.0, 1.0]}
    assert out["model"]["k"] == 5.0 and out["model"]["a"] == 0.4


def test_defaults_filled_in_every_study():
    cfg = minimal()
    cfg["studies"]["s2"] = copy.deepcopy(cfg["studies"]["s1"]) | {"problem": "B"}
    out = validate_config(cfg)
    for name in ("s1", "s2"):
        assert out["studies"][name]["training"]["plateau"]["min_lr"] == 1e-5
        assert out["studies"][name]["training"]["batch"]["initial"] == 64


def test_validate_does_not_mutate_input():
    cfg = minimal()
    before = copy.deepcopy(cfg)
    validate_config(cfg)
    assert cfg == before


def test_validated_config_is_a_fixed_point():
    once = validate_config(minimal())
    assert validate_config(once) == once


# --------------------------------------------------------------------------- unknown keys


@pytest.mark.parametrize("where, path, allowed", [
    ("top", "<top level>", ["analysis", "benchmark", "data_solver", "model", "seed", "studies"]),
    ("study", "studies.s1", ["grid", "problem", "train", "training", "val"]),
    ("training", "studies.s1.training", ["iterations", "lr", "plateau", "validate_every"]),
    ("plateau", "studies.s1.training.plateau", ["factor", "min_lr", "patience"]),
])
def test_unknown_key_names_path_and_allowed_keys(where, path, allowed):
    cfg = minimal()
    target = {"top": cfg, "study": cfg["studies"]["s1"]}.get(where)
    if where == "training":
        cfg["studies"]["s1"]["training"] = target = {}
    if where == "plateau":
        cfg["studies"]["s1"]["training"] = {"plateau": {}}
        target = cfg["studies"]["s1"]["training"]["plateau"]
    target["bogus_key"] = 1
    msg = errors_of(cfg)
    line = next(ln for ln in msg.splitlines() if "bogus_key" in ln)
    assert line.strip().startswith(path + ":")
    for key in allowed:
        assert repr(key) in line, (key, line)


# --------------------------------------------------------------------------- out of range


@pytest.mark.parametrize("mutate, path, fragments", [
    (lambda s: s.setdefault("training", {}).update(iterations=-5), "studies.s1.training.iterations",
     ["-5", "minimum", "1"]),
    (lambda s: s.setdefault("training", {}).update(lr=2.0), "studies.s1.training.lr", ["maximum", "1"]),
    (lambda s: s.setdefault("training", {}).update(lr=0.0), "studies.s1.training.lr", ["exclusiveMinimum"]),
    (lambda s: s["grid"].update(layer_configs=[["swish", 8]]), "studies.s1.grid.layer_configs.0.0",
     ["swish", "silu", "tanh", "elu", "relu", "sigmoid", "sin"]),
    (lambda s: s["train"].update(sampler="sobol"), "studies.s1.train.sampler",
     ["sobol", "uniform", "lhs", "grid"]),
    (lambda s: s.update(problem="D"), "studies.s1.problem", ["'D'", "'A'", "'B'", "'C'"]),
    (lambda s: s["grid"].update(classes=["gnn"]), "studies.s1.grid.classes.0", ["ddnn", "pinn", "itnn"]),
    (lambda s: s.setdefault("training", {}).setdefault("plateau", {}).update(factor=1.0),
     "studies.s1.training.plateau.factor", ["exclusiveMaximum"]),
])
def test_out_of_range_names_key_and_allowed(mutate, path, fragments):
    cfg = minimal()
    mutate(cfg["studies"]["s1"])
    msg = errors_of(cfg)
    line = next((ln for ln in msg.splitlines() if ln.strip().startswith(path + ":")), None)
    assert line is not None, msg
    for frag in fragments:
        assert frag in line, (frag, line)


def test_dt_not_dividing_t_max():
    cfg = minimal(t_max=5)
    cfg["data_solver"] = {"dt": 0.003}
    msg = errors_of(cfg)
    assert "studies.s1.t_max" in msg and "data_solver.dt" in msg and "0.003" in msg


def test_dt_dividing_t_max_is_accepted_despite_float_rounding():
    cfg = minimal(t_max=20)
    cfg["data_solver"] = {"dt": 0.01}  # 20 / 0.01 is not exactly 2000 in binary
    validate_config(cfg)


def test_reversed_range():
    msg = errors_of(minimal(ranges={"u0": [1.0, 0.0]}))
    assert "studies.s1.ranges.u0" in msg and "lower bound" in msg


def test_benchmark_points_must_divide_steps():
    cfg = minimal()
    cfg["benchmark"] = {"n_points": 30}  # t_end / n_points = 1/3, not a multiple of dt = 0.1
    assert "benchmark" in errors_of(cfg)


def test_missing_required_key():
    cfg = minimal()
    del cfg["studies"]["s1"]["val"]
    assert "'val' is a required property" in errors_of(cfg)
    assert "studies" in errors_of({})


def test_all_schema_errors_reported_at_once():
    cfg = minimal()
    cfg["extra_top"] = 1
    study = cfg["studies"]["s1"]
    study["training"] = {"iterations": -1, "lr": 5, "typo": 1}
    study["train"]["sampler"] = "sobol"
    study["grid"]["layer_configs"] = [["swish", 8]]
    msg = errors_of(cfg)
    for frag in ("extra_top", "studies.s1.training.iterations", "studies.s1.training.lr", "'typo'",
                 "studies.s1.train.sampler", "studies.s1.grid.layer_configs.0.0"):
        assert frag in msg, (frag, msg)


def test_all_semantic_errors_reported_at_once():
    cfg = minimal(t_max=5, ranges={"u0": [1.0, 0.0], "w0": [0.5, 0.1]})
    cfg["data_solver"] = {"dt": 0.003}
    msg = errors_of(cfg)
    for frag in ("studies.s1.ranges.u0", "studies.s1.ranges.w0", "studies.s1.t_max"):
        assert frag in msg


def test_schema_and_semantic_errors_reported_together():
    cfg = minimal(ranges={"u0": [1.0, 0.0]}, training={"lr": 5})
    msg = errors_of(cfg)
    assert "studies.s1.training.lr" in msg and "studies.s1.ranges.u0" in msg


def test_bad_study_name():
    cfg = minimal()
    cfg["studies"]["1-bad name"] = cfg["studies"].pop("s1")
    assert "1-bad name" in errors_of(cfg)


def test_load_config_from_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(minimal()))
    assert load_config(path)["studies"]["s1"]["training"]["lr"] == 0.001
    path.write_text(yaml.safe_dump(minimal(t_max=-1)))
    with pytest.raises(ConfigError, match="studies.s1.t_max"):
        load_config(path)


def test_schema_is_valid_json_schema():
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(load_schema())


# --------------------------------------------------------------------------- hashes and seeds


def test_config_hash_stable_under_key_order():
    a = validate_config(minimal())
    b = {k: a[k] for k in reversed(list(a))}
    b["studies"] = {"s1": {k: a["studies"]["s1"][k] for k in reversed(list(a["studies"]["s1"]))}}
    assert list(a) != list(b)
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) == config_hash(copy.deepcopy(a))
    assert isinstance(config_hash(a), str) and len(config_hash(a)) == 16


def test_config_hash_changes_with_a_value():
    a = validate_config(minimal())
    b = copy.deepcopy(a)
    b["studies"]["s1"]["training"]["plateau"]["patience"] += 1
    c = copy.deepcopy(a)
    c["seed"] += 1
    assert len({config_hash(a), config_hash(b), config_hash(c)}) == 3


def test_derive_seed_deterministic_and_distinct():
    assert derive_seed(2026, "s1", "m", "init") == derive_seed(2026, "s1", "m", "init")
    seeds = {derive_seed(*parts) for parts in [
        (2026, "s1", "m", "init"), (2027, "s1", "m", "init"), (2026, "s2", "m", "init"),
        (2026, "s1", "n", "init"), (2026, "s1", "m", "data"), (2026, "s1", "m"), (2026,)]}
    assert len(seeds) == 7
    for s in seeds:
        assert isinstance(s, int) and 0 <= s < 2 ** 63


# --------------------------------------------------------------------------- shipped configs


@pytest.mark.parametrize("relpath", ["config/config.yaml", "tests/config/tiny.yaml"])
def test_shipped_configs_validate(relpath):
    cfg = load_config(ROOT / relpath)
    assert cfg["studies"]
