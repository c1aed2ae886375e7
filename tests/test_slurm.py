"""Real SLURM: the workflow through `snakemake --profile profiles/slurm`, and MPI ranks under srun.

Needs a running SLURM cluster where this test runs: `.ci/slurm.sh up` starts a single-node one
(with two fake GPUs) on this machine, and `.ci/run` does that before pytest. Without a cluster these
tests skip, except under CI (CI=true), where a missing cluster is a failure: CI must run them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, SNAKEFILE

TINY = REPO / "tests" / "config" / "tiny.yaml"
PROFILE = REPO / "profiles" / "slurm"

pytestmark = pytest.mark.slow


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def _cluster_problem() -> str | None:
    """None when a SLURM cluster answers and has an idle or mixed node, else what is wrong."""
    if shutil.which("sinfo") is None:
        return "sinfo is not installed"
    proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        return f"sinfo failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}"
    states = proc.stdout.split()
    if not any(s.rstrip("*~#") in ("idle", "mixed", "allocated") for s in states):
        return f"no usable node (states: {states})"
    return None


@pytest.fixture(scope="module")
def cluster():
    problem = _cluster_problem()
    if problem:
        message = f"no SLURM cluster ({problem}); start one with `sudo .ci/slurm.sh up`"
        if _in_ci():
            pytest.fail(f"CI=true: {message} (.ci/run does this before pytest)")
        pytest.skip(message)


def _small_config(tmp: Path) -> Path:
    """tiny.yaml reduced to its study A_scarce: 2 data sets, 4 trained models (DDNN and PINN, 1 and 2
    layers), their builds, 1 benchmark, the analysis and the report."""
    config = yaml.safe_load(TINY.read_text())
    config["studies"] = {"A_scarce": config["studies"]["A_scarce"]}
    path = tmp / "slurm.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _submitted(log: str) -> dict[str, list[str]]:
    """{rule: [SLURM job ids]} of the jobs Snakemake submitted, from its own log."""
    jobs: dict[str, list[str]] = {}
    for m in re.finditer(r"submitted with SLURM jobid (\d+) \(log: ([^)]+)\)", log):
        rule = re.search(r"/rule_([A-Za-z0-9_]+)/", m.group(2)).group(1)
        jobs.setdefault(rule, []).append(m.group(1))
    return jobs


def _job_stats(dry_run_output: str) -> dict[str, int]:
    """{rule: number of jobs} from the `Job stats` table of a dry run."""
    table = dry_run_output[dry_run_output.index("Job stats:"):]
    counts = dict((m.group(1), int(m.group(2))) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M))
    counts.pop("total", None)
    return counts


# rules that ask for a GPU with this config (the profile's benchmark; train with device auto) and
# rules that never do
GPU_RULES = {"train_fleet", "train", "benchmark"}
CPU_RULES = {"dataset", "summarise", "analyse", "figures", "config_page"}


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    """The small config run through the SLURM profile, then its report; returns (workdir, log, the jobs
    that the dry run planned to submit: {rule: count})."""
    workdir = tmp_path_factory.mktemp("slurm")
    config = _small_config(workdir)
    cmd = [sys.executable, "-m", "snakemake", "--profile", str(PROFILE), "--snakefile", str(SNAKEFILE),
           "--directory", str(workdir), "--configfile", str(config),
           # poll squeue every 5 s instead of the plugin's 40 s (a test of 11 short jobs), and keep
           # the SLURM log of every job, not only of failed ones
           "--slurm-init-seconds-before-status-checks", "5", "--slurm-keep-successful-logs",
           "--verbose"]  # logs each sbatch call
    dry = subprocess.run([*cmd, "--dry-run"], capture_output=True, text=True, timeout=300)
    assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr[-3000:]
    planned = _job_stats(dry.stdout)
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1500)
    log = proc.stdout + proc.stderr
    (workdir / "run.log").write_text(log)
    print(f"SLURM workflow: {time.monotonic() - start:.0f} s")
    if proc.returncode != 0:
        slurm_logs = sorted((workdir / ".snakemake" / "slurm_logs").rglob("*.log"))
        tails = "\n".join(f"--- {p}\n{p.read_text()[-1500:]}" for p in slurm_logs[-3:])
        raise AssertionError(f"{' '.join(cmd)} failed:\n{log[-6000:]}\n{tails}")
    # the report with the same profile, as a cluster user would run it (it starts no job)
    report = subprocess.run([sys.executable, "-m", "snakemake", "--profile", str(PROFILE),
                             "--snakefile", str(SNAKEFILE),
                             "--directory", str(workdir), "--configfile", str(config),
                             "--report", str(workdir / "report.html")], capture_output=True, text=True, timeout=600)
    assert report.returncode == 0, report.stderr[-4000:]
    local = set(re.findall(r"^localrule (\w+):", log, re.M))  # run by Snakemake itself (`all`)
    return workdir, log, {rule: n for rule, n in planned.items() if rule not in local}


def test_every_job_went_through_slurm(slurm_run):
    workdir, log, planned = slurm_run
    jobs = _submitted(log)
    counts = {rule: len(ids) for rule, ids in jobs.items()}
    # every job of the DAG (all but the local target rule), each submitted once (no retry needed)
    assert counts == planned, (counts, planned)
    assert {"dataset", "train", "benchmark", "summarise", "analyse", "figures"} <= set(counts)
    ids = [int(i) for ids in jobs.values() for i in ids]
    assert len(set(ids)) == len(ids)
    # SLURM's log of each job (sbatch --output) holds that job's Snakemake run of the rule
    for rule, job_ids in jobs.items():
        for job_id in job_ids:
            logs = list((workdir / ".snakemake" / "slurm_logs").glob(f"rule_{rule}/**/{job_id}.log"))
            assert len(logs) == 1, (rule, job_id)
            text = logs[0].read_text()
            assert f"rule {rule}:" in text and "1 of 1 steps (100%) done" in text, text[-2000:]


def _sbatch_calls(log: str) -> list[tuple[str, str]]:
    """[(rule, sbatch command line)] of every submission, from the --verbose log."""
    calls = re.findall(r"^sbatch call: (.*)$", log, re.M)
    return [(re.search(r"--comment '?rule_([a-z_]+?)(_wildcards|'| )", c).group(1), c) for c in calls]


def test_sbatch_calls_run_this_python_and_ask_gpus_for_gpu_rules(slurm_run):
    """Each job runs `python -m snakemake` with this Python (the one Snakemake runs in: CI's virtual
    environment); GPUs are asked with --gpus (Snakemake's gpu resource), never --gres."""
    _, log, planned = slurm_run
    calls = _sbatch_calls(log)
    assert len(calls) == sum(planned.values())
    for rule, call in calls:
        assert f'--wrap="{sys.executable} -m snakemake' in call, call[:1000]
        assert "--gres" not in call
        if rule in GPU_RULES:
            assert "--gpus=1" in call, (rule, call[:1000])
        if rule in CPU_RULES:
            assert "--gpus" not in call, (rule, call[:1000])


def test_gpu_jobs_got_a_gpu_from_slurm(slurm_run):
    """Jobs that asked for a GPU got one of the node's GPUs from SLURM, which said which in
    CUDA_VISIBLE_DEVICES (the training log records it); SLURM's record shows what each job asked."""
    workdir, log, _ = slurm_run
    jobs = _submitted(log)
    train_logs = sorted((workdir / "logs" / "A_scarce" / "train").glob("*.log"))
    assert any(log.name.startswith("fleets_") for log in train_logs), train_logs  # fleets: the default
    for train_log in train_logs:  # a fleet trains on its GPU; a model's own job trains (or takes it from its fleet)
        text = train_log.read_text()
        assert re.search(r"CUDA_VISIBLE_DEVICES=[01]\b", text) or "trained by its fleet" in text, train_log
    gpu_rules = {rule for rule, c in _sbatch_calls(log) if "--gpus=1" in c}
    assert gpu_rules >= GPU_RULES and not gpu_rules & CPU_RULES, gpu_rules
    # SLURM's own record of the jobs it still remembers (MinJobAge = 300 s)
    remembered = {}
    for job_id in [i for ids in jobs.values() for i in ids]:
        proc = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True)
        if proc.returncode == 0:
            tres = re.search(r"\bTresPerJob=(\S*)", proc.stdout)
            remembered[job_id] = tres.group(1) if tres else ""
    assert jobs["benchmark"][0] in remembered, "the last GPU job is already gone from slurmctld"
    for rule, job_ids in jobs.items():
        for job_id in job_ids:
            if job_id in remembered:
                assert ("gpu:1" in remembered[job_id]) == (rule in gpu_rules), (rule, job_id, remembered[job_id])


def test_the_workflow_reached_the_report(slurm_run):
    workdir, _, _ = slurm_run
    for name in ("results/A_scarce/benchmark.json", "results/summary.csv", "results/analysis/ttest_pinn_ddnn.csv",
                 "results/figures/accuracy_vs_neurons.png"):
        assert (workdir / name).is_file(), name
    html = (workdir / "report.html").read_text()
    assert len(html) > 50_000 and "accuracy_vs_neurons.png" in html


# --- MPI under SLURM -------------------------------------------------------------------------------

def _need_mpi4py():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        if _in_ci():
            raise
        pytest.skip("mpi4py is not installed (pip install -e '.[mpi]')")


# four small DDNNs of problem A, trained by `fhnkit train-grid` over 2 MPI ranks
MPI_CONFIG = {
    "seed": 11,
    "fleet": 1,  # one model per task
    "data_solver": {"dt": 0.01, "precision": "float64"},
    "benchmark": {"n_sets": 200, "repeats": 1, "warmup": 0, "threads": 1},
    "studies": {"A": {"problem": "A", "t_max": 20, "train": {"n": 10, "sampler": "grid"}, "val": {"n": 50},
                      "grid": {"layers": [1, 2], "layer_configs": [["silu", 4]], "classes": ["ddnn"],
                               "batch_size": [10], "seeds": [0, 1]},
                      "training": {"iterations": 300, "validate_every": 100}}},
}
MPI_MODELS = sorted(f"A/ddnn_{arch}_bs10_s{seed}" for arch in ("silu4", "silu4-silu4") for seed in (0, 1))


def _two_ranks_trained_the_grid(out: str, workdir: Path):
    done = re.findall(r"^\[rank (\d)/2\] ok: (\S+) ", out, re.M)
    assert sorted(model for _, model in done) == MPI_MODELS, out  # each model once
    assert {rank for rank, _ in done} == {"0", "1"}, out  # by both ranks
    for _, name in done:
        study, model = name.split("/")
        assert (workdir / "results" / study / "models" / model / "metrics.json").is_file()



def test_two_mpi_ranks_under_srun_pmix(cluster):
    """srun starts 2 ranks through PMIx (Open MPI, mpi4py): one communicator of size 2."""
    _need_mpi4py()
    code = ("from mpi4py import MPI; c = MPI.COMM_WORLD; "
            "v = c.allreduce(c.Get_rank() + 1); print(f'rank {c.Get_rank()} of {c.Get_size()} sum {v}')")
    proc = subprocess.run(["srun", "--mpi=pmix", "-n", "2", "--mem=1000", sys.executable, "-c", code],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(proc.stdout.split("\n")[:2]) == ["rank 0 of 2 sum 3", "rank 1 of 2 sum 3"], proc.stdout


def test_train_grid_over_two_ranks_under_srun(cluster, tmp_path):
    """`srun --mpi=pmix -n 2 --gpus=2 fhnkit train-grid`: SLURM starts both ranks and gives the step
    its two (fake) GPUs; each rank trains on its own one."""
    _need_mpi4py()
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(MPI_CONFIG))
    proc = subprocess.run(["srun", "--mpi=pmix", "-n", "2", "--gpus=2", "--mem=4000", sys.executable, "-m", "fhnkit",
                           "train-grid", "config.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    _two_ranks_trained_the_grid(proc.stdout, tmp_path)
    for rank in (0, 1):
        assert f"[rank {rank}/2] on GPU {rank} (CUDA_VISIBLE_DEVICES={rank})" in proc.stdout, proc.stdout


def test_the_mpi_rule_through_the_profile_is_one_slurm_job_of_two_tasks(cluster, tmp_path):
    """`snakemake --profile profiles/slurm train_grid_mpi`: the data sets as SLURM jobs, then ONE job
    of 2 tasks (sbatch --ntasks=2) whose ranks srun starts through PMIx (the profile's `mpi`)."""
    _need_mpi4py()
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(MPI_CONFIG))
    cmd = [sys.executable, "-m", "snakemake", "--profile", str(PROFILE), "--snakefile", str(SNAKEFILE),
           "--directory", str(tmp_path), "--configfile", str(tmp_path / "config.yaml"),
           "--slurm-init-seconds-before-status-checks", "5", "--verbose",
           "--set-threads", "train_grid_mpi=2", "--", "train_grid_mpi"]  # 2 ranks: the test node has 2 CPUs
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    calls = [c for c in re.findall(r"^sbatch call: (.*)$", log, re.M) if "--comment rule_train_grid_mpi " in c]
    assert len(calls) == 1 and "--ntasks=2" in calls[0] and "--mem-per-cpu 2000" in calls[0], calls
    _two_ranks_trained_the_grid((tmp_path / "logs" / "mpi" / "train_grid.log").read_text(), tmp_path)
