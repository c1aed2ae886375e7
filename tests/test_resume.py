"""Training survives a kill: SIGKILL mid-run, start again, end with the uninterrupted run's exact weights."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from fhnkit.datasets.simulate import write_dataset
from fhnkit.plan.config import validate_config
from fhnkit.plan.grid import expand_study
from fhnkit.plan.model_spec import ModelSpec
from fhnkit.training import checkpoint

STUDY = {"problem": "A", "t_max": 20, "train": {"n": 10, "sampler": "grid"}, "val": {"n": 100},
         "grid": {"layers": [2], "layer_configs": [["tanh", 8]], "classes": ["pinn"], "batch_size": [10]},
         "training": {"iterations": 6000, "validate_every": 100, "checkpoint_every": 500,
                      "batch": {"physics": 64, "initial": 1}}}


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """Data sets and a spec file for one PINN of problem A."""
    root = tmp_path_factory.mktemp("resume")
    cfg = validate_config({"data_solver": {"method": "rk4", "dt": 0.01}, "studies": {"A": STUDY}})
    for split in ("train", "val"):
        write_dataset(cfg, "A", split, root / f"{split}.parquet")
    (root / "spec.json").write_text(json.dumps(expand_study(cfg, "A")[0]))
    return root


def train_cmd(root, out):
    return [sys.executable, "-m", "fhnkit", "train", "--spec", str(root / "spec.json"), "--train",
            str(root / "train.parquet"), "--val", str(root / "val.parquet"), "--out", str(out), "--no-progress"]


def checkpoint_iteration(out) -> int:
    path = out / checkpoint.NAME
    return torch.load(path, weights_only=False)["iteration"] if path.exists() else 0


def test_killed_run_resumes_and_ends_with_the_uninterrupted_weights(job):
    straight, killed = job / "straight", job / "killed"
    subprocess.run(train_cmd(job, straight), check=True, capture_output=True, timeout=600)

    proc = subprocess.Popen(train_cmd(job, killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while checkpoint_iteration(killed) < 1000:
        assert proc.poll() is None, "the run finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    at = checkpoint_iteration(killed)
    assert 1000 <= at < 6000
    assert not (killed / "metrics.json").exists(), "a killed run must not look finished"

    done = subprocess.run(train_cmd(job, killed), check=True, capture_output=True, text=True, timeout=600)
    assert json.loads((killed / "metrics.json").read_text())["iterations"] == 6000
    assert not (killed / checkpoint.NAME).exists(), "a finished model keeps no checkpoint"

    a = torch.load(straight / "weights.pt", weights_only=True)
    b = torch.load(killed / "weights.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ha, hb = pd.read_parquet(straight / "history.parquet"), pd.read_parquet(killed / "history.parquet")
    cols = ["iteration", "lr", "loss_total", "loss_data", "loss_physics", "loss_initial", "val_mean", "val_max"]
    pd.testing.assert_frame_equal(ha[cols], hb[cols])
    assert done.returncode == 0


def test_checkpoint_of_another_spec_is_ignored(job, tmp_path):
    from fhnkit.training.train import TrainingRun

    spec = json.loads((job / "spec.json").read_text())
    train, val = pd.read_parquet(job / "train.parquet"), pd.read_parquet(job / "val.parquet")
    run = TrainingRun(ModelSpec.from_mapping(spec), train, val)
    run.step()
    checkpoint.save(run, [{"iteration": 1, "wall_time_s": 0.1}], tmp_path)
    assert checkpoint.restore(TrainingRun(ModelSpec.from_mapping(spec), train, val), tmp_path) == [{"iteration": 1,
                                          "wall_time_s": 0.1}]
    other = TrainingRun(ModelSpec.from_mapping(spec | {"config_hash": "something-else"}), train, val)
    assert checkpoint.restore(other, tmp_path) is None and other.iteration == 0
    (tmp_path / checkpoint.NAME).write_bytes(b"truncated")
    assert checkpoint.restore(TrainingRun(ModelSpec.from_mapping(spec), train, val), tmp_path) is None
