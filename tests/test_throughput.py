"""`fhnkit bench train` at any size (issue 22): a grid over replicate seeds, some classes only, the fleet alone,
with groups, peak memory and host syncs in its records; the thesis grid's hours from each class's own rate."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import DEFAULT_CONFIG, TINY
from fhnkit.cli import main
from fhnkit.gpu_check import device_hours, fleets_to_time, model_iterations_by_class
from fhnkit.plan import expand_study
from fhnkit.plan.config import load_config
from fhnkit.training.throughput import bench_train, peak_memory, replicated, reset_peak_memory


def test_replicas_multiply_the_grid_with_new_seeds_and_new_initial_weights():
    config = load_config(DEFAULT_CONFIG)
    base = expand_study(config, "B_S")
    scaled = expand_study(replicated(config, "B_S", 3), "B_S")
    assert len(scaled) == 3 * len(base)
    assert len({s["model"] for s in scaled}) == len(scaled) and len({s["torch_seed"] for s in scaled}) == len(scaled)
    assert [s["model"] for s in base] == [s["model"] for s in scaled if s["seed"] in (0,)]  # the original models kept
    assert expand_study(replicated(config, "B_S", 1), "B_S") == base
    with pytest.raises(ValueError, match="at least 1"):
        replicated(config, "B_S", 0)
    huge = replicated(config, "B_S", 200)  # 7,200 models: above grid.max_models, raised with the grid
    assert len(expand_study(huge, "B_S")) == 200 * len(base)


def test_fleet_alone_of_one_class_with_its_records(tmp_path):
    out = tmp_path / "train.json"
    assert main(["bench", "train", str(TINY), "--study", "A_scarce", "--iterations", "10", "--classes", "pinn",
                 "--replicas", "2", "--no-solo", "-o", str(out)]) == 0
    result = json.loads(out.read_text())
    (fleet,) = result["records"]
    assert fleet["mode"] == "fleet" and fleet["models"] == 4 and fleet["replicas"] == 2 and result["ratio"] is None
    assert result["classes"] == {"pinn": 4} and fleet["groups"] == 1  # PINNs of 1 and 2 layers, in one group
    assert fleet["host_syncs_per_iteration"] is None  # a CPU: nothing to wait for
    assert fleet["peak_memory_bytes"] > 10 * 2**20 and "resident set" in fleet["peak_memory_of"]


def test_no_model_of_the_classes_is_a_clear_refusal(capsys):
    assert main(["bench", "train", str(TINY), "--study", "B_S", "--classes", "pinn", "--iterations", "5"]) == 2
    assert "no model of pinn" in capsys.readouterr().err


def test_peak_memory_sees_an_allocation_made_after_the_reset():
    import numpy as np

    scope = reset_peak_memory("cpu")
    before = peak_memory("cpu")
    block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
    after = peak_memory("cpu")
    assert block.sum() > 0 and after - before >= 60 * 2**20, (scope, before, after)


def test_bench_train_solo_and_fleet_train_the_same_models():
    config = load_config(TINY)
    result = bench_train(config, "A_scarce", 5, "cpu", replicas=1, classes=["ddnn"])
    fleet, solo = result["records"]
    assert fleet["models"] == solo["models"] == 2 and solo["groups"] == 2 and result["ratio"] > 0


def test_bench_train_times_the_plain_pytorch_loop_of_the_same_networks(monkeypatch):
    from fhnkit.training import throughput

    trained = []
    real = throughput.plain_loop

    def watched(runs, iterations):
        before = [torch.cat([p.detach().flatten().clone() for p in run.model.parameters()]) for run in runs]
        real(runs, iterations)
        trained.extend(float((torch.cat([p.detach().flatten() for p in run.model.parameters()]) - b).abs().max())
                       for run, b in zip(runs, before, strict=True))
    monkeypatch.setattr(throughput, "plain_loop", watched)
    result = bench_train(load_config(TINY), "A_scarce", 5, "cpu", classes=["ddnn"], solo=False, plain=True)
    fleet, plain = result["records"]
    assert plain["mode"] == "plain" and plain["models"] == fleet["models"] == 2 and plain["groups"] == 2
    assert result["plain_ratio"] == pytest.approx(fleet["model_iterations_per_s"] / plain["model_iterations_per_s"])
    assert len(trained) == 2 and min(trained) > 0  # every network took its steps
    with pytest.raises(ValueError, match="one data term"):
        bench_train(load_config(TINY), "A_scarce", 5, "cpu", classes=["pinn"], solo=False, plain=True)


def test_thesis_grid_model_iterations_per_class():
    """config/thesis.yaml: 2.23e9 DDNN, 6.5e8 PINN and 7.2e7 ITNN model-iterations (issue 22's count)."""
    totals = model_iterations_by_class(load_config(DEFAULT_CONFIG.with_name("thesis.yaml")))
    assert totals["ddnn"] == pytest.approx(2.23e9, rel=0.01)
    assert totals["pinn"] == pytest.approx(6.5e8, rel=0.01)
    assert totals["itnn"] == pytest.approx(7.2e7, rel=0.01)


def test_device_hours_use_each_class_its_own_rate():
    total, hours = device_hours({"ddnn": 3.6e9, "pinn": 3.6e8}, {"ddnn": 1e6, "pinn": 1e5})
    assert hours == {"ddnn": pytest.approx(1.0), "pinn": pytest.approx(1.0)} and total == pytest.approx(2.0)
    assert device_hours({"ddnn": 1.0, "itnn": 1.0}, {"ddnn": 1.0})[0] is None  # a class not measured: no total


def test_the_gpu_check_times_every_class_at_two_sizes():
    fleets = fleets_to_time(load_config(DEFAULT_CONFIG), quick=False)
    sizes = {(f.label, f.study): f.replicas for f in fleets if not f.solo}
    assert sizes == {("ddnn", "B_S"): 64, ("pinn", "A_scarce"): 32, ("itnn", "C"): 8}
    assert len(expand_study(replicated(load_config(DEFAULT_CONFIG), "B_S", 64), "B_S")) == 2304
    assert ("mixed", "B_S_techniques") in {(f.label, f.study) for f in fleets}
