"""The GPU check (`fhnkit gpu-check`): its plumbing on this CPU, where the GPU-only checks must skip cleanly."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from fhnkit.analysis.reproduction import FINDINGS, NOT_TESTED, REPRODUCED
from fhnkit.gpu_check import (
    CHECKS,
    GPU_FINDINGS,
    PIPELINE_CONFIG,
    TOTAL_BUDGET_S,
    Context,
    Skip,
    check_pipeline,
    gpu_finding_verdicts,
    pipeline_config,
    pipeline_timeout,
    run_check,
    run_checks,
    run_logged,
    snakemake_command,
)
from fhnkit.plan import layout
from fhnkit.plan.config import validate_config

CUDA_ONLY = {"kernel_exact_f32", "kernel_exact_f64", "kernel_roofline", "dataset_cuda", "pipeline"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU run of the check")
def test_on_a_cpu_every_check_runs_or_skips_with_its_reason(tmp_path):
    out = tmp_path / "gpu_check.json"
    proc = subprocess.run([sys.executable, "-m", "fhnkit", "gpu-check", "--device", "cpu", "--quick",
                           "--config", "tests/config/tiny.yaml", "-o", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.split(" ")[0] in ("PASS", "FAIL", "SKIP")]
    assert [line.split(" ")[1].rstrip(":") for line in lines] == [name for name, _, _ in CHECKS]
    outcomes = {o["name"]: o for o in json.loads(out.read_text())}
    for name, outcome in outcomes.items():
        assert outcome["status"] == ("SKIP" if name in CUDA_ONLY else "PASS"), outcome
    assert outcomes["training"]["numbers"]["fleet_syncs_per_iteration"] == 0
    fleets = outcomes["fleet_throughput"]["numbers"]
    assert set(fleets["class_rates"]) == {"ddnn", "pinn", "itnn"} and fleets["thesis_hours"] > 0
    assert [(f["label"], f["replicas"]) for f in fleets["fleets"]] == [
        ("ddnn", 1), ("ddnn", 2), ("pinn", 1), ("pinn", 2), ("itnn", 2)]
    assert fleets["fleets"][1]["models"] == 2 * fleets["fleets"][0]["models"]
    # a CPU fleet runs as it is: the same weights twice, and "without graphs" is the same computation
    assert {cls: (r["repeats_bit_for_bit"], r["max_abs_graphs_vs_eager"])
            for cls, r in fleets["repeatability"]["by_class"].items()} == {"ddnn": (True, 0.0), "pinn": (True, 0.0)}
    assert outcomes["compile_onnxruntime"]["numbers"]["reloaded_max_abs"] < 1e-4
    assert outcomes["compile_torch_compile"]["numbers"]["batches"] == [1, 8, 1 << 14]
    assert "5 passed, 0 failed, 5 skipped" in proc.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_asked_for_cuda_without_it_every_check_is_skipped_with_the_reason():
    outcomes = run_checks("cuda", quick=True, echo=None)
    assert {o.status for o in outcomes} == {"SKIP"}
    assert all("sees no CUDA device" in o.detail for o in outcomes)


def test_a_failing_check_is_a_fail_line_with_its_reason_and_the_others_go_on(tmp_path):
    ctx = Context("cpu", True, tmp_path, {})
    outcome = run_check("broken", lambda ctx: 1 / 0, ctx)
    assert outcome.status == "FAIL" and "ZeroDivisionError" in outcome.line()


def test_an_unknown_check_is_refused_with_the_known_ones():
    proc = subprocess.run([sys.executable, "-m", "fhnkit", "gpu-check", "--only", "kernel_speed"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "kernel_speed" in proc.stderr and "kernel_roofline" in proc.stderr


def test_the_pipeline_config_puts_every_stage_on_cuda():
    config = validate_config(pipeline_config())
    assert config["data_solver"]["backend"] == "cuda" and config["fleet"] > 1
    assert {study["training"]["device"] for study in config["studies"].values()} == {"cuda"}
    assert config["compile"]["device"] == "cuda" and config["compile"]["precisions"] == ["fp32", "fp16"]
    assert config["compile"]["backends"] == ["eager"]  # the one backend with an fp16 build on every GPU
    assert config["cost_sweep"]["enabled"] and len(config["benchmark"]["gpu_n_sets"]) == 1


def test_snakemake_plans_the_pipeline_check_on_a_machine_without_cuda(tmp_path):
    pytest.importorskip("snakemake")
    configfile = tmp_path / "pipeline.yaml"
    configfile.write_text(PIPELINE_CONFIG)
    proc = subprocess.run(snakemake_command(tmp_path, configfile, "-n", "--cores", "2"), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", proc.stdout, re.MULTILINE))
    expected = {"dataset": "2", "train_fleet": "1", "train": "6", "compile": "6", "benchmark": "1",
                "cost_sweep": "1", "cost_sweep_analysis": "1", "reproduction": "1"}
    assert {rule: jobs.get(rule) for rule in expected} == expected, proc.stdout[-3000:]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_without_cuda_the_pipeline_check_is_skipped_with_the_reason(tmp_path):
    outcome = run_check("pipeline", check_pipeline, Context("cpu", True, tmp_path, {}))
    assert outcome.status == "SKIP" and "CUDA-only" in outcome.detail
    assert not (tmp_path / "pipeline").exists()


def test_the_pipeline_check_is_skipped_when_the_budget_is_spent(tmp_path):
    ctx = Context("cuda", False, tmp_path, {}, started=time.monotonic() - TOTAL_BUDGET_S + 60)
    with pytest.raises(Skip, match="--only pipeline"):
        pipeline_timeout(ctx)
    assert 0 < pipeline_timeout(Context("cuda", False, tmp_path, {})) <= TOTAL_BUDGET_S


def test_the_gpu_findings_are_read_from_the_reproduction_table(tmp_path):
    claims = {f.key: f.claim for f in FINDINGS}
    rows = [(claims["table11"], REPRODUCED), (claims["tensor_cores"], NOT_TESTED), (claims["a_scarce"], REPRODUCED)]
    table = tmp_path / "reproduction.csv"
    pd.DataFrame(rows, columns=["finding", "verdict"]).to_csv(table, index=False)
    assert gpu_finding_verdicts(table) == {"table11": [REPRODUCED], "tensor_cores": [NOT_TESTED]}


def test_a_run_past_its_time_is_stopped_with_the_jobs_it_started(tmp_path):
    log = tmp_path / "snakemake.log"
    assert run_logged(["bash", "-c", "exit 3"], log, 30) == 3
    assert run_logged(["bash", "-c", "sleep 60 & echo job $!; wait"], log, 1) is None
    job = int(log.read_text().split()[-1])
    time.sleep(0.5)
    stat = Path(f"/proc/{job}/stat")
    assert not stat.exists() or stat.read_text().split()[2] == "Z"  # gone, or a zombie awaiting its parent


@pytest.mark.slow
def test_a_cpu_run_leaves_both_gpu_findings_not_tested(tiny_run):
    verdicts = gpu_finding_verdicts(tiny_run / layout.analysis_table("reproduction", "csv"))
    assert verdicts == {key: [NOT_TESTED] for key in GPU_FINDINGS}
