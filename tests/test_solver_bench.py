"""The solver benchmark on the CPU: the C references, side-by-side records, roofline arithmetic."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from fhnkit.cell.model import FHNParams
from fhnkit.cli import main
from fhnkit.inference import roofline
from fhnkit.inference.solver_bench import (
    C_FMA_FLAGS,
    bench_solvers,
    build_c_reference,
    c_solver,
    check_agreement,
    default_c_source,
    format_records,
    preallocated_euler,
    size_summary,
)
from fhnkit.solvers.cpu import euler

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not found")


@needs_gcc
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_c_reference_computes_exactly_what_the_numba_kernel_computes(tmp_path, dtype):
    run = c_solver(build_c_reference(default_c_source(), tmp_path), dtype)
    rng = np.random.default_rng(1)
    n = 3000  # not a multiple of the C block: the tail block is exercised
    u0, w0, cur = (rng.random(n).astype(dtype), (0.18 * rng.random(n)).astype(dtype), np.full(n, 0.1, dtype))
    for store_initial in (False, True):
        want = euler(u0, w0, cur, FHNParams(), 0.1, 100, 10, dtype, store_initial)
        out = (np.empty_like(want[1]), np.empty_like(want[2]))
        run(u0, w0, cur, FHNParams(), 0.1, 100, 10, store_initial, *out)
        np.testing.assert_array_equal(out[0], want[1])
        np.testing.assert_array_equal(out[1], want[2])


def test_preallocated_euler_reuses_its_outputs():
    u0 = np.linspace(0, 1, 50, dtype=np.float32)
    run, out = preallocated_euler(u0, u0 * 0, u0 * 0, FHNParams(), 0.1, 100, 10, np.float32)
    ids = (out[0].ctypes.data, out[1].ctypes.data)
    _, U, _ = run()
    assert U.ctypes.data == ids[0] and U.shape == (10, 50)
    np.testing.assert_array_equal(U, euler(u0, u0 * 0, u0 * 0, FHNParams(), 0.1, 100, 10, np.float32, False)[1])


@needs_gcc
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_c_reference_with_fma_is_another_arithmetic_close_to_the_exact_one(tmp_path, dtype):
    run = c_solver(build_c_reference(default_c_source(), tmp_path, C_FMA_FLAGS), dtype)
    rng = np.random.default_rng(2)
    n = 3000
    u0, w0, cur = (rng.random(n).astype(dtype), (0.18 * rng.random(n)).astype(dtype), np.full(n, 0.1, dtype))
    _, want, _ = euler(u0, w0, cur, FHNParams(), 0.1, 100, 10, dtype, False)
    out = (np.empty_like(want), np.empty_like(want))
    run(u0, w0, cur, FHNParams(), 0.1, 100, 10, False, *out)
    assert not np.array_equal(out[0], want)  # contracted: the flags reached gcc
    assert np.abs(out[0].astype(float) - want).mean() < 100 * np.finfo(dtype).eps


@needs_gcc
def test_bench_solvers_records_four_solvers_their_kernels_and_their_ratio(tmp_path):
    result = bench_solvers(n_cells=20_000, n_steps=20, save_every=10, precisions=("float32",), threads=1,
                           repeats=3, warmup=1, c_source=default_c_source())
    records = {r["solver"]: r for r in result["records"] if r["device"] == "cpu"}
    assert {name: r["kernel"] for name, r in records.items()} == {
        "numba": "exact", "numba_fast": "fast", "c_reference": "exact", "c_fma": "contracted"}
    assert records["c_fma"]["ratio_to_c"] == 1.0
    ratio = records["numba_fast"]["cell_steps_per_s"] / records["c_fma"]["cell_steps_per_s"]
    assert records["numba_fast"]["ratio_to_c"] == pytest.approx(ratio)
    for r in records.values():
        assert r["cell_steps_per_s"] == pytest.approx(20_000 * 20 / r["time_s"]["median"])
        assert len(r["time_s"]["samples"]) == 3
    # the roofline of each kernel whose work is known, by that kernel's instructions per step
    assert "roofline" not in records["c_fma"]
    assert records["numba"]["roofline"]["fp_instructions_per_step"] == 15
    assert records["numba_fast"]["roofline"]["fp_instructions_per_step"] == 7
    text = format_records(result)
    assert all(name in text for name in records) and "vs C FMA" in text
    if not result["cuda"]["usable"]:
        assert "CUDA: not measured" in text


def _runs(u0, w0, cur, n_steps, **solvers):
    """check_agreement's input from name=(claimed kernel, numba kernel run, dt): name -> (kernel, call, outputs)."""
    runs = {}
    for name, (claimed, kernel, dt) in solvers.items():
        call, out = preallocated_euler(u0, w0, cur, FHNParams(), dt, n_steps, 10, u0.dtype, kernel)
        runs[name] = (claimed, call, out)
    return runs


def test_check_agreement_tells_the_same_step_from_another():
    u0 = np.linspace(0.0, 1.0, 3000, dtype=np.float32)
    w0, cur = np.zeros_like(u0), np.full_like(u0, 0.1)
    exact = ("exact", "exact", 0.1)
    check_agreement(_runs(u0, w0, cur, 100, numba=exact, same=exact, numba_fast=("fast", "fast", 0.1)), 100,
                    np.float32)
    with pytest.raises(RuntimeError, match="not the same arithmetic"):  # the fast kernel claimed to be exact
        check_agreement(_runs(u0, w0, cur, 100, numba=exact, impostor=("exact", "fast", 0.1)), 100, np.float32)
    with pytest.raises(RuntimeError, match="not the same Euler step"):  # another dt: another solve
        check_agreement(_runs(u0, w0, cur, 100, numba=exact, numba_fast=("fast", "fast", 0.09)), 100, np.float32)


def test_bench_solver_command_writes_json(tmp_path, capsys):
    out = tmp_path / "solver.json"
    assert main(["bench", "solver", "--cells", "5000", "--steps", "10", "--save-every", "5", "--precision",
                 "float64", "--threads", "1", "--repeats", "2", "--warmup", "0", "--no-c", "-o", str(out)]) == 0
    assert "numba" in capsys.readouterr().out
    import json

    data = json.loads(out.read_text())
    assert data["records"][0]["precision"] == "float64" and data["versions"]["fhnkit"]


def test_roofline_work_and_fractions():
    # 16M cells, 100 steps, 10 stored points, float32: 4 B x (3 inputs + 2 x 10 outputs) per cell
    bytes_moved, flops = roofline.work(16_000_000, 100, 10, 4, "exact")
    assert bytes_moved == 16e6 * 4 * 23 and flops == 16e6 * 100 * 15
    peaks = {"bandwidth_Bps": 1e12, "float32_flops": 1e14, "float64_flops": 1e13}
    f = roofline.fractions(bytes_moved / 1e12 * 2, 16_000_000, 100, 10, 4, peaks, "float32", "exact")
    assert f["bandwidth_fraction"] == pytest.approx(0.5)
    assert f["compute_fraction"] == pytest.approx(flops / (bytes_moved / 1e12 * 2) / 1e14)


def test_roofline_work_follows_the_kernel_that_ran():
    exact, fast = roofline.KERNELS["exact"], roofline.KERNELS["fast"]
    assert (exact.instructions, exact.flops) == (15, 15)  # fhn_rhs's operations, none fused
    assert (fast.fma, fast.other, fast.instructions, fast.flops) == (6, 1, 7, 13)
    assert roofline.work(1000, 100, 10, 4, "fast") == (1000 * 4 * 23, 1000 * 100 * 13)
    with pytest.raises(ValueError, match="unknown Euler kernel"):
        roofline.work(1000, 100, 10, 4, "contracted")


# an H200-like device: 4.8 TB/s, 132 SMs x 128 FP32 lanes x 1.98 GHz x 2 FLOP = 66.9 TFLOP/s
H200 = {"bandwidth_Bps": 4.8e12, "float32_flops": 2 * 132 * 128 * 1.98e9, "float64_flops": 132 * 128 * 1.98e9}


def test_the_fast_kernel_is_issue_bound_and_says_why():
    n, steps, stored = 64_000_000, 100, 10
    instructions = n * steps * 7
    seconds = instructions / (H200["float32_flops"] / 2) / 0.48  # 48% of the issue rate
    f = roofline.fractions(seconds, n, steps, stored, 4, H200, "float32", "fast")
    assert f["kernel"] == "fast" and f["fp_instructions_per_step"] == 7 and f["flops_per_step"] == 13
    assert f["issue_rate"] == pytest.approx(132 * 128 * 1.98e9)  # one FMA or ADD per lane per cycle
    assert f["bound"] == "issue" and f["bound_fraction"] == pytest.approx(0.48)
    assert f["issue_fraction"] == pytest.approx(0.48) and f["flops"] == n * steps * 13
    assert f["why"].startswith("issue-bound: 7 FP instructions per step (6 FMA + 1 ADD), 48% of the float32 issue")
    assert f["why"].endswith(f"; bandwidth roof {f['bandwidth_fraction']:.0%}")


def test_a_kernel_with_more_traffic_than_work_is_bandwidth_bound():
    # every step stored: 4 B x (3 + 2 x 100) per cell against 7 instructions x 100 steps
    f = roofline.fractions(1.0, 64_000_000, 100, 100, 4, H200, "float32", "fast")
    assert f["bound"] == "bandwidth" and f["bound_fraction"] == pytest.approx(64e6 * 4 * 203 / 4.8e12)
    assert f["why"].startswith("bandwidth-bound: 812 B per cell")


@pytest.mark.parametrize("missing", ["bandwidth_Bps", "float32_flops"])
def test_an_unknown_peak_gives_no_bound_and_the_reason_never_an_error(missing):
    peaks = H200 | {missing: None, "missing": {missing: "not offered by this device"}}
    f = roofline.fractions(0.05, 64_000_000, 100, 10, 4, peaks, "float32", "fast")
    assert f["bound"] is None and f["bound_fraction"] is None
    assert f"{missing} unknown (not offered by this device)" in f["why"]
    known = "issue" if missing == "bandwidth_Bps" else "bandwidth"
    assert f"of the {known} roof" in f["why"]
    assert (f["bandwidth_fraction"] is None) == (missing == "bandwidth_Bps")
    assert (f["issue_fraction"] is None) == (f["compute_fraction"] is None) == (missing == "float32_flops")
    bare = roofline.fractions(0.05, 64_000_000, 100, 10, 4, {}, "float64", "exact")  # no peaks at all
    assert bare["bound"] is None and "bandwidth_Bps unknown" in bare["why"] and "float64_flops unknown" in bare["why"]


def test_mlp_flops_counts_products_biases_activations_and_scaling():
    spec = {"inputs": ["t", "U0", "W0"], "outputs": ["U", "W"], "layers": [["silu", 32]] * 3}
    products = 2 * (3 * 32 + 32 * 32 + 32 * 32 + 32 * 2)
    assert roofline.mlp_flops(spec) == products + (3 * 32 + 2) + 3 * 32 + 2 * (3 + 2)
    # SPEC section 3: a 3x32 network evaluated 10 times costs tens of times more than 100 Euler steps
    assert 20 < 10 * roofline.mlp_flops(spec) / (100 * roofline.KERNELS["exact"].flops) < 50
    bytes_moved, flops = roofline.network_work(spec, n_rows=1000, n_evaluations=1000, n_stored_outputs=1000)
    assert bytes_moved == 4 * 1000 * (3 + 2) and flops == 1000 * roofline.mlp_flops(spec)


def test_fractions_of_a_missing_peak_is_none_not_a_guess():
    f = roofline.fractions_of(2.0, 4e12, 1e12, {"bandwidth_Bps": 1e12, "float32_flops": 1e12}, "float16")
    assert f["bandwidth_fraction"] == pytest.approx(2.0) and f["compute_fraction"] is None
    assert f["achieved_flops"] == pytest.approx(5e11) and f["compute_peak"] == "float16_flops"


def test_cpu_peaks_measure_bandwidth_and_state_the_nominal_compute_peak():
    peaks = roofline.cpu_peaks(1)
    assert peaks["kind"] == "cpu" and peaks["threads"] == 1 and peaks["bandwidth_source"].startswith("STREAM")
    assert 1e8 < peaks["bandwidth_Bps"] < 1e13  # any machine of the last 20 years, any load
    assert peaks["float32_lanes"] in (4, 8, 16) and peaks["fma_units"] == 2
    if peaks["clock_hz"]:
        assert peaks["float32_flops"] == pytest.approx(peaks["clock_hz"] * peaks["float32_lanes"] * 4)
        assert peaks["float64_flops"] == pytest.approx(peaks["float32_flops"] / 2)
    assert roofline.cpu_peaks(1) is peaks  # measured once per process


@pytest.mark.parametrize(("peaks", "says"), [
    (H200, "of bandwidth, issue-bound at"), (H200 | {"float32_flops": None}, "of bandwidth, bound unknown")])
def test_a_gpu_records_summary_names_its_bound_or_that_it_is_unknown(peaks, says):
    """What `fhnkit gpu-check`'s kernel_roofline line prints per size, also where the device hides a peak."""
    seconds = 64e6 * 100 * 7 / (H200["float32_flops"] / 2) / 0.48
    record = {"n_cells": 64_000_000, "time_s": {"median": seconds}, "cell_steps_per_s": 64e6 * 100 / seconds,
              "roofline": roofline.fractions(seconds, 64_000_000, 100, 10, 4, peaks, "float32", "fast")}
    text = size_summary(record)
    assert text.startswith(f"64M: {seconds * 1e3:.2f} ms, ") and says in text
    assert text.endswith("issue-bound at 48%") == (peaks is H200)
