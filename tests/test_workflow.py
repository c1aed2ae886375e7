"""Real Snakemake runs: the tiny config from simulation to report.html, and config errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

# REPO, TINY, snakemake() and the session fixture tiny_run live in conftest.py (shared with
# test_report_browser.py, so that one tiny run serves both).
from conftest import DEFAULT_CONFIG, SNAKEFILE, TINY, snakemake
from fhnkit.analysis.reproduction import FINDINGS
from fhnkit.artifacts import read_parquet_meta
from fhnkit.plan.config import load_config
from fhnkit.plan.grid import expand_all


@pytest.mark.slow
def test_summary_has_one_row_per_model(tiny_run):
    specs = expand_all(load_config(TINY))
    summary = pd.read_parquet(tiny_run / "results" / "summary.parquet")
    assert len(summary) == len(specs) == 16
    assert summary.groupby("region").size().to_dict() == {False: 12, True: 4}
    assert summary.groupby("class").size().to_dict() == {"ddnn": 11, "pinn": 4, "itnn": 1}
    assert summary.groupby("windows").size().to_dict() == {1: 15, 2: 1}
    assert set(zip(summary["study"], summary["model"], strict=True)) == {(s["study"], s["model"]) for s in specs}
    failed = summary[summary["status"] != "ok"]
    assert list(failed["model"]) == ["ddnn_silu4_bs10_s0"] and list(failed["study"]) == ["diverges"]
    assert "diverged at iteration 1" in failed["error"].iloc[0]
    summary = summary[summary["status"] == "ok"]
    for col in ("mean_err", "max_err", "iter_time_s", "inference_time_s", "solver_time_s"):
        assert summary[col].notna().all() and (summary[col] > 0).all(), col
    assert (summary["max_err"] >= summary["mean_err"]).all()
    assert set(summary["class"]) == {"ddnn", "pinn", "itnn"}


@pytest.mark.slow
def test_every_stage_wrote_its_artifacts_with_metadata(tiny_run):
    results = tiny_run / "results"
    meta = read_parquet_meta(results / "C" / "data" / "train.parquet")
    assert meta["problem"] == "C" and meta["k_to_i_app"] == [0.08, 0.04] and len(meta["config_hash"]) == 16
    model_dir = results / "A_scarce" / "models" / "pinn_silu8-silu8_bs10_s0"
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["iterations"] == 60 and metrics["versions"]["fhnkit"]
    history = pd.read_parquet(model_dir / "history.parquet")
    assert list(history["iteration"]) == [20, 40, 60]
    assert {"loss_data", "loss_physics", "loss_initial", "val_mean", "val_max", "iter_time_s"} <= set(history)
    bench = json.loads((results / "A_scarce" / "benchmark.json").read_text())
    assert len(bench["models"]) == 4 and all(r["n_points"] == 10 for r in bench["models"])
    for log in ("logs/A_scarce/train/pinn_silu8_bs10_s0.log", "logs/C/benchmark.log", "logs/analysis/analyse.log"):
        assert (tiny_run / log).is_file(), log


@pytest.mark.slow
def test_analysis_tables_and_figures(tiny_run):
    domains = pd.read_csv(tiny_run / "results" / "analysis" / "time_domains.csv").set_index(
        ["study", "class", "windows"])
    assert domains.loc[("C", "pinn", 1), "median_march_err"] > 0
    assert domains.loc[("C", "pinn", 2), "median_jump_err"] > 0  # two windows: the interface jump
    assert np.isnan(domains.loc[("C", "pinn", 1), "median_jump_err"])
    assert np.isnan(domains.loc[("C", "itnn", 1), "median_march_err"])  # an ITNN rolls out instead
    cuts = pd.read_parquet(tiny_run / "results" / "C" / "error_cuts.parquet")
    assert cuts["model"].str.startswith("best continuous").any() and cuts["model"].str.startswith("best ITNN").any()
    assert set(cuts["cut"]) == {0, 1, 2} and (cuts["err"] >= 0).all()
    bench = pd.read_csv(tiny_run / "results" / "analysis" / "benchmark.csv")
    assert set(bench["study"]) == {"A_scarce", "B_S", "C"} and (bench["n_sets"] == 2000).all()
    assert {"eager-fp32", "onnxruntime-fp32"} <= set(bench["build"])
    assert (bench["speedup"] - bench["solver_time_s"] / bench["network_time_s"]).abs().max() < 1e-9
    assert (bench["network_bandwidth_fraction"] > 0).all() and (bench["solver_bandwidth_fraction"] > 0).all()
    # the solver timed is the fast kernel (FMA), with the roof that bounds it and why
    assert (bench["solver_kernel"] == "fast").all() and (bench["solver_bound_fraction"] > 0).all()
    assert bench["solver_bound_why"].str.contains("-bound: ").all()
    ttest = pd.read_csv(tiny_run / "results" / "analysis" / "ttest_pinn_ddnn.csv")
    assert list(ttest["study"]) == ["A_scarce"]
    anova = pd.read_csv(tiny_run / "results" / "analysis" / "shape_anova.csv")
    assert set(anova["study"]) >= {"A_scarce", "B_S"}
    reproduction = pd.read_csv(tiny_run / "results" / "analysis" / "reproduction.csv")
    assert set(reproduction["finding"]) == {f.claim for f in FINDINGS}  # every finding has a row, tested or not
    assert set(reproduction["verdict"]) <= {"reproduced", "not reproduced", "not tested by this config"}
    untested = reproduction[reproduction["verdict"] == "not tested by this config"]
    assert (untested["why"].str.len() > 10).all()
    pays = pd.read_csv(tiny_run / "results" / "analysis" / "surrogate_pays.csv")
    assert sorted(pays["study"]) == ["A_scarce", "A_scarce", "B_S", "B_S", "C", "C"]
    assert ((pays["solver_f32_vs_f64"] > 0) & (pays["euler_error"] > pays["solver_f32_vs_f64"])).all()
    page = (tiny_run / "results" / "analysis" / "surrogate_pays.html").read_text()
    assert "a surrogate never pays" in page or "a surrogate pays for" in page
    figures = sorted(p.name for p in (tiny_run / "results" / "figures").glob("*.png"))
    assert figures == ["accuracy_vs_neurons.png", "compile_speedup.png", "error_cuts_B_S.png", "error_cuts_C.png",
                       "error_maps_B_S.png", "error_maps_C.png",
                       "error_vs_inference.png", "inference_vs_neurons.png", "iteration_cost.png",
                       "predictions_A_scarce.png", "predictions_B_S.png", "predictions_C.png",
                       "predictions_diverges.png", "reproduction_forest.png", "rollout_C.png",
                       "training_curves_A_scarce.png", "training_curves_B_S.png", "training_curves_C.png",
                       "training_curves_diverges.png"]


@pytest.mark.slow
def test_prediction_figures_have_a_row_per_class_variant(tiny_run):
    """Two rows of panels (3.5 in each at 120 dpi) per class variant's best DDNN/PINN: A_scarce ddnn and pinn,
    B_S ddnn and ddnna, C pinn and pinn with 2 windows (not the ITNN); diverges, whose only model failed, one
    panel with a note."""
    import matplotlib.image as mpimg

    from fhnkit.analysis import plotting, prediction_figures

    heights = {study: mpimg.imread(tiny_run / "results" / "figures" / f"predictions_{study}.png").shape[0]
               for study in ("A_scarce", "B_S", "C", "diverges")}
    two_models = round(plotting.PANEL_H * (4 + prediction_figures.BLOCK_GAP) * plotting.DPI)
    assert heights == {"A_scarce": two_models, "B_S": two_models, "C": two_models,
                       "diverges": round(plotting.PANEL_H * plotting.DPI)}
    log = (tiny_run / "logs" / "analysis" / "predictions_B_S.log").read_text()
    assert "predictions of B_S -> results/figures/predictions_B_S.png" in log


@pytest.mark.slow
def test_report_is_self_contained_and_holds_everything(tiny_run):
    html = (tiny_run / "report.html").read_text()
    assert len(html) > 100_000
    for name in ("accuracy_vs_neurons.png", "error_vs_inference.png", "training_curves_A_scarce.png",
                 "shape_anova.html", "ttest_pinn_ddnn.html", "shape_variance.html", "summary.csv", "config.html",
                 "technique_anova.html", "rollout_C.png", "time_domains.html",
                 "failed_models.html", "error_maps_B_S.png", "error_maps_C.png", "resampling.html",
                 "iteration_cost.png", "predictions_A_scarce.png", "predictions_B_S.png", "predictions_C.png",
                 "predictions_diverges.png", "training_curves_diverges.png", "error_cuts_B_S.png", "error_cuts_C.png",
                 "benchmark.html", "reproduction.html", "surrogate_pays.html", "reproduction_forest.png"):
        assert name in html, name
    # a figure's job info (rule, wildcards, params) stays short: the data reach the scripts as inputs
    jobs = re.findall(r'"job_properties": \{"rule": "(\w+)", "wildcards": "[^"]*", "params": "([^"]*)"', html)
    figure_jobs = {rule: params for rule, params in jobs if rule in ("figures", "predictions_figure", "rollout_figure")}
    assert set(figure_jobs) == {"figures", "predictions_figure", "rollout_figure"}, jobs
    for rule, params in figure_jobs.items():
        assert len(params) < 200 and "parquet" not in params, (rule, params)
    assert "data:image/png;base64" in html or "base64" in html
    assert not re.search(r'src="(?!data:)[^"]+\.png"', html), "report links a PNG instead of embedding it"


@pytest.mark.slow
def test_a_diverged_model_is_named_at_the_end_and_listed_in_the_report(tiny_run):
    assert "1 model(s) diverged and were recorded as failed: diverges/ddnn_silu4_bs10_s0" in (
        tiny_run / "run.log").read_text()
    failed = pd.read_csv(tiny_run / "results" / "analysis" / "failed_models.csv")
    assert list(failed["model"]) == ["ddnn_silu4_bs10_s0"]
    bench = json.loads((tiny_run / "results" / "diverges" / "benchmark.json").read_text())
    assert bench["models"] == []


@pytest.mark.slow
def test_resampling_stage_solves_as_many_chunks_as_the_selection_made(tiny_run):
    config = load_config(TINY)
    table = pd.read_csv(tiny_run / "results" / "analysis" / "resampling.csv").set_index("study")
    assert list(table.index) == ["B_S", "C"] and list(table["rule"]) == ["top_fraction", "threshold"]
    assert table.loc["B_S", "n_centers"] == 4 and table.loc["B_S", "n_new"] == 12  # ceil(0.1 * 40) x 3
    for study in table.index:
        settings = config["studies"][study]["resample"]
        folder = tiny_run / "results" / study / "resample"
        n_new = int(table.loc[study, "n_new"])
        chunks = sorted(p.name for p in (folder / "chunks").glob("*.parquet"))
        assert len(chunks) == -(-n_new // settings["chunk"])  # data-dependent: decided by the checkpoint
        assert sorted(p.name for p in (folder / "solved").glob("*.parquet")) == chunks
        data = pd.read_parquet(folder / "data.parquet")
        assert data["traj"].nunique() == n_new
        assert (table.loc[study, ["mean_err_before", "mean_err_after"]] > 0).all()
    # the region models of B_S trained on the high-error set as well as on the region set
    history = pd.read_parquet(tiny_run / "results" / "B_S" / "models" / "ddnna_tanh8-tanh8_bs32_s0" / "history.parquet")
    assert {"loss_data_region", "loss_data_resampled", "loss_physics_region"} <= set(history.columns)
    retrained = pd.read_parquet(tiny_run / "results" / "C" / "resample" / "retrained" / "history.parquet")
    assert "loss_data_resampled" in retrained.columns and "val_rollout_mean" in retrained.columns


@pytest.mark.slow
def test_rerun_has_nothing_to_do(tiny_run):
    proc = snakemake(tiny_run, "--cores", "2", "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def _with_backend(configfile, backend: str, where) -> object:
    """A copy of `configfile` in directory `where` with data_solver.backend set to `backend`."""
    config = yaml.safe_load(configfile.read_text())
    config.setdefault("data_solver", {})["backend"] = backend
    path = where / f"{configfile.stem}_{backend}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.mark.slow
def test_switching_where_the_data_are_computed_reruns_nothing(tiny_run, tmp_path):
    """data_solver.backend says where the data are computed, not what they are (issue 21): after a finished run
    it plans no job, not even the report's configuration page."""
    proc = snakemake(tiny_run, "--cores", "2", "-n", configfile=_with_backend(TINY, "cpu", tmp_path))
    assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout[-3000:]


def test_moving_a_run_between_cpu_and_gpu_reruns_nothing(tmp_path):
    """Euler data made by numba are what the CUDA kernel makes, bit for bit: made data sets are up to date whichever
    backend the config names next (auto, cpu, cuda), and the whole DAG plans the same jobs (the models' config
    hashes do not change either: tests/test_datasets.py; a finished run switched to cpu: the test above)."""
    config = tmp_path / "euler.yaml"
    config.write_text(yaml.safe_dump({
        "seed": 3, "data_solver": {"method": "euler", "dt": 0.01, "precision": "float64", "backend": "auto"},
        "studies": {"A": {"problem": "A", "t_max": 20, "train": {"n": 10, "sampler": "grid"}, "val": {"n": 50},
                          "grid": {"layers": [1], "layer_configs": [["silu", 8]], "classes": ["ddnn"],
                                   "batch_size": [10]},
                          "training": {"iterations": 40, "validate_every": 20}}}}))
    targets = ["results/A/data/train.parquet", "results/A/data/val.parquet"]
    work = tmp_path / "run"
    snakemake(work, "--cores", "2", *targets, configfile=config)

    def planned(configfile, *targets):
        out = snakemake(work, "--cores", "2", "-n", *targets, configfile=configfile).stdout
        return re.findall(r"^(\w+)\s+(\d+)$", out, re.M), out

    whole_dag, _ = planned(config)
    assert whole_dag and "dataset" not in dict(whole_dag), whole_dag
    for backend in ("cpu", "cuda"):
        switched = _with_backend(config, backend, tmp_path)
        assert "Nothing to be done" in planned(switched, *targets)[1], backend
        assert planned(switched)[0] == whole_dag, backend


@pytest.mark.parametrize("configfile", [DEFAULT_CONFIG, DEFAULT_CONFIG.with_name("workstation.yaml"),
                                        DEFAULT_CONFIG.with_name("thesis.yaml")], ids=lambda p: p.stem)
def test_each_shipped_config_builds_the_whole_dag(tmp_path, configfile):
    """The default run, the overnight workstation run and the thesis's full-size study all validate and plan."""
    proc = snakemake(tmp_path, "-n", "--cores", "2", configfile=configfile)
    out = proc.stdout
    config = load_config(configfile)
    n_models, n_studies = len(expand_all(config)), len(config["studies"])
    n_extra_sets = sum(1 for s in config["studies"].values()
                       if True in s["grid"]["region"] and s.get("region") and s["region"]["data"]["n"] > 0)
    n_extra_sets += sum(1 for s in config["studies"].values() if s.get("marching"))
    n_resample = sum(1 for s in config["studies"].values() if s.get("resample"))
    assert re.search(rf"^train\s+{n_models}$", out, re.M), out[-2000:]
    assert re.search(rf"^benchmark\s+{n_studies}$", out, re.M), out[-2000:]
    assert re.search(rf"^dataset\s+{2 * n_studies + n_extra_sets}$", out, re.M), out[-2000:]
    if n_resample:
        assert re.search(rf"^train_resample_model\s+{2 * n_resample}$", out, re.M), out[-2000:]
        assert re.search(rf"^select_high_error\s+{n_resample}$", out, re.M), out[-2000:]
    assert re.search(r"^reproduction\s+1$", out, re.M), out[-2000:]


@pytest.mark.parametrize("edit, expected", [
    (lambda c: c["studies"]["A_scarce"]["training"].update(learning_rate=0.1),
     r"studies\.A_scarce\.training.*learning_rate.*allowed keys"),
    (lambda c: c["studies"]["B_S"]["grid"].update(layers=[0]),
     r"studies\.B_S\.grid\.layers\.0: 0 is less than the minimum of 1; allowed range"),
    (lambda c: c["studies"]["C"]["grid"].update(layer_configs=[["swish", 8]]),
     r"studies\.C\.grid\.layer_configs\.0\.0: 'swish' is not allowed; choose one of"),
])
def test_bad_config_stops_before_any_job(tmp_path, edit, expected):
    config = yaml.safe_load(TINY.read_text())
    edit(config)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    proc = snakemake(tmp_path, "--cores", "1", configfile=bad, check=False)
    assert proc.returncode != 0
    assert re.search(expected, proc.stderr), proc.stderr[-2000:]
    assert not (tmp_path / "results").exists()


def test_datasets_come_from_the_between_workflow_cache(tmp_path):
    """A second workflow with the same data settings takes the data set from the cache, byte for byte;
    another seed makes another entry."""
    import os

    cache = tmp_path / "cache"
    cache.mkdir()
    target = "results/C/data/train.parquet"
    env = {**os.environ, "SNAKEMAKE_OUTPUT_CACHE": str(cache)}

    def run(workdir, configfile=TINY):
        cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory",
               str(workdir), "--configfile", str(configfile), "--cores", "1", target, "--cache", "dataset"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout + proc.stderr

    first, second = tmp_path / "first", tmp_path / "second"
    run(first)
    assert len(list(cache.iterdir())) == 1
    log = run(second)
    assert "Symlinking output file results/C/data/train.parquet from cache" in log
    assert (first / target).read_bytes() == (second / target).read_bytes()
    other = yaml.safe_load(TINY.read_text()) | {"seed": 8}
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(other))
    run(tmp_path / "third", tmp_path / "other.yaml")
    assert len(list(cache.iterdir())) == 2
    assert (tmp_path / "third" / target).read_bytes() != (first / target).read_bytes()
