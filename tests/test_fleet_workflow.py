"""Fleets in the workflow (config `fleet` > 1), with real Snakemake runs: a fleet job trains its models
together, each model's own `train` job moves its model into place, and the per-model targets keep their
meaning (a deleted model is trained again alone, touching no other model's files)."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import yaml

from conftest import snakemake

pytestmark = pytest.mark.slow

CONFIG = {
    "seed": 3, "fleet": 3, "data_solver": {"dt": 0.01},
    "studies": {"S": {
        "problem": "B", "i_app": 0.0, "t_max": 5, "times_per_trajectory": 11, "train": {"n": 20}, "val": {"n": 6},
        "grid": {"layers": [1, 2], "layer_configs": [["tanh", 8]], "classes": ["ddnn", "pinn"], "batch_size": [16]},
        "training": {"iterations": 40, "validate_every": 20, "batch": {"physics": 16, "initial": 4}},
    }},
}
MODELS = ["ddnn_tanh8_bs16_s0", "ddnn_tanh8-tanh8_bs16_s0", "pinn_tanh8_bs16_s0", "pinn_tanh8-tanh8_bs16_s0"]


def targets():
    return [f"results/S/models/{m}/metrics.json" for m in MODELS]


def job_counts(stdout: str) -> dict[str, int]:
    stats = stdout[stdout.index("Job stats"):] if "Job stats" in stdout else ""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M)}


def stamps(workdir) -> dict[str, int]:
    return {str(p.relative_to(workdir)): p.stat().st_mtime_ns for p in (workdir / "results/S/models").rglob("*")
            if p.is_file()}


@pytest.fixture(scope="module")
def fleet_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("fleets")
    (workdir / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    proc = snakemake(workdir, "--cores", "2", *targets(), configfile=workdir / "config.yaml")
    return workdir, proc


def test_models_are_trained_by_fleets_and_moved_into_place(fleet_run):
    workdir, proc = fleet_run
    counts = job_counts(proc.stdout + proc.stderr)
    assert counts.get("train_fleet") == 2 and counts.get("train") == 4, counts  # 4 models, at most 3 per fleet
    for model in MODELS:
        d = workdir / "results/S/models" / model
        assert {p.name for p in d.iterdir()} >= {"weights.pt", "spec.json", "history.parquet", "metrics.json"}
        assert json.loads((d / "metrics.json").read_text())["status"] == "ok"
        assert "trained by its fleet, moved from" in (workdir / f"logs/S/train/{model}.log").read_text()
    fleets = workdir / "results/S/fleets"
    assert sorted(p.name for p in fleets.iterdir()) == ["f0", "f1"]
    assert all((f / "done").exists() and not list(f.glob("*/metrics.json")) for f in fleets.iterdir())
    assert "as a fleet" in (workdir / "logs/S/train/fleet_f0.log").read_text()


def test_a_deleted_model_is_trained_again_alone_touching_no_other(fleet_run):
    workdir, _ = fleet_run
    before = stamps(workdir)
    shutil.rmtree(workdir / "results/S/models" / MODELS[2])
    proc = snakemake(workdir, "--cores", "2", targets()[2], configfile=workdir / "config.yaml")
    assert job_counts(proc.stdout + proc.stderr) == {"train": 1, "total": 1}, proc.stderr[-2000:]
    assert "training it alone" in (workdir / f"logs/S/train/{MODELS[2]}.log").read_text()
    after = stamps(workdir)
    assert {k: v for k, v in after.items() if MODELS[2] not in k} == {k: v for k, v in before.items()
                                                                       if MODELS[2] not in k}
    assert json.loads((workdir / "results/S/models" / MODELS[2] / "metrics.json").read_text())["status"] == "ok"
    proc = snakemake(workdir, "--cores", "2", "-n", *targets(), configfile=workdir / "config.yaml")
    assert "Nothing to be done" in proc.stdout + proc.stderr
