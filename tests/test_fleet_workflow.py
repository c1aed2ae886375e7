"""Fleets in the workflow (config `fleet` > 1), with real Snakemake runs: a fleet job trains its models
together, each model's own `train` job moves its model into place, and the per-model targets keep their
meaning (a deleted model is trained again alone, touching no other model's files); a diverging model
does not stop its fleet mates; a killed fleet job loses nothing finished and resumes bit-identical."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

from conftest import SNAKEFILE, snakemake

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
    assert counts.get("train_fleet") == 2 and counts.get("train") == 4, counts  # the data and physics families
    for model in MODELS:
        d = workdir / "results/S/models" / model
        assert {p.name for p in d.iterdir()} >= {"weights.pt", "spec.json", "history.parquet", "metrics.json"}
        assert json.loads((d / "metrics.json").read_text())["status"] == "ok"
        assert "trained by its fleet, moved from" in (workdir / f"logs/S/train/{model}.log").read_text()
    fleets = workdir / "results/S/fleets"
    assert {p.name for p in fleets.glob("*.done")} == {"data.done", "physics.done"}
    assert not list(fleets.glob("*/metrics.json"))  # all handed over
    for family in ("data", "physics"):  # at most 3 per fleet: each family's 2 models in one
        log = (workdir / f"logs/S/train/fleets_{family}.log").read_text()
        assert "as 1 fleet(s)" in log and "fleet f0: 2 models" in log


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


def test_each_model_takes_the_builds_its_fleet_made_of_its_weights(fleet_run):
    """A fleet compiles the models it trained (one process for all); each model's `compile` job moves the
    builds into place when they were made from its very weights, and builds alone otherwise (a model
    trained again alone, as the test above does, has other weights)."""
    from fhnkit.cluster.handoff import file_sha256

    workdir, _ = fleet_run
    compiled = [f"results/S/compiled/{m}/compiled.json" for m in MODELS]
    proc = snakemake(workdir, "--cores", "2", *compiled, configfile=workdir / "config.yaml")
    assert job_counts(proc.stdout + proc.stderr) == {"compile": 4, "total": 4}, proc.stderr[-2000:]
    for model in MODELS:
        record = json.loads((workdir / "results/S/compiled" / model / "compiled.json").read_text())
        assert record["weights_sha256"] == file_sha256(workdir / "results/S/models" / model / "weights.pt")
        assert {b["backend"] for b in record["builds"]} >= {"eager"}
        for build in record["builds"]:  # the artifacts moved with the record
            assert build["artifact"] is None or (workdir / "results/S/compiled" / model / build["artifact"]).is_file()
        trained_by_fleet = "trained by its fleet" in (workdir / f"logs/S/train/{model}.log").read_text()
        log = (workdir / f"logs/S/compile/{model}.log").read_text()
        assert ("compiled by its fleet" in log) == trained_by_fleet, (model, log)
        assert ("building here" in log) == (not trained_by_fleet), (model, log)
    assert "compiled: eager-fp32" in (workdir / "logs/S/train/fleets_data.log").read_text()
    assert not list((workdir / "results/S/fleets").glob("*/*/compiled/compiled.json"))  # all handed over


def test_a_diverging_model_is_recorded_and_its_fleet_mates_finish(tmp_path):
    """A PINN whose physics weight overflows float32 diverges at its first iteration; in the same fleet job
    the DDNNs train on, the job succeeds, and the PINN is recorded as failed (on_divergence: record)."""
    config = json.loads(json.dumps(CONFIG))
    config["fleet"] = 4
    config["studies"]["S"]["training"]["weights"] = {"physics": 1e39}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake(tmp_path, "--cores", "2", *targets(), configfile=tmp_path / "config.yaml")
    assert job_counts(proc.stdout + proc.stderr).get("train_fleet") == 2  # data and physics
    status = {m: json.loads((tmp_path / "results/S/models" / m / "metrics.json").read_text()) for m in MODELS}
    assert all(status[m]["status"] == "ok" for m in MODELS if m.startswith("ddnn")), status
    for model in (m for m in MODELS if m.startswith("pinn")):
        assert status[model]["status"] != "ok" and "diverged at iteration 1" in status[model]["error"]
    log = "".join((tmp_path / f"logs/S/train/fleets_{f}.log").read_text() for f in ("data", "physics"))
    assert "recorded as failed" in log and "ddnn_tanh8_bs16_s0: mean error" in log


LONG = json.loads(json.dumps(CONFIG))
LONG["fleet"] = 4
LONG["studies"]["S"]["training"].update(iterations=3000, validate_every=100, checkpoint_every=100)


def _weights(path):
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def test_a_killed_fleet_job_resumes_and_ends_bit_identical(tmp_path):
    """The fleet job is killed (SIGKILL to Snakemake and its jobs) once a group has checkpointed; after
    `--unlock` a plain rerun resumes it: the models a group had finished before the kill are kept (not
    trained again), and every model ends with exactly the weights and history of an uninterrupted run."""
    import torch

    whole, killed = tmp_path / "whole", tmp_path / "killed"
    for workdir in (whole, killed):
        workdir.mkdir()
        (workdir / "config.yaml").write_text(yaml.safe_dump(LONG))
    snakemake(whole, "--cores", "2", *targets(), configfile=whole / "config.yaml")

    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory", str(killed),
           "--configfile", str(killed / "config.yaml"), "--cores", "2", *targets()]
    job = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    fleet_dir, models_dir = killed / "results/S/fleets", killed / "results/S/models"

    def finished(where):
        return {p.parent.name: p.read_bytes() for p in where.glob("*/history.parquet")
                if (p.parent / "metrics.json").is_file()}

    deadline = time.monotonic() + 600
    # kill once a group has checkpointed while other models have finished (the DDNNs' family job is done, its
    # models maybe moved into place already; the PINNs' family still training)
    while not (list(fleet_dir.glob("fleet-*.pt")) and (finished(fleet_dir) or finished(models_dir))):
        assert job.poll() is None, "the fleets finished before they could be killed: make LONG longer"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    in_fleet, in_place = finished(fleet_dir), finished(models_dir)
    assert (in_fleet or in_place) and len(in_fleet) + len(in_place) < len(MODELS)

    snakemake(killed, "--unlock", configfile=killed / "config.yaml")
    snakemake(killed, "--cores", "2", *targets(), configfile=killed / "config.yaml")
    log = "".join((killed / f"logs/S/train/fleets_{f}.log").read_text() for f in ("data", "physics"))
    assert "resumes from" in log
    for model, history in (in_fleet | in_place).items():  # not trained again (its wall times would differ)
        assert model not in in_fleet or f"{model} finished before (same config): kept" in log
        assert (killed / "results/S/models" / model / "history.parquet").read_bytes() == history
    timing = ["iter_time_s", "wall_time_s"]
    for model in MODELS:
        a, b = (w / "results/S/models" / model for w in (whole, killed))
        wa, wb = _weights(a / "weights.pt"), _weights(b / "weights.pt")
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), model
        pd.testing.assert_frame_equal(pd.read_parquet(a / "history.parquet").drop(columns=timing),
                                      pd.read_parquet(b / "history.parquet").drop(columns=timing))
