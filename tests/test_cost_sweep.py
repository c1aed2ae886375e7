"""The architecture cost sweep (thesis §4.4, Fig. 39-40, Tables 12-13): grid, real timings of real builds,
eq. 4.3 ANOVAs (type II), figures, and its outputs in the tiny workflow run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
import yaml
from statsmodels.stats.anova import anova_lm

from conftest import TINY  # the tiny config of the session fixture tiny_run (conftest.py)
from fhnkit import analysis as figures
from fhnkit.analysis import (
    SPEEDUP_FORMULA,
    TIME_FORMULA,
    backend_label,
    cost_anova,
    cost_sweep_tables,
    write_timings_page,
)
from fhnkit.artifacts import read_parquet_meta
from fhnkit.inference.cost_sweep import (
    TIMING_COLUMNS,
    make_network,
    run_sweep,
    sweep_bench,
    sweep_grid,
    sweep_settings,
    write_sweep,
)
from fhnkit.nets.mlp import n_params
from fhnkit.plan.config import validate_config

PNG = b"\x89PNG\r\n\x1a\n"


STUDIES = {"A": {"problem": "A", "train": {"n": 10}, "val": {"n": 10},
                  "grid": {"layers": [1], "layer_configs": [["silu", 4]]}}}


def default_sweep() -> dict:
    return validate_config({"studies": STUDIES})["cost_sweep"]


def small_config(**compile_settings) -> dict:
    return validate_config({
        "seed": 3, "benchmark": {"repeats": 2, "warmup": 0, "threads": 1},
        "cost_sweep": {"widths": [8, 16], "layers": [1, 2], "n_sets": 100},
        "compile": compile_settings, "studies": STUDIES})


@pytest.fixture(scope="module")
def swept():
    """A real sweep of 4 architectures on this machine (eager plus its compiled backend)."""
    return run_sweep(small_config(), progress=False)


def test_defaults_follow_the_thesis_sweep():
    sweep = small_config()["cost_sweep"]
    default = default_sweep()
    assert default["activation"] == "silu" and default["enabled"] is True
    assert default["widths"] == [8, 16, 32, 64, 128] and default["layers"] == [1, 2, 3, 4, 5]
    assert default["problem"] == "B" and default["n_sets"] == 20000
    assert sweep_settings(default)["ranges"] == {"u0": [0.0, 1.0], "w0": [0.0, 0.18], "K": [0.0, 1.0]}
    # repeats and warmup come from `benchmark` unless the sweep sets them
    config = small_config()
    assert sweep_bench(config)["repeats"] == 2 and sweep_bench(config)["n_sets"] == sweep["n_sets"] == 100
    config["cost_sweep"]["repeats"] = 5
    assert sweep_bench(config)["repeats"] == 5


def test_grid_is_every_width_times_every_layer_count():
    grid = sweep_grid(default_sweep())
    assert len(grid) == 25 and len(set(grid)) == 25
    assert {w * n for w, n in grid} == {w * n for w in (8, 16, 32, 64, 128) for n in range(1, 6)}
    assert max(w * n for w, n in grid) == 640 and min(w * n for w, n in grid) == 8  # the thesis's 8-640


def test_untrained_network_is_seeded_with_the_asked_shape():
    settings = sweep_settings(small_config()["cost_sweep"])
    net = make_network(settings, "silu", 16, 3, seed=11)
    assert net.spec["inputs"] == ["t", "U0", "W0"] and net.spec["layers"] == [["silu", 16]] * 3
    assert n_params(net) == (3 * 16 + 16) + 2 * (16 * 16 + 16) + (16 * 2 + 2)
    again, other = make_network(settings, "silu", 16, 3, seed=11), make_network(settings, "silu", 16, 3, seed=12)
    x = np.random.default_rng(0).uniform(0, 1, (5, 3)).astype(np.float32)
    import torch

    with torch.no_grad():
        y, y2, y3 = (m(torch.from_numpy(x)) for m in (net, again, other))
    assert torch.equal(y, y2) and not torch.equal(y, y3)


def test_timing_table_has_one_row_per_architecture_and_build(swept):
    timings, meta = swept
    assert list(timings.columns) == TIMING_COLUMNS
    assert meta["builds"][0] == "eager-fp32" and len(timings) == 4 * len(meta["builds"])
    assert set(timings["build"]) == set(meta["builds"])
    assert (timings["neurons"] == timings["width"] * timings["layers"]).all()
    assert set(zip(timings["width"], timings["layers"], strict=True)) == {(8, 1), (16, 1), (8, 2), (16, 2)}
    for column in ("inference_time_s", "eager_time_s", "solver_time_s"):  # seconds, positive and finite
        assert np.isfinite(timings[column]).all() and (timings[column] > 0).all(), column
    assert (timings["inference_time_iqr_s"] >= 0).all()
    eager = timings[timings["build"] == "eager-fp32"]
    assert np.allclose(eager["compile_speedup"], 1.0) and np.allclose(eager["inference_time_s"], eager["eager_time_s"])
    assert np.allclose(timings["compile_speedup"], timings["eager_time_s"] / timings["inference_time_s"])
    assert np.allclose(timings["speedup"], timings["solver_time_s"] / timings["inference_time_s"])
    assert (timings["n_sets"] == 100).all() and (timings["n_points"] == 10).all()
    settings = sweep_settings(small_config()["cost_sweep"])
    shapes = zip(timings["width"], timings["layers"], strict=True)
    assert (timings["n_params"] == [n_params(make_network(settings, "silu", w, n, 0)) for w, n in shapes]).all()


def test_write_sweep_keeps_the_plan_with_the_table(swept, tmp_path):
    timings, meta = swept
    write_sweep(timings, meta, tmp_path / "t.parquet", "abc")
    write_timings_page(timings, meta, tmp_path / "t.csv", tmp_path / "t.html")
    assert pd.read_parquet(tmp_path / "t.parquet").equals(timings)
    assert len(pd.read_csv(tmp_path / "t.csv")) == len(timings)
    stored = read_parquet_meta(tmp_path / "t.parquet")
    assert stored["builds"] == meta["builds"] and stored["skipped"] == meta["skipped"]
    assert stored["config_hash"] == "abc" and "<table" in (tmp_path / "t.html").read_text()


def synthetic_timings(seed: int = 0) -> pd.DataFrame:
    """25 architectures x (eager, ONNX): time linear in neurons plus a per-layer cost, noisy."""
    rng = np.random.default_rng(seed)
    rows = []
    for layers in range(1, 6):
        for width in (8, 16, 32, 64, 128):
            neurons = width * layers
            eager = 1e-4 * neurons + 5e-4 * layers + rng.normal(0, 1e-4)
            onnx = 0.7e-4 * neurons + 6e-4 * layers + rng.normal(0, 1e-4)
            for build, t in (("eager-fp32", eager), ("onnxruntime-fp32", onnx)):
                rows.append({"width": width, "layers": layers, "neurons": neurons, "build": build,
                             "device": "cpu", "inference_time_s": t, "eager_time_s": eager,
                             "compile_speedup": eager / t})
    return pd.DataFrame(rows)


def test_time_anova_is_eq_4_3_type_ii_per_build():
    timings = synthetic_timings()
    table = cost_anova(timings, "time")
    assert list(dict.fromkeys(table["build"])) == ["eager-fp32", "onnxruntime-fp32"]
    assert (table["formula"] == TIME_FORMULA).all() and TIME_FORMULA == "inference_time_s ~ neurons*C(layers)"
    assert (table["anova_type"] == 2).all() and table.attrs["anova_type"] == 2
    onnx = table[table["build"] == "onnxruntime-fp32"].set_index("term")
    assert list(onnx.index) == ["C(layers)", "neurons", "neurons:C(layers)", "Residual"]
    data = timings[timings["build"] == "onnxruntime-fp32"]
    want = anova_lm(smf.ols(TIME_FORMULA, data=data).fit(), typ=2)
    assert np.allclose(onnx["sum_sq"], want["sum_sq"]) and np.allclose(onnx["F"].iloc[:-1], want["F"].iloc[:-1])
    assert onnx.loc["neurons", "F"] > 100 and onnx.loc["neurons", "PR(>F)"] < 1e-6
    assert float(onnx.loc["neurons", "coef"]) > 0  # cost grows with neurons
    assert onnx.loc["C(layers)", "coef"].count("[T.") == 4  # one coefficient per extra layer count
    assert (onnx["n_obs"] == 25).all()


def test_speedup_anova_fits_the_compiled_builds_only():
    table = cost_anova(synthetic_timings(), "speedup")
    assert set(table["build"]) == {"onnxruntime-fp32"}
    assert (table["formula"] == SPEEDUP_FORMULA).all() and (table["anova_type"] == 2).all()
    assert SPEEDUP_FORMULA == "compile_speedup ~ neurons*C(layers)"
    assert np.isfinite(table.set_index("term").loc["neurons", "F"])


def test_eager_only_gives_a_note_instead_of_a_speedup_fit(tmp_path):
    timings, meta = run_sweep(small_config(backends=["eager"], precisions=["fp32"]), progress=False)
    assert set(timings["build"]) == {"eager-fp32"} and len(timings) == 4
    table = cost_anova(timings, "speedup", meta["skipped"])
    assert len(table) == 1 and table["term"].iloc[0] == "(model)" and np.isnan(table["F"].iloc[0])
    assert "no compiled backend" in table["note"].iloc[0] and table["anova_type"].iloc[0] == 2
    tables, labels = cost_sweep_tables(timings, meta, small_config()["cost_sweep"], small_config()["benchmark"])
    assert labels == {} and "only eager torch ran" in tables["speedup"][2]
    path = figures.compile_speedup(timings, tmp_path / "speedup.png", labels)
    assert path.read_bytes().startswith(PNG)


def test_backend_labels():
    assert backend_label("onnxruntime-fp32", "cpu") == "ONNX Runtime over eager PyTorch (CPU)"
    assert backend_label("tensorrt-fp32", "cuda") == "TensorRT over PyTorch (GPU)"
    assert backend_label("tensorrt-fp16", "cuda") == "TensorRT fp16 over PyTorch (GPU)"


def test_figures_are_drawn_from_real_timings(swept, tmp_path):
    timings, meta = swept
    tables, labels = cost_sweep_tables(timings, meta, small_config()["cost_sweep"], small_config()["benchmark"])
    assert set(tables) == {"time", "speedup"} and "Type II" in tables["time"][2]
    for path in (figures.inference_vs_neurons(timings, tmp_path / "time.png"),
                 figures.compile_speedup(timings, tmp_path / "speedup.png", labels)):
        data = path.read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000


@pytest.mark.slow
def test_tiny_run_writes_the_sweep_its_anovas_and_figures(tiny_run):
    sweep = yaml.safe_load(TINY.read_text())["cost_sweep"]
    results = tiny_run / "results"
    timings = pd.read_csv(results / "cost_sweep" / "timings.csv")
    parquet = pd.read_parquet(results / "cost_sweep" / "timings.parquet")
    meta = read_parquet_meta(results / "cost_sweep" / "timings.parquet")
    assert set(meta["builds"]) == set(timings["build"]) and meta["config_hash"] and meta["versions"]
    builds = sorted(set(timings["build"]))
    assert "eager-fp32" in builds and len(parquet) == len(timings)
    assert len(timings) == len(sweep["widths"]) * len(sweep["layers"]) * len(builds)
    assert list(timings.columns) == TIMING_COLUMNS
    for response in ("time", "speedup"):
        table = pd.read_csv(results / "analysis" / f"cost_anova_{response}.csv")
        assert (table["anova_type"] == 2).all()
        assert "Type II" in (results / "analysis" / f"cost_anova_{response}.html").read_text()
    time_table = pd.read_csv(results / "analysis" / "cost_anova_time.csv")
    assert set(time_table["build"]) == set(builds) and (time_table["formula"] == TIME_FORMULA).all()
    for name in ("inference_vs_neurons.png", "compile_speedup.png"):
        data = (results / "figures" / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000, name
    html = (tiny_run / "report.html").read_text()
    for name in ("inference_vs_neurons.png", "compile_speedup.png", "cost_anova_time.html",
                 "cost_anova_speedup.html", "timings.html"):
        assert name in html, name
    assert (tiny_run / "logs" / "cost_sweep" / "sweep.log").is_file()
