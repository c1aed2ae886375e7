"""`fhnkit train-grid` under a real `mpirun -n 2` (Open MPI), and what Snakemake makes of its output."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from conftest import SNAKEFILE

MODEL_FILES = ["history.parquet", "metrics.json", "spec.json", "weights.pt"]

# six DDNNs of problem A (about a second each) and one that diverges with on_divergence: fail
CONFIG = {
    "seed": 11,
    "fleet": 1,  # one model per task; test_two_ranks_hand_out_fleets sets its own
    "data_solver": {"dt": 0.01, "precision": "float64"},
    "benchmark": {"n_sets": 200, "repeats": 1, "warmup": 0, "threads": 1},
    "studies": {
        "A": {"problem": "A", "t_max": 20, "train": {"n": 10, "sampler": "grid"}, "val": {"n": 50},
              "grid": {"layers": [1, 2], "layer_configs": [["silu", 4]], "classes": ["ddnn"], "batch_size": [10],
                       "seeds": [0, 1, 2]},
              "training": {"iterations": 1500, "validate_every": 500}},
        "bad": {"problem": "A", "t_max": 20, "train": {"n": 10, "sampler": "grid"}, "val": {"n": 50},
                "grid": {"layers": [1], "layer_configs": [["silu", 4]], "classes": ["ddnn"], "batch_size": [10]},
                "training": {"iterations": 20, "validate_every": 10, "weights": {"data": 1.0e39},
                             "on_divergence": "fail"}},
    },
}
GOOD = [f"A/ddnn_{arch}_bs10_s{seed}" for arch in ("silu4", "silu4-silu4") for seed in (0, 1, 2)]


def mpirun() -> list[str]:
    """The launcher, or a skip (a failure under CI, where it must be installed: see .ci/run)."""
    missing = [what for what, ok in (("mpirun (apt-get install openmpi-bin libopenmpi-dev)", shutil.which("mpirun")),
                                     ("mpi4py (pip install mpi4py)", _has_mpi4py())) if not ok]
    if missing:
        message = f"MPI is not installed: {', '.join(missing)}"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must run the MPI tests)")
        pytest.skip(message)
    return ["mpirun", "--allow-run-as-root", "--oversubscribe", "-n", "2"]


def _has_mpi4py() -> bool:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


def write_config(path: Path) -> Path:
    path.write_text(yaml.safe_dump(CONFIG))
    return path


def train_grid(workdir: Path, *args, launcher=(), env=None, timeout=600) -> subprocess.CompletedProcess:
    cmd = [*launcher, sys.executable, "-m", "fhnkit", "train-grid", str(workdir / "config.yaml"), *args]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def snakemake(workdir: Path, *args, snakefile: Path = SNAKEFILE, check=True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), "--directory", str(workdir),
           "--configfile", str(workdir / "config.yaml"), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-4000:]}")
    return proc


def mtimes(workdir: Path) -> dict[str, int]:
    return {str(p.relative_to(workdir)): p.stat().st_mtime_ns for p in (workdir / "results").rglob("models/*/*")}


@pytest.fixture(scope="module")
def mpi_run(tmp_path_factory):
    """The good study trained by two ranks that see two (fake) GPUs; returns (workdir, process)."""
    launcher = mpirun()
    workdir = tmp_path_factory.mktemp("mpi")
    write_config(workdir / "config.yaml")
    proc = train_grid(workdir, "--study", "A", launcher=launcher, env={"FHNKIT_GPUS": "2"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return workdir, proc


@pytest.mark.slow
def test_two_ranks_train_distinct_models_each_on_its_gpu(mpi_run):
    workdir, proc = mpi_run
    done = re.findall(r"^\[rank (\d)/2\] ok: (\S+) ", proc.stdout, re.M)
    assert sorted(model for _, model in done) == sorted(GOOD), proc.stdout  # each model exactly once
    by_rank = {rank: {m for r, m in done if r == rank} for rank, _ in done}
    assert set(by_rank) == {"0", "1"} and not by_rank["0"] & by_rank["1"], by_rank
    for rank, models in by_rank.items():
        for name in models:
            study, model = name.split("/")
            log = (workdir / "logs" / study / "train" / f"{model}.log").read_text()
            # rank r on GPU r % 2, chosen before CUDA initialised
            assert f"on MPI rank {rank}," in log and f"CUDA_VISIBLE_DEVICES={rank}" in log, log[:500]
            assert "done: mean error" in log
    assert "6 to train on 2 rank(s)" in proc.stdout


@pytest.mark.slow
def test_outputs_are_the_snakemake_rule_outputs(mpi_run, tmp_path):
    """The same files at the same paths as the rule `train` writes, and on a CPU the same weights."""
    workdir, _ = mpi_run
    write_config(tmp_path / "config.yaml")
    model = "results/A/models/ddnn_silu4-silu4_bs10_s1"
    snakemake(tmp_path, "--cores", "1", f"{model}/metrics.json")
    assert sorted(p.name for p in (tmp_path / model).iterdir()) == MODEL_FILES
    for study, name in (m.split("/") for m in GOOD):
        assert sorted(p.name for p in (workdir / "results" / study / "models" / name).iterdir()) == MODEL_FILES
    assert (tmp_path / "logs/A/train/ddnn_silu4-silu4_bs10_s1.log").is_file()
    a = torch.load(tmp_path / model / "weights.pt", weights_only=True)
    b = torch.load(workdir / model / "weights.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ma, mb = (json.loads((d / model / "metrics.json").read_text()) for d in (tmp_path, workdir))
    assert ma["mean_err"] == mb["mean_err"] and ma["status"] == mb["status"] == "ok"
    # the data sets the runner made are byte for byte those of the rule `dataset`
    for split in ("train", "val"):
        path = f"results/A/data/{split}.parquet"
        assert (tmp_path / path).read_bytes() == (workdir / path).read_bytes()


@pytest.mark.slow
def test_a_second_run_skips_finished_models(mpi_run):
    workdir, _ = mpi_run
    before = mtimes(workdir)
    proc = train_grid(workdir, "--study", "A", launcher=mpirun())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "6 models: 6 finished (skipped), 0 to train on 2 rank(s)" in proc.stdout
    assert not re.search(r"\] ok: ", proc.stdout)
    assert mtimes(workdir) == before


@pytest.mark.slow
def test_snakemake_takes_the_models_as_done(mpi_run):
    """A later `snakemake` plans no dataset or train job for the models the MPI run trained."""
    workdir, _ = mpi_run
    targets = [f"results/{m.split('/')[0]}/models/{m.split('/')[1]}/metrics.json" for m in GOOD]
    proc = snakemake(workdir, "--cores", "2", "-n", *targets)
    assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout[-2000:]
    proc = snakemake(workdir, "--cores", "2", "-n", "results/A/benchmark.json")
    stats = proc.stdout[proc.stdout.index("Job stats"):]
    assert re.search(r"^benchmark\s+1$", stats, re.M) and not re.search(r"^(train|dataset)\s", stats, re.M), stats


@pytest.mark.slow
def test_a_failing_model_fails_the_run_and_names_it_without_hanging(tmp_path):
    write_config(tmp_path / "config.yaml")
    proc = train_grid(tmp_path, "--study", "bad", launcher=mpirun(), timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "no result for bad/ddnn_silu4_bs10_s0" in proc.stdout
    assert not (tmp_path / "results/bad/models/ddnn_silu4_bs10_s0/metrics.json").exists()
    assert "diverged at iteration 1" in (tmp_path / "logs/bad/train/ddnn_silu4_bs10_s0.log").read_text()


@pytest.mark.slow
def test_the_snakemake_rule_runs_train_grid_in_one_mpi_job(tmp_path):
    launcher = mpirun()
    cfg = {**CONFIG, "studies": {"A": {**CONFIG["studies"]["A"], "grid": {**CONFIG["studies"]["A"]["grid"],
                                                                          "layers": [1]}}}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    snakemake(tmp_path, "--cores", "2", "train_grid_mpi", "--set-resources",
              f'train_grid_mpi:mpi="{" ".join(launcher[:-2])}"')
    log = (tmp_path / "logs/mpi/train_grid.log").read_text()
    assert "3 to train on 2 rank(s)" in log and "[rank 1/2] ok: " in log, log
    assert all((tmp_path / f"results/A/models/ddnn_silu4_bs10_s{s}/metrics.json").exists() for s in range(3))
    proc = snakemake(tmp_path, "--cores", "2", "-n", "results/A/benchmark.json")
    stats = proc.stdout[proc.stdout.index("Job stats"):]
    assert not re.search(r"^(train|dataset)\s", stats, re.M), stats


def test_without_mpi_it_is_one_rank(tmp_path):
    """No launcher: one process trains the models one after the other (here: the diverging one)."""
    write_config(tmp_path / "config.yaml")
    proc = train_grid(tmp_path, "--study", "bad", "--results", str(tmp_path / "out"))
    assert "1 to train on 1 rank(s)" in proc.stdout and proc.returncode == 1, proc.stdout + proc.stderr
    assert (tmp_path / "logs/bad/train/ddnn_silu4_bs10_s0.log").is_file()  # logs beside the results


def test_several_ranks_without_mpi4py_is_a_clear_error(tmp_path):
    """Started by a launcher with several ranks but no mpi4py: exit 2 and say what to install."""
    write_config(tmp_path / "config.yaml")
    blocker = tmp_path / "blocker" / "mpi4py"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('mpi4py blocked by the test')\n")
    env = {"PYTHONPATH": str(blocker.parent), "OMPI_COMM_WORLD_SIZE": "2"}
    proc = train_grid(tmp_path, "--study", "bad", env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "pip install 'fhnkit[mpi]'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_two_ranks_hand_out_fleets(tmp_path):
    """With `fleet: 3` the six models of study A go out as two fleets of three (one per rank), each
    written where the rule `train` writes it; a later grid run skips them all."""
    launcher = mpirun()
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({**CONFIG, "fleet": 3}))
    proc = train_grid(tmp_path, "--study", "A", launcher=launcher)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "6 to train on 2 rank(s) as 2 fleet(s) of at most 3" in proc.stdout, proc.stdout
    done = re.findall(r"^\[rank (\d)/2\] ok: (\S+) ", proc.stdout, re.M)
    assert sorted(model for _, model in done) == sorted(GOOD), proc.stdout
    assert len({rank for rank, _ in done}) == 2  # both ranks trained a fleet
    for model in GOOD:
        metrics = json.loads((tmp_path / "results" / model.replace("/", "/models/") / "metrics.json").read_text())
        assert metrics["status"] == "ok" and metrics["iterations"] == 1500
    logs = sorted(p.name for p in (tmp_path / "logs/A/train").glob("fleet_*.log"))
    assert logs == ["fleet_f0.log", "fleet_f1.log"]
    again = train_grid(tmp_path, "--study", "A")
    assert "6 finished (skipped), 0 to train" in again.stdout, again.stdout
