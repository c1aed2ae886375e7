"""The reproduction page's verdicts and the "does a surrogate pay?" table, on summaries with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fhnkit.analysis.reproduction import (
    FINDINGS,
    NOT_REPRODUCED,
    NOT_TESTED,
    REPRODUCED,
    Evidence,
    reproduction_table,
)
from fhnkit.analysis.surrogate_pays import pays_table, solver_floor, verdict
from fhnkit.plan import validate_config


def _config(studies: dict) -> dict:
    return validate_config({"studies": studies})


A = {"problem": "A", "t_max": 20, "val": {"n": 50},
     "grid": {"layers": [1], "layer_configs": [["tanh", 8]], "classes": ["ddnn", "pinn"]}}


def _models(study: str, cls: str, errors, **extra) -> list[dict]:
    return [{"study": study, "model": f"{cls}_{i}", "class": cls, "status": "ok", "mean_err": e, "region": False,
             "windows": 1, "depth": 2, "neurons": 16, "iter_time_s": 1e-3, **extra} for i, e in enumerate(errors)]


def _row(table: pd.DataFrame, key: str) -> list[dict]:
    claim = next(f.claim for f in FINDINGS if f.key == key)
    return table[table["finding"] == claim].to_dict("records")


def test_problem_a_verdicts_follow_sign_and_significance_whatever_the_studies_are_called():
    config = _config({"few_points": {**A, "train": {"n": 10}}, "many_points": {**A, "train": {"n": 1000}}})
    rng = np.random.default_rng(0)
    summary = pd.DataFrame(
        _models("few_points", "ddnn", 2e-2 * np.exp(rng.normal(0, 0.2, 5)))
        + _models("few_points", "pinn", 1e-4 * np.exp(rng.normal(0, 0.2, 5)))
        + _models("many_points", "ddnn", 1e-3 * np.exp(rng.normal(0, 0.3, 5)))
        + _models("many_points", "pinn", 1e-3 * np.exp(rng.normal(0, 0.3, 5))))
    table = reproduction_table(Evidence(summary, config))
    (scarce,) = _row(table, "a_scarce")
    assert scarce["study"] == "few_points" and scarce["verdict"] == REPRODUCED and scarce["p_value"] < 1e-3
    assert scarce["n"] == "DDNN 5, PINN 5" and "95% CI" in scarce["measured"]
    (dense,) = _row(table, "a_dense")
    assert dense["study"] == "many_points" and dense["verdict"] == REPRODUCED and dense["p_value"] >= 0.05

    flipped = summary.assign(**{"class": summary["class"].map({"ddnn": "pinn", "pinn": "ddnn"})})
    (scarce,) = _row(reproduction_table(Evidence(flipped, config)), "a_scarce")
    assert scarce["verdict"] == NOT_REPRODUCED


def test_a_finding_without_a_study_or_replicates_is_not_tested_and_says_why():
    config = _config({"only": {**A, "train": {"n": 10}}})
    summary = pd.DataFrame(_models("only", "ddnn", [0.02]) + _models("only", "pinn", [1e-4]))
    table = reproduction_table(Evidence(summary, config))
    (scarce,) = _row(table, "a_scarce")
    assert scarce["verdict"] == NOT_TESTED and "seeds" in scarce["why"]
    (dense,) = _row(table, "a_dense")
    assert dense["verdict"] == NOT_TESTED and "dense" in dense["why"]
    for key in ("bc_window", "tensor_cores", "table11", "itnn_region"):
        (row,) = _row(table, key)
        assert row["verdict"] == NOT_TESTED and row["why"], key
    assert set(table["verdict"]) <= {REPRODUCED, NOT_REPRODUCED, NOT_TESTED}
    assert table["rule"].str.len().min() > 20  # every row states its rule


def test_table11_on_a_gpu_is_judged_and_on_a_cpu_is_not_tested():
    config = _config({"only": {**A, "train": {"n": 10}}})
    bench = pd.DataFrame([{"study": "only", "model": "m", "build": "tensorrt-fp16", "n_sets": 16_000_000,
                           "device": "cuda", "speedup": 2.5, "solver_bandwidth_fraction": 0.9}])
    (row,) = _row(reproduction_table(Evidence(pd.DataFrame(_models("only", "ddnn", [1.0])), config, benchmark=bench)),
                  "table11")
    assert row["verdict"] == REPRODUCED
    (row,) = _row(reproduction_table(Evidence(pd.DataFrame(_models("only", "ddnn", [1.0])), config,
                                              benchmark=bench.assign(device="cpu"))), "table11")
    assert row["verdict"] == NOT_TESTED and "GPU" in row["why"]
    # a workstation run: a CPU build faster than the solver does not stand for the GPU's slower one
    mixed = pd.concat([bench.assign(speedup=0.4), bench.assign(device="cpu", build="onnx-cpu", speedup=3.0)])
    (row,) = _row(reproduction_table(Evidence(pd.DataFrame(_models("only", "ddnn", [1.0])), config, benchmark=mixed)),
                  "table11")
    assert row["verdict"] == NOT_REPRODUCED and "tensorrt-fp16" in row["measured"] and "on cuda" in row["measured"]
    assert row["n"] == "1 GPU builds"


def _bench_rows(study, speedups: dict) -> list[dict]:
    return [{"study": study, "model": model, "build": build, "device": "cpu", "speedup": s,
             "network_compute_fraction": 0.01, "network_bandwidth_fraction": 0.01, "solver_compute_fraction": 0.2,
             "solver_bandwidth_fraction": 0.1} for (model, build), s in speedups.items()]


def test_a_surrogate_pays_only_when_faster_and_within_the_bound():
    summary = pd.DataFrame(_models("S", "ddnn", [1e-3, 5e-2]))  # ddnn_0 accurate, ddnn_1 not
    floors = {"S": {"solver_f32_vs_f64": 1e-7, "euler_error": 1e-2}}
    slow = pd.DataFrame(_bench_rows("S", {("ddnn_0", "onnx"): 0.05, ("ddnn_0", "eager"): 0.02,
                                          ("ddnn_1", "onnx"): 3.0}))
    table = pays_table(summary, slow, floors, None)
    best, fastest = table.to_dict("records")
    assert best["model"] == "ddnn_0" and best["build"] == "onnx" and best["error_vs_euler"] == pytest.approx(0.1)
    assert fastest["model"] == "ddnn_0" and not fastest["pays"]  # ddnn_1 is fast but beyond the Euler error
    assert "never pays" in verdict(table) and "20x slower" in verdict(table)
    fast = pd.DataFrame(_bench_rows("S", {("ddnn_0", "onnx"): 4.0, ("ddnn_1", "onnx"): 9.0}))
    table = pays_table(summary, fast, floors, None)
    assert table["pays"].all() and "pays for S" in verdict(table)
    assert not pays_table(summary, fast, floors, 1e-4)["pays"].any()  # a stricter bound: none within it


def test_the_solvers_own_errors_are_the_floors():
    config = validate_config({"studies": {"B": {"problem": "B", "t_max": 10, "train": {"n": 20}, "val": {"n": 20},
                                                "grid": {"layers": [1], "layer_configs": [["tanh", 8]]}}}})
    floor = solver_floor(config, "B", 200)
    assert 0 < floor["solver_f32_vs_f64"] < 1e-5  # rounding alone
    assert floor["euler_error"] > 100 * floor["solver_f32_vs_f64"]  # dt = 0.1 against the data solver
