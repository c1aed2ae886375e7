"""`ModelSpec`: one model's spec as a type, resolved once from the planning layer's mapping."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import DEFAULT_CONFIG, REPO
from fhnkit.cell.problems import INPUTS, i_app, input_bounds, region_bounds, window_edges
from fhnkit.plan import expand_all, kind_of, n_windows
from fhnkit.plan.config import load_config
from fhnkit.plan.grid import resample_specs
from fhnkit.plan.layout import needs_region_data, needs_resampled_data
from fhnkit.plan.model_spec import ModelSpec


def _every_spec():
    for path in (DEFAULT_CONFIG, REPO / "config" / "thesis.yaml"):
        config = load_config(path)
        yield from expand_all(config)
        for study in config["studies"]:
            yield from resample_specs(config, study).values()


def test_every_model_of_the_shipped_configs_round_trips_and_resolves_as_the_planning_layer_says():
    n = 0
    for mapping in _every_spec():
        spec = ModelSpec.from_mapping(mapping)
        assert spec.to_dict() == json.loads(json.dumps(mapping))  # the mapping back, as JSON writes it
        settings = mapping["problem_settings"]
        lo, hi = input_bounds(settings)
        assert np.array_equal(spec.input_lo, lo) and np.array_equal(spec.input_hi, hi)
        assert spec.inputs == tuple(INPUTS[settings["problem"]]) and spec.kind is kind_of(mapping)
        assert spec.windows == n_windows(mapping)
        assert list(spec.window_edges) == window_edges(settings["t_max"], n_windows(mapping))
        assert spec.region_data == needs_region_data(mapping)
        assert spec.resampled_data == needs_resampled_data(mapping)
        if mapping["region"] and mapping["region_settings"]:
            assert np.array_equal(spec.region_box, region_bounds(settings, mapping["region_settings"]))
        else:
            assert spec.region_box is None
        x = np.array([[1.0, 0.2, 0.1, 0.7][: len(spec.inputs)]])
        expected = i_app(settings, x[..., 3]) if settings["problem"] == "C" else settings["i_app"]
        assert np.allclose(spec.current(x), expected)
        assert spec.name == f"{mapping['study']}/{mapping['model']}"
        n += 1
    assert n > 2500  # the default config's grid and the thesis's (2,520 models)


def test_a_mapping_that_is_not_a_model_spec_is_refused_naming_the_keys():
    mapping = next(_every_spec())
    with pytest.raises(ValueError, match=r"missing \['torch_seed'\]"):
        ModelSpec.from_mapping({k: v for k, v in mapping.items() if k != "torch_seed"})
    with pytest.raises(ValueError, match=r"unknown keys \['lr'\]"):
        ModelSpec.from_mapping(mapping | {"lr": 0.1})
    with pytest.raises(ValueError, match="training must have the keys"):
        ModelSpec.from_mapping(mapping | {"training": {**mapping["training"], "epochs": 3}})


def test_a_spec_is_a_value():
    spec = ModelSpec.from_mapping(next(_every_spec()))
    with pytest.raises(AttributeError):
        spec.batch_size = 3
    longer = spec.with_training(iterations=spec.training.iterations * 2)
    assert longer.training.iterations == 2 * spec.training.iterations and spec != longer
    assert ModelSpec.from_mapping(spec.to_dict()) == spec
