"""What a config says about how work runs, kept out of what it makes (fhnkit.plan.execution), and the
content records that catch a data set changed in place (fhnkit.content)."""

from __future__ import annotations

import copy
import json
import os
import pickle

import yaml

from conftest import TINY
from fhnkit.content import content_problem, record_content, record_path
from fhnkit.plan import ExecutionOnly, canonical, expand_all, model_identity, results_config, validate_config
from fhnkit.plan.execution import TOP_EXECUTION_KEYS, TRAINING_EXECUTION_KEYS


def _config(**training):
    config = yaml.safe_load(TINY.read_text())
    config["studies"]["B_S"]["training"].update(training)
    return validate_config(config)


def test_a_models_config_hash_ignores_how_it_runs_and_follows_what_makes_it():
    def hashes(config):
        return {(s["study"], s["model"]): s["config_hash"] for s in expand_all(config)}

    base = hashes(_config())
    assert hashes(_config(threads=4, device="cpu", checkpoint_every=7)) == base
    longer = hashes(_config(iterations=41))
    assert {key for key in base if longer[key] != base[key]} == {key for key in base if key[0] == "B_S"}


def test_model_identity_and_the_results_config_leave_out_every_execution_key():
    config = _config()
    spec = expand_all(config)[0]
    assert not set(TRAINING_EXECUTION_KEYS) & set(model_identity(spec)["training"])
    assert set(TRAINING_EXECUTION_KEYS) <= set(spec["training"])  # the spec itself keeps them (the job needs them)
    shown = results_config(config)
    assert not set(TOP_EXECUTION_KEYS) & set(shown) and "backend" not in shown["data_solver"]
    assert all(not set(TRAINING_EXECUTION_KEYS) & set(s["training"]) for s in shown["studies"].values())


def test_canonical_orders_every_mapping_and_keeps_lists():
    value = {"b": [{"z": 1, "a": 2}], "a": {"y": 1, "x": 2}}
    out = canonical(value)
    assert list(out) == ["a", "b"] and list(out["a"]) == ["x", "y"] and list(out["b"][0]) == ["a", "z"]
    assert out == value
    shuffled = copy.deepcopy(yaml.safe_load(TINY.read_text()))
    shuffled = dict(reversed(list(shuffled.items())))
    plain = validate_config(yaml.safe_load(TINY.read_text()))
    assert repr(canonical(validate_config(shuffled))) == repr(canonical(plain))


def test_execution_only_is_one_constant_text_to_snakemake_and_its_value_to_the_script():
    a, b = ExecutionOnly({"fleet": 8}), ExecutionOnly({"fleet": 64})
    assert repr(a) == repr(b) and json.dumps(a) == json.dumps(b) == '"execution-only"'
    assert pickle.loads(pickle.dumps(a)).value == {"fleet": 8}


def test_a_file_changed_in_place_is_caught_and_a_touched_one_trusted(tmp_path):
    path = tmp_path / "d.parquet"
    path.write_bytes(b"0123456789" * 100)
    assert content_problem(path) is None  # no record: a file of an older fhnkit
    record_content(path)
    assert content_problem(path) is None
    os.utime(path, ns=(1, 10**18))  # the same bytes, another time: trusted, and the record follows
    assert content_problem(path) is None and json.loads(record_path(path).read_text())["mtime_ns"] == 10**18
    data = bytearray(path.read_bytes())
    data[500] ^= 0xFF  # one byte in the middle, the size unchanged
    path.write_bytes(bytes(data))
    assert "other bytes than when it was written" in content_problem(path)
