"""GPU slots on one machine: real processes, real flocks, a fake GPU count (FHNKIT_GPUS) on the CPU."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from conftest import SNAKEFILE
from fhnkit.cluster.devices import acquire_gpu, select_rank_device, visible_gpus

# takes a slot, says which, then holds it until killed
HOLDER = """
import logging, sys, time
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
from fhnkit.cluster.devices import acquire_gpu, NoFreeGpu
try:
    slot = acquire_gpu("auto")
except NoFreeGpu as exc:
    print("NOFREE", exc, flush=True)
    sys.exit(4)
import os
print("GOT", os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
time.sleep(600)
"""


def holder(lock_dir: Path, n_gpus="2", wait_s="60") -> subprocess.Popen:
    env = {**os.environ, "FHNKIT_GPUS": n_gpus, "FHNKIT_GPU_LOCK_DIR": str(lock_dir), "FHNKIT_GPU_WAIT": wait_s}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    env.pop("SLURM_JOB_ID", None)
    return subprocess.Popen([sys.executable, "-c", HOLDER], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def first_line(proc: subprocess.Popen, timeout=60.0) -> str:
    """The holder's first stdout line (GOT <id> or NOFREE ...)."""
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    if not sel.select(timeout):
        raise AssertionError(f"no answer within {timeout} s")
    return proc.stdout.readline().strip()


def answered_within(proc: subprocess.Popen, seconds: float) -> bool:
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    return bool(sel.select(seconds))


@pytest.fixture
def procs():
    started: list[subprocess.Popen] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait()


def test_visible_gpus_precedence():
    assert visible_gpus({"FHNKIT_GPUS": "3"}) == ["0", "1", "2"]
    assert visible_gpus({"FHNKIT_GPUS": "0,2"}) == ["0", "2"]
    assert visible_gpus({"FHNKIT_GPUS": "0"}) == []
    assert visible_gpus({"FHNKIT_GPUS": "2", "CUDA_VISIBLE_DEVICES": "4,5,6"}) == ["4", "5"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "1,3"}) == ["1", "3"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == visible_gpus({"CUDA_VISIBLE_DEVICES": "-1"}) == []
    # SLURM chose the job's GPUs: they win over FHNKIT_GPUS
    assert visible_gpus({"SLURM_JOB_ID": "7", "CUDA_VISIBLE_DEVICES": "3", "FHNKIT_GPUS": "4"}) == ["3"]


def test_nothing_to_choose_leaves_the_environment_alone(tmp_path):
    for env in ({"FHNKIT_GPUS": "0"},  # no GPU
                {"FHNKIT_GPUS": "1"},  # one GPU
                {"SLURM_JOB_ID": "7", "CUDA_VISIBLE_DEVICES": "3"},  # SLURM gave this job its GPU
                {"FHNKIT_GPUS": "4", "CUDA_VISIBLE_DEVICES": "2", "SLURM_JOB_ID": "7"}):
        before = dict(env)
        assert acquire_gpu("auto", lock_dir=tmp_path, env=env) is None
        assert env == before
    env = {"FHNKIT_GPUS": "4"}
    assert acquire_gpu("cpu", lock_dir=tmp_path, env=env) is None and "CUDA_VISIBLE_DEVICES" not in env
    assert not list(tmp_path.iterdir())


def test_slots_in_one_process_are_distinct_and_released(tmp_path):
    envs = [{"FHNKIT_GPUS": "2"} for _ in range(3)]
    a = acquire_gpu("auto", lock_dir=tmp_path, env=envs[0])
    b = acquire_gpu("cuda", lock_dir=tmp_path, env=envs[1])  # separate open files: separate flocks
    assert {a.device, b.device} == {"0", "1"} and envs[0]["CUDA_VISIBLE_DEVICES"] == a.device
    with pytest.raises(RuntimeError, match=r"all 2 GPU slots .* --resources gpu=2"):
        acquire_gpu("auto", lock_dir=tmp_path, env=envs[2], wait_s=0.2)
    a.release()
    c = acquire_gpu("auto", lock_dir=tmp_path, env=envs[2], wait_s=0.2)
    assert c.device == a.device
    b.release(), c.release()


def test_mpi_rank_device_is_rank_modulo_gpus():
    for rank, expected in ((0, "4"), (1, "5"), (2, "4"), (5, "5")):
        env = {"CUDA_VISIBLE_DEVICES": "4,5"}
        assert select_rank_device(rank, env) == expected and env["CUDA_VISIBLE_DEVICES"] == expected
    assert select_rank_device(3, {"FHNKIT_GPUS": "0"}) is None


def test_concurrent_processes_get_distinct_slots_and_a_killed_holder_frees_its_slot(tmp_path, procs):
    locks = tmp_path / "locks"
    procs += [holder(locks), holder(locks)]
    got = [first_line(p) for p in procs]
    assert sorted(got) == ["GOT 0", "GOT 1"], got

    waiter = holder(locks, wait_s="60")  # more jobs than slots: it waits...
    procs.append(waiter)
    assert not answered_within(waiter, 2.0), "a third job got a slot while both were held"
    procs[0].send_signal(signal.SIGKILL)  # ...until a holder dies, however it dies (no stale slot)
    procs[0].wait()
    assert first_line(waiter, timeout=20) == got[0]  # the killed holder's slot, not the live one's
    waiter.kill()
    assert "are busy; waiting up to 60 s" in waiter.communicate(timeout=30)[1]


def test_more_jobs_than_slots_fail_clearly_after_the_wait(tmp_path, procs):
    locks = tmp_path / "locks"
    procs += [holder(locks), holder(locks)]
    assert sorted(first_line(p) for p in procs) == ["GOT 0", "GOT 1"]
    late = holder(locks, wait_s="1")
    t0 = time.monotonic()
    out, err = late.communicate(timeout=60)
    assert late.returncode == 4 and 1.0 <= time.monotonic() - t0 < 30
    assert re.search(r"NOFREE all 2 GPU slots \(0,1, locks in .*\) stayed busy for 1 s; run snakemake with "
                     r"--resources gpu=2", out), out + err


# --------------------------------------------------------------------------- real Snakemake

CONFIG = {
    "seed": 5,
    "fleet": 1,  # one training job per model: four jobs competing for two GPU slots
    "data_solver": {"dt": 0.01, "precision": "float64"},
    "studies": {"A": {"problem": "A", "t_max": 20, "train": {"n": 10, "sampler": "grid"}, "val": {"n": 50},
                      "grid": {"layers": [1], "layer_configs": [["silu", 4]], "classes": ["ddnn"],
                               "batch_size": [10], "seeds": [0, 1, 2, 3]},
                      "training": {"iterations": 3000, "validate_every": 500}}},
}


def _interval(log: str):
    stamps = re.findall(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ", log, re.M)
    parse = lambda s: datetime.strptime(s, "%Y-%m-%d %H:%M:%S,%f").timestamp()  # noqa: E731
    return parse(stamps[0]), parse(stamps[-1])


@pytest.mark.slow
def test_concurrent_snakemake_training_jobs_use_distinct_gpus(tmp_path):
    """snakemake --cores 2 --resources gpu=2 with two (fake) GPUs: jobs that ran at the same time
    logged different CUDA_VISIBLE_DEVICES."""
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    env = {**os.environ, "FHNKIT_GPUS": "2", "FHNKIT_GPU_LOCK_DIR": str(tmp_path / "locks")}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    targets = [f"results/A/models/ddnn_silu4_bs10_s{s}/metrics.json" for s in range(4)]
    cmd = [sys.executable, "-m", "snakemake", *targets, "--snakefile", str(SNAKEFILE), "--directory",
           str(tmp_path), "--configfile", str(tmp_path / "config.yaml"), "--cores", "2", "--resources", "gpu=2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    jobs = []
    for s in range(4):
        log = (tmp_path / f"logs/A/train/ddnn_silu4_bs10_s{s}.log").read_text()
        device = re.search(r"on CUDA_VISIBLE_DEVICES=(\S+)", log).group(1)
        assert device in ("0", "1"), log[:300]
        jobs.append((*_interval(log), device))
    overlapping = [(a, b) for i, a in enumerate(jobs) for b in jobs[i + 1:] if a[0] < b[1] and b[0] < a[1]]
    assert overlapping, f"no two training jobs ran at the same time: {jobs}"
    assert all(a[2] != b[2] for a, b in overlapping), jobs
