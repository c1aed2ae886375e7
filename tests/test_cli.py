"""Tests of the `fhnkit` command line (fhnkit.cli), run in-process through `main([...])`.

Each subcommand is checked against the package function it wraps (simulate
against `euler`, evaluate against the trainer's own metrics), and every user
error is checked to give its exit status and a message without a traceback.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from fhnkit import __version__
from fhnkit.artifacts import read_parquet_meta
from fhnkit.cell.model import FHNParams
from fhnkit.cli import main
from fhnkit.solvers.cpu import euler

TINY = {"studies": {"A": {
    "problem": "A",
    "train": {"n": 10, "sampler": "grid"},
    "val": {"n": 50},
    "grid": {"layers": [1], "layer_configs": [["silu", 8]], "classes": ["ddnn", "pinn"], "batch_size": [10]},
    "training": {"iterations": 30, "validate_every": 10},
}}}
SUBCOMMANDS = ["simulate", "validate", "grid", "dataset", "spec", "train", "evaluate", "env"]


def write_config(path: Path, config: dict) -> str:
    path.write_text(yaml.safe_dump(config))
    return str(path)


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def user_error(capsys, code_expected: int, *argv) -> str:
    """Run a command that must fail cleanly; return its stderr."""
    code, _, err = run(capsys, *argv)
    assert code == code_expected, err
    assert "error" in err and "Traceback" not in err
    return err


# --------------------------------------------------------------------------- simulate


def test_simulate_parquet_matches_euler_and_has_metadata(tmp_path, capsys):
    out = tmp_path / "sim.parquet"
    code, stdout, _ = run(capsys, "simulate", "--u0", 0.5, 0.2, "--w0", 0, "--i-app", 0, 0.1, "--dt", 0.01,
                          "--t-end", 2, "--save-every", 10, "-o", out)
    assert code == 0 and "wrote 42 rows" in stdout
    df = pd.read_parquet(out)
    assert list(df.columns) == ["set", "t", "U0", "W0", "I_app", "U", "W"]
    times, U, W = euler([0.5, 0.2], [0.0, 0.0], [0.0, 0.1], FHNParams(), 0.01, 200, 10)
    for s in (0, 1):
        rows = df[df["set"] == s]
        np.testing.assert_array_equal(rows["t"], times)
        np.testing.assert_array_equal(rows["U"], U[:, s])
        np.testing.assert_array_equal(rows["W"], W[:, s])
        assert rows["I_app"].unique().tolist() == [[0.0, 0.1][s]]
    meta = read_parquet_meta(out)
    assert meta["command"] == "simulate" and meta["fhn"] == FHNParams().as_dict()
    assert (meta["dt"], meta["t_end"], meta["n_steps"], meta["save_every"]) == (0.01, 2.0, 200, 10)
    assert meta["precision"] == "float64" and meta["versions"]["fhnkit"] == __version__
    assert meta["k_to_i_app"] is None


def test_simulate_csv_problem_c_map_and_model_parameters(tmp_path, capsys):
    out = tmp_path / "sim.csv"
    code, _, _ = run(capsys, "simulate", "--u0", 0.5, "--w0", 0.05, "--K", 0, 0.5, 1, "--k-to-i-app", 0.08, 0.04,
                     "--t-end", 1, "--dt", 0.005, "--save-every", 20, "--k", 8, "--gamma", 0.5, "-o", out)
    assert code == 0
    df = pd.read_csv(out)
    assert list(df.columns) == ["set", "t", "U0", "W0", "I_app", "K", "U", "W"]
    np.testing.assert_allclose(df.groupby("set")["I_app"].first(), [0.08, 0.10, 0.12], rtol=0, atol=1e-15)
    _, U, W = euler(0.5, 0.05, np.array([0.08, 0.10, 0.12]), FHNParams(k=8, gamma=0.5), 0.005, 200, 20)
    np.testing.assert_allclose(df["U"], U.T.reshape(-1), rtol=1e-15, atol=0)
    np.testing.assert_allclose(df["W"], W.T.reshape(-1), rtol=1e-15, atol=0)


def test_simulate_to_stdout_float32(capsys):
    code, out, _ = run(capsys, "simulate", "--t-end", 1, "--precision", "float32")
    assert code == 0
    assert "1 parameter set(s) x 11 stored times" in out
    assert out.splitlines()[1].split() == ["set", "t", "U0", "W0", "I_app", "U", "W"]


@pytest.mark.parametrize("argv, needle", [
    (["--dt", 0.3], "does not divide"),
    (["--save-every", 3], "--save-every"),
    (["--u0", 0.1, 0.2, 0.3, "--w0", 0, 0.1], "1 value or n values"),
    (["--K", 1, "--i-app", 0], "not both"),
    (["-o", "out.txt"], ".parquet or .csv"),
])
def test_simulate_user_errors(capsys, argv, needle):
    assert needle in user_error(capsys, 2, "simulate", *argv)


# --------------------------------------------------------------------------- validate and grid


def test_validate_good_config(tmp_path, capsys):
    code, out, _ = run(capsys, "validate", write_config(tmp_path / "c.yaml", TINY))
    assert code == 0
    assert "studies: 1, models: 2" in out and "A: problem A, 2 models" in out


def test_validate_unknown_key(tmp_path, capsys):
    bad = json.loads(json.dumps(TINY))
    bad["studies"]["A"]["training"]["learning_rate"] = 0.01
    err = user_error(capsys, 2, "validate", write_config(tmp_path / "c.yaml", bad))
    assert "studies.A.training" in err and "learning_rate" in err


def test_validate_out_of_range(tmp_path, capsys):
    bad = json.loads(json.dumps(TINY))
    bad["studies"]["A"]["training"]["lr"] = 5
    err = user_error(capsys, 2, "validate", write_config(tmp_path / "c.yaml", bad))
    assert "studies.A.training.lr" in err and "allowed range" in err and "'maximum': 1" in err


def test_validate_missing_and_unparsable_files(tmp_path, capsys):
    assert "not_there.yaml" in user_error(capsys, 2, "validate", tmp_path / "not_there.yaml")
    (tmp_path / "broken.yaml").write_text("studies: [unclosed\n")
    user_error(capsys, 2, "validate", tmp_path / "broken.yaml")


def test_grid_lists_every_model(tmp_path, capsys):
    config = write_config(tmp_path / "c.yaml", TINY)
    code, out, _ = run(capsys, "grid", config)
    assert code == 0 and "2 models" in out and "pinn_silu8_bs10_s0" in out and "ddnn_silu8_bs10_s0" in out
    code, out, _ = run(capsys, "grid", config, "--study", "A", "--json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 2
    assert set(rows[0]) == {"study", "model", "class", "arch", "neurons", "shape", "batch_size", "seed"}
    assert {r["class"] for r in rows} == {"ddnn", "pinn"} and rows[0]["neurons"] == 8
    assert "studies in this config" in user_error(capsys, 2, "grid", config, "--study", "nope")


# --------------------------------------------------------------------------- dataset -> spec -> train -> evaluate


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """The tiny study's data sets, the PINN's spec, and the trained PINN."""
    d = tmp_path_factory.mktemp("chain")
    config = write_config(d / "c.yaml", TINY)
    codes = [main(["dataset", config, "--study", "A", "--split", s, "-o", str(d / f"{s}.parquet")])
             for s in ("train", "val")]
    codes.append(main(["spec", config, "--study", "A", "--model", "pinn_silu8_bs10_s0", "-o", str(d / "spec.json")]))
    codes.append(main(["train", "--spec", str(d / "spec.json"), "--train", str(d / "train.parquet"),
                       "--val", str(d / "val.parquet"), "--out", str(d / "model"), "--no-progress"]))
    assert codes == [0, 0, 0, 0]
    return d


def test_chain_outputs(chain):
    assert len(pd.read_parquet(chain / "train.parquet")) == 10
    spec = json.loads((chain / "spec.json").read_text())
    assert spec["model"] == "pinn_silu8_bs10_s0" and spec["class"] == "pinn"
    metrics = json.loads((chain / "model" / "metrics.json").read_text())
    assert metrics["iterations"] == 30 and metrics["status"] == "ok"
    assert len(spec["config_hash"]) == 16 and metrics["config_hash"] == spec["config_hash"]


def test_evaluate_matches_training_metrics(chain, capsys):
    code, out, _ = run(capsys, "evaluate", "--model", chain / "model", "--data", chain / "val.parquet", "--json")
    assert code == 0
    result = json.loads(out)
    metrics = json.loads((chain / "model" / "metrics.json").read_text())
    assert result["mean_err"] == pytest.approx(metrics["mean_err"], abs=1e-6)
    assert result["max_err"] == pytest.approx(metrics["max_err"], abs=1e-6)
    assert result["n"] == len(pd.read_parquet(chain / "val.parquet"))
    code, out, _ = run(capsys, "evaluate", "--model", chain / "model", "--data", chain / "val.parquet")
    assert code == 0 and "mean" in out and "median" in out and "max" in out


def test_train_divergence_exits_3(chain, tmp_path, capsys):
    spec = json.loads((chain / "spec.json").read_text())
    spec["training"]["lr"] = 1e12  # beyond the schema's cap, so edited into the spec directly
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    err = user_error(capsys, 3, "train", "--spec", tmp_path / "spec.json", "--train", chain / "train.parquet",
                     "--val", chain / "val.parquet", "--out", tmp_path / "m", "--no-progress")
    assert "A/pinn_silu8_bs10_s0" in err and "diverged at iteration" in err
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert metrics["status"] == "failed" and "diverged" in metrics["error"] and metrics["mean_err"] is None


def test_chain_user_errors(chain, tmp_path, capsys):
    config = str(chain / "c.yaml")
    assert "ddnn_silu8_bs10_s0" in user_error(capsys, 2, "spec", config, "--model", "nope", "-o", tmp_path / "s")
    assert "missing.parquet" in user_error(capsys, 2, "train", "--spec", chain / "spec.json", "--train",
                                           tmp_path / "missing.parquet", "--val", chain / "val.parquet",
                                           "--out", tmp_path / "m")
    assert "not a model spec" in user_error(capsys, 2, "train", "--spec", chain / "model" / "metrics.json",
                                            "--train", chain / "train.parquet", "--val", chain / "val.parquet",
                                            "--out", tmp_path / "m")
    assert "holds no finished model" in user_error(capsys, 2, "evaluate", "--model", tmp_path,
                                               "--data", chain / "val.parquet")
    user_error(capsys, 2, "evaluate", "--model", chain / "model", "--data", chain / "c.yaml")


def test_bench_network_compiles_checks_and_times_the_trained_model(chain, tmp_path, capsys):
    out = tmp_path / "bench.json"
    code, text, err = run(capsys, "bench", "network", "--config", chain / "c.yaml", "--model", chain / "model",
                          "--data", chain / "val.parquet", "--cells", 300, "--repeats", 2, "--warmup", 0,
                          "--out-dir", tmp_path / "builds", "-o", out)
    assert code == 0, err
    record = json.loads(out.read_text())
    assert record["model"] == "pinn_silu8_bs10_s0" and record["n_sets"] == 300 and record["threads"] == 2
    assert len(record["inference_time_s"]["samples"]) == 2
    (size,) = record["sizes"]
    reference, *others = record["compiled"]["builds"]
    assert "eager-fp32" in size["builds"] and reference["check"]["reference"] and others
    assert all(b["check"]["max_err"] <= b["check"]["tolerance"] for b in others)
    assert "speedup" in text and "eager-fp32" in text and "roofline peaks: 2 CPU threads" in text
    assert (tmp_path / "builds" / "compiled.json").is_file()
    err = user_error(capsys, 2, "bench", "network", "--config", chain / "c.yaml", "--model", chain / "model")
    assert "--data" in err
    if not torch.cuda.is_available():
        err = user_error(capsys, 2, "bench", "network", "--config", chain / "c.yaml", "--model", chain / "model",
                         "--data", chain / "val.parquet", "--device", "cuda")
        assert "sees no CUDA device" in err


# --------------------------------------------------------------------------- env, version, help


def test_env(capsys):
    code, out, _ = run(capsys, "env")
    assert code == 0 and "numba" in out and "torch" in out
    code, out, _ = run(capsys, "env", "--json")
    report = json.loads(out)
    assert code == 0 and report["numba"]["usable"] and report["torch"]["usable"]


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"fhnkit {__version__}"


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_subcommand_help(capsys, command):
    code, out, _ = run(capsys, command, "--help")
    assert code == 0 and "example" in out and f"fhnkit {command}" in out


def test_usage_errors_exit_2(capsys):
    assert run(capsys)[0] == 2
    assert run(capsys, "simulate", "--dt", "fast")[0] == 2


def test_console_script_help():
    exe = shutil.which("fhnkit", path=str(Path(sys.executable).parent)) or shutil.which("fhnkit")
    assert exe, "the fhnkit console script is not installed (pip install -e .)"
    proc = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for command in SUBCOMMANDS:
        assert command in proc.stdout
