"""The GPU check (`fhnkit gpu-check`): its plumbing on this CPU, where the GPU-only checks must skip cleanly."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from fhnkit.gpu_check import CHECKS, Context, _run, run_checks

CUDA_ONLY = {"kernel_exact_f32", "kernel_exact_f64", "kernel_roofline", "dataset_cuda"}


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
    assert outcomes["fleet_throughput"]["numbers"]["thesis_grid_hours"] > 0
    assert outcomes["compile_onnxruntime"]["numbers"]["reloaded_max_abs"] < 1e-4
    assert outcomes["compile_torch_compile"]["numbers"]["batches"] == [1, 8, 1 << 14]
    assert "5 passed, 0 failed, 4 skipped" in proc.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_asked_for_cuda_without_it_every_check_is_skipped_with_the_reason():
    outcomes = run_checks("cuda", quick=True, echo=None)
    assert {o.status for o in outcomes} == {"SKIP"}
    assert all("sees no CUDA device" in o.detail for o in outcomes)


def test_a_failing_check_is_a_fail_line_with_its_reason_and_the_others_go_on(tmp_path):
    ctx = Context("cpu", True, tmp_path, {})
    outcome = _run("broken", lambda ctx: 1 / 0, ctx)
    assert outcome.status == "FAIL" and "ZeroDivisionError" in outcome.line()


def test_an_unknown_check_is_refused_with_the_known_ones():
    proc = subprocess.run([sys.executable, "-m", "fhnkit", "gpu-check", "--only", "kernel_speed"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "kernel_speed" in proc.stderr and "kernel_roofline" in proc.stderr
