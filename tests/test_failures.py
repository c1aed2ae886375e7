"""What happens when a job fails or the whole run is killed, with real Snakemake runs (README: When a job fails).

Small derived configs of 3 models each, written to tmp_path: a study `A` of two quick DDNNs
plus either a model that diverges with `on_divergence: fail` (its job fails) or a slow one
that is killed mid-training.
"""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import SNAKEFILE
from fhnkit.artifacts import read_parquet_meta

pytestmark = pytest.mark.slow

DATA = {"problem": "A", "t_max": 20, "train": {"n": 10, "sampler": "grid"}, "val": {"n": 50}}
GRID = {"layers": [1], "layer_configs": [["silu", 4]], "classes": ["ddnn"], "batch_size": [10]}
BASE = {"seed": 13, "fleet": 1, "data_solver": {"dt": 0.01, "precision": "float64"},
        "studies": {"A": {**DATA, "grid": {**GRID, "seeds": [0, 1]},
                          "training": {"iterations": 200, "validate_every": 100}}}}
GOOD = [f"results/A/models/ddnn_silu4_bs10_s{s}" for s in (0, 1)]
BAD = "results/bad/models/ddnn_silu4_bs10_s0"
SLOW = "results/slow/models/ddnn_silu4_bs10_s0"


def config_with(name: str, training: dict) -> dict:
    config = copy.deepcopy(BASE)
    config["studies"][name] = {**DATA, "grid": GRID, "training": training}
    return config


def snakemake(workdir: Path, *args, check=True, **popen) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", *args, "--snakefile", str(SNAKEFILE), "--directory",
           str(workdir), "--configfile", str(workdir / "config.yaml")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def train_jobs(proc: subprocess.CompletedProcess) -> int:
    """How many `train` jobs a Snakemake run ran (its job stats table)."""
    match = re.search(r"^train\s+(\d+)$", proc.stdout + proc.stderr, re.M)
    return int(match.group(1)) if match else 0


def stamps(workdir: Path, model_dirs) -> dict[str, int]:
    """mtimes of every file of the given models, and of their logs."""
    out = {}
    for d in model_dirs:
        for p in sorted((workdir / d).iterdir()):
            out[str(p)] = p.stat().st_mtime_ns
        log = workdir / "logs" / d.split("/")[1] / "train" / f"{Path(d).name}.log"
        out[str(log)] = log.stat().st_mtime_ns
    return out


def live_members(pgid: int) -> list[int]:
    """Processes of a process group that are still running (killed ones may linger as zombies until
    something reaps them)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # fields: state, ppid, pgrp, ...
            pids.append(int(stat.parent.name))
    return pids


def test_a_failing_model_does_not_stop_the_rest_and_reruns_alone(tmp_path):
    diverging = {"iterations": 20, "validate_every": 10, "weights": {"data": 1.0e39}, "on_divergence": "fail"}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config_with("bad", diverging)))
    targets = [f"{d}/metrics.json" for d in [*GOOD, BAD]]

    proc = snakemake(tmp_path, *targets, "--cores", "2", "--keep-going", check=False)
    assert proc.returncode != 0
    assert re.search(r"Error in rule train:\n(    .*\n)*?    output: results/bad/models/ddnn_silu4_bs10_s0/",
                     proc.stderr), proc.stderr[-3000:]
    assert all((tmp_path / d / "metrics.json").exists() for d in GOOD)  # the rest went on
    assert not (tmp_path / BAD / "metrics.json").exists()
    assert "diverged at iteration 1" in (tmp_path / "logs/bad/train/ddnn_silu4_bs10_s0.log").read_text()
    before = stamps(tmp_path, GOOD)

    # fix the cause (the study's data weight), then ask for that model alone
    fixed = config_with("bad", {**diverging, "weights": {"data": 1.0}})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(fixed))
    proc = snakemake(tmp_path, f"{BAD}/metrics.json", "--cores", "2")
    assert train_jobs(proc) == 1
    assert json.loads((tmp_path / BAD / "metrics.json").read_text())["status"] == "ok"
    assert stamps(tmp_path, GOOD) == before, "a model that had finished was trained again"
    proc = snakemake(tmp_path, *targets, "--cores", "2", "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout[-2000:]


def test_after_a_kill_unlock_and_rerun_incomplete_finish_without_retraining(tmp_path):
    slow = {"iterations": 30000, "validate_every": 500, "checkpoint_every": 1000}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config_with("slow", slow)))
    targets = [f"{d}/metrics.json" for d in [*GOOD, SLOW]]
    cmd = [sys.executable, "-m", "snakemake", *targets, "--snakefile", str(SNAKEFILE), "--directory",
           str(tmp_path), "--configfile", str(tmp_path / "config.yaml"), "--cores", "2"]
    with open(tmp_path / "killed.log", "w") as log:
        run = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        # the quick models finished and Snakemake registered it (it marks a job's outputs incomplete until
        # it has seen the job end), and the slow one has saved a checkpoint
        while not (len(re.findall(r"Finished jobid: \d+ \(Rule: train\)", (tmp_path / "killed.log").read_text())) == 2
                   and (tmp_path / SLOW / "checkpoint.pt").exists()):
            assert run.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the quick models did not finish in time"
            time.sleep(0.1)
        assert not (tmp_path / SLOW / "metrics.json").exists(), "the slow model finished before the kill"
    finally:
        os.killpg(run.pid, signal.SIGKILL)  # the whole process group: snakemake and its jobs
        run.wait()
    time.sleep(0.5)
    assert not live_members(run.pid), "a process of the killed run survived"
    assert not (tmp_path / SLOW / "metrics.json").exists()
    before = stamps(tmp_path, GOOD)

    proc = snakemake(tmp_path, *targets, "--cores", "2", "--rerun-incomplete", check=False)
    assert proc.returncode != 0 and "--unlock" in proc.stderr, proc.stderr[-2000:]  # the kill left the lock
    snakemake(tmp_path, *targets, "--unlock")
    proc = snakemake(tmp_path, *targets, "--cores", "2", "--rerun-incomplete")
    assert train_jobs(proc) == 1, proc.stdout[-2000:]
    assert stamps(tmp_path, GOOD) == before, "a model that had finished was trained again"
    metrics = json.loads((tmp_path / SLOW / "metrics.json").read_text())
    assert metrics["status"] == "ok" and metrics["iterations"] == 30000
    # the rerun continued from the killed job's checkpoint instead of starting over
    assert read_parquet_meta(tmp_path / SLOW / "history.parquet")["resumed_at"] >= 1000
    assert "Nothing to be done" in snakemake(tmp_path, *targets, "--cores", "2", "-n").stdout
