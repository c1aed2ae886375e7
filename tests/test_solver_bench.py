"""The solver benchmark on the CPU: the C reference, side-by-side records, roofline arithmetic."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from fhnkit.cell.model import FHNParams
from fhnkit.cli import main
from fhnkit.inference import roofline
from fhnkit.inference.solver_bench import (
    bench_solvers,
    build_c_reference,
    c_solver,
    default_c_source,
    format_records,
    preallocated_euler,
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
def test_bench_solvers_records_both_solvers_and_their_ratio(tmp_path):
    result = bench_solvers(n_cells=20_000, n_steps=20, save_every=10, precisions=("float32",), threads=1,
                           repeats=3, warmup=1, c_source=default_c_source())
    records = {r["solver"]: r for r in result["records"]}
    assert set(records) == {"numba", "c_reference"}
    assert records["c_reference"]["ratio_to_c"] == 1.0
    ratio = records["numba"]["cell_steps_per_s"] / records["c_reference"]["cell_steps_per_s"]
    assert records["numba"]["ratio_to_c"] == pytest.approx(ratio)
    for r in records.values():
        assert r["cell_steps_per_s"] == pytest.approx(20_000 * 20 / r["time_s"]["median"])
        assert len(r["time_s"]["samples"]) == 3
    text = format_records(result)
    assert "c_reference" in text and "numba" in text
    if not result["cuda"]["usable"]:
        assert "CUDA: not measured" in text


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
    bytes_moved, flops = roofline.work(16_000_000, 100, 10, 4)
    assert bytes_moved == 16e6 * 4 * 23 and flops == 16e6 * 100 * roofline.FLOPS_PER_STEP
    peaks = {"bandwidth_Bps": 1e12, "float32_flops": 1e14, "float64_flops": 1e13}
    f = roofline.fractions(bytes_moved / 1e12 * 2, 16_000_000, 100, 10, 4, peaks, "float32")
    assert f["bandwidth_fraction"] == pytest.approx(0.5)
    assert f["compute_fraction"] == pytest.approx(flops / (bytes_moved / 1e12 * 2) / 1e14)


def test_mlp_flops_counts_products_biases_activations_and_scaling():
    spec = {"inputs": ["t", "U0", "W0"], "outputs": ["U", "W"], "layers": [["silu", 32]] * 3}
    products = 2 * (3 * 32 + 32 * 32 + 32 * 32 + 32 * 2)
    assert roofline.mlp_flops(spec) == products + (3 * 32 + 2) + 3 * 32 + 2 * (3 + 2)
    # SPEC section 3: a 3x32 network evaluated 10 times costs tens of times more than 100 Euler steps
    assert 20 < 10 * roofline.mlp_flops(spec) / (100 * roofline.FLOPS_PER_STEP) < 50
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
