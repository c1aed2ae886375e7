"""Tests of the architecture grid expansion and shape classes (fhnkit.plan.grid, SPEC.md section 6)."""

from __future__ import annotations

import re

import pytest

from fhnkit.plan.config import validate_config
from fhnkit.plan.grid import SHAPES, arch_name, architectures, expand_all, expand_study, model_name, shape_of


def config(grid: dict, **studies_extra) -> dict:
    study = {"problem": "B", "train": {"n": 4}, "val": {"n": 4}, "grid": grid}
    return validate_config({"studies": {"S": study, **studies_extra}})


CONFIGS = [["silu", 16], ["tanh", 32], ["sin", 16]]


# --------------------------------------------------------------------------- counts


@pytest.mark.parametrize("layers", [[1], [2], [3], [2, 3], [1, 2, 3]])
def test_architecture_count(layers):
    archs = architectures({"layers": layers, "layer_configs": CONFIGS})
    assert len(archs) == sum(len(CONFIGS) ** d for d in layers)
    assert len({arch_name(a) for a in archs}) == len(archs)
    assert sorted({len(a) for a in archs}) == sorted(set(layers))


def test_architectures_include_repetitions_and_every_sequence():
    archs = architectures({"layers": [2], "layer_configs": [["silu", 8], ["tanh", 4]]})
    assert archs == [[["silu", 8], ["silu", 8]], [["silu", 8], ["tanh", 4]],
                     [["tanh", 4], ["silu", 8]], [["tanh", 4], ["tanh", 4]]]


def test_repeated_configs_and_depths_are_deduplicated():
    grid = {"layers": [2, 2, 3], "layer_configs": CONFIGS + [["silu", 16], ["tanh", 32]]}
    archs = architectures(grid)
    assert len(archs) == 3 ** 2 + 3 ** 3
    assert len({arch_name(a) for a in archs}) == len(archs)


def test_expand_study_multiplies_the_axes():
    cfg = config({"layers": [1, 2], "layer_configs": CONFIGS[:2], "classes": ["ddnn", "pinn"],
                  "batch_size": [16, 64, 256], "seeds": [0, 1]})
    specs = expand_study(cfg, "S")
    assert len(specs) == (2 + 4) * 2 * 3 * 2
    assert expand_study(cfg, "S") == specs  # stable order


def test_expand_all_covers_every_study():
    other = {"problem": "A", "train": {"n": 4}, "val": {"n": 4},
             "grid": {"layers": [1], "layer_configs": [["relu", 4]]}}
    cfg = config({"layers": [2], "layer_configs": CONFIGS[:2]}, T=other)
    specs = expand_all(cfg)
    assert [s["study"] for s in specs] == ["S"] * 4 + ["T"]
    assert specs[-1]["problem"] == "A"


# --------------------------------------------------------------------------- names and specs


def test_model_names_unique_and_encode_the_axes():
    cfg = config({"layers": [1, 2], "layer_configs": CONFIGS, "classes": ["ddnn", "pinn"],
                  "batch_size": [32, 128], "seeds": [0, 3]})
    specs = expand_study(cfg, "S")
    names = [s["model"] for s in specs]
    assert len(set(names)) == len(names)
    pattern = re.compile(r"^(ddnn|pinn)_([a-z]+\d+(?:-[a-z]+\d+)*)_bs(\d+)_s(\d+)$")
    for spec in specs:
        m = pattern.match(spec["model"])
        assert m, spec["model"]
        assert m.group(1) == spec["class"]
        assert m.group(2) == spec["arch"] == arch_name(spec["layers"])
        assert int(m.group(3)) == spec["batch_size"] and int(m.group(4)) == spec["seed"]
        assert re.fullmatch(r"[A-Za-z0-9_.-]+", spec["model"])  # safe as a file name and a wildcard


def test_arch_and_model_name():
    layers = [["silu", 16], ["tanh", 8]]
    assert arch_name(layers) == "silu16-tanh8"
    assert model_name("pinn", layers, 64, 2) == "pinn_silu16-tanh8_bs64_s2"


def test_spec_contents():
    cfg = config({"layers": [3], "layer_configs": [["silu", 8], ["tanh", 32]], "classes": ["pinn"]})
    specs = expand_study(cfg, "S")
    spec = next(s for s in specs if s["arch"] == "silu8-tanh32-silu8")
    assert spec["depth"] == 3 and spec["neurons"] == 48 and spec["shape"] == "diamond"
    assert spec["class"] == "pinn" and spec["problem"] == "B" and spec["study"] == "S"
    assert spec["training"] == cfg["studies"]["S"]["training"]
    assert spec["fhn"] == cfg["model"]
    assert set(spec["problem_settings"]) >= {"problem", "t_max", "ranges", "i_app", "k_to_i_app",
                                             "initial_state"}
    seeds = {s["torch_seed"] for s in specs}
    assert len(seeds) == len(specs)  # every model gets its own init seed
    assert [s["torch_seed"] for s in expand_study(cfg, "S")] == [s["torch_seed"] for s in specs]


def test_neurons_is_sum_of_widths():
    cfg = config({"layers": [1, 2, 3], "layer_configs": [["silu", 8], ["tanh", 32], ["sin", 5]]})
    for spec in expand_study(cfg, "S"):
        assert spec["neurons"] == sum(w for _, w in spec["layers"])
        assert spec["shape"] == shape_of([w for _, w in spec["layers"]])
        assert spec["shape"] in SHAPES


# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("widths, shape", [
    ([16], "rectangle"),
    ([16, 16], "rectangle"),
    ([32, 32, 32], "rectangle"),
    ([32, 16], "funnel"),
    ([32, 16, 8], "funnel"),
    ([64, 32, 16, 8], "funnel"),
    ([16, 32], "bottleneck"),
    ([8, 16, 32], "bottleneck"),
    ([32, 8, 32], "bowtie"),
    ([32, 8, 16], "bowtie"),
    ([8, 32, 8], "diamond"),  # SPEC.md section 6: the thesis's tables disagree, fhnkit uses the definition
    ([8, 32, 16], "diamond"),
    ([8, 32, 8, 32], "other"),
    ([32, 8, 32, 8], "other"),
])
def test_shape_classes(widths, shape):
    assert shape_of(widths) == shape


def test_every_shape_reachable_from_a_grid():
    cfg = config({"layers": [1, 2, 3, 4], "layer_configs": [["silu", 8], ["silu", 32]], "max_models": 100})
    assert {s["shape"] for s in expand_study(cfg, "S")} == set(SHAPES)


# --------------------------------------------------------------------------- guard


def test_max_models_guard():
    grid = {"layers": [2], "layer_configs": CONFIGS, "classes": ["ddnn", "pinn"], "max_models": 17}
    with pytest.raises(ValueError) as info:  # counted by the validation, before any spec is built
        config(grid)
    msg = str(info.value)
    assert "studies.S.grid" in msg and "18" in msg and "max_models=17" in msg
    assert len(expand_study(config({**grid, "max_models": 18}), "S")) == 18
