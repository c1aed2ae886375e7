"""Tests of side-by-side timing (fhnkit.inference.timing) and the network-vs-solver benchmark
(fhnkit.inference.benchmark)."""

from __future__ import annotations

import json
import time

import numba
import numpy as np
import pytest
import torch

import fhnkit.inference.benchmark as bench_mod
import fhnkit.inference.solver_bench as solver_bench
from fhnkit.cell.model import FHNParams
from fhnkit.cell.problems import input_bounds, input_columns
from fhnkit.inference import roofline
from fhnkit.inference.benchmark import (
    CHUNK_CANDIDATES,
    benchmark_model,
    benchmark_sizes,
    choose_chunk,
    chunk_candidates,
    network_inputs,
    reference_sets,
    solver_call,
)
from fhnkit.inference.timing import clock_for, summarise, time_interleaved
from fhnkit.nets.mlp import MLP, make_spec
from fhnkit.plan.config import validate_config
from fhnkit.plan.grid import expand_study


@pytest.fixture(autouse=True)
def _restore_threads():
    torch_n, numba_n = torch.get_num_threads(), numba.get_num_threads()
    yield
    torch.set_num_threads(torch_n)
    numba.set_num_threads(numba_n)


# --------------------------------------------------------------------------- timing


def test_summarise():
    s = summarise([5.0, 1.0, 3.0, 2.0, 4.0])
    assert s == {"median": 3.0, "q25": 2.0, "q75": 4.0, "min": 1.0, "samples": [5.0, 1.0, 3.0, 2.0, 4.0]}
    one = summarise([0.25])
    assert one["median"] == one["q25"] == one["q75"] == one["min"] == 0.25
    json.dumps(s)


def test_warmups_are_called_but_not_timed():
    calls = {"a": 0, "b": 0}

    def make(name):
        def f():
            calls[name] += 1
            if calls[name] <= 2:  # only the warm-up calls are slow
                time.sleep(0.1)
        return f

    out = time_interleaved({"a": make("a"), "b": make("b")}, repeats=4, warmup=2)
    assert calls == {"a": 6, "b": 6}
    for name in ("a", "b"):
        assert len(out[name]["samples"]) == 4
        assert max(out[name]["samples"]) < 0.05
        assert out[name]["median"] >= 0


def test_zero_warmup_times_the_first_call():
    calls = []

    def slow_first():
        calls.append(1)
        if len(calls) == 1:
            time.sleep(0.1)

    out = time_interleaved({"x": slow_first}, repeats=3, warmup=0)
    assert len(calls) == 3 and out["x"]["samples"][0] >= 0.09


def test_call_order_alternates_each_repeat():
    order = []
    contestants = {name: (lambda n=name: order.append(n)) for name in ("net", "solver")}
    time_interleaved(contestants, repeats=4, warmup=1)
    assert order == ["net", "solver",  # warm-up
                     "net", "solver", "solver", "net", "net", "solver", "solver", "net"]


def test_timings_measure_the_callable():
    out = time_interleaved({"sleep": lambda: time.sleep(0.02), "noop": lambda: None}, repeats=3, warmup=0)
    assert out["sleep"]["min"] >= 0.019 and out["noop"]["median"] < 0.01
    assert out["sleep"]["clock"] == out["noop"]["clock"] == "perf_counter"


def test_each_device_has_its_clock():
    assert clock_for("cpu") == "perf_counter" and clock_for("cuda") == "cuda_events"
    with pytest.raises(KeyError):
        time_interleaved({"a": lambda: None}, repeats=1, warmup=0, clocks={"a": "sundial"})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA events need a GPU")
def test_cuda_events_time_queued_kernels():
    x = torch.rand(4096, 4096, device="cuda")
    out = time_interleaved({"mm": lambda: x @ x, "none": lambda: None}, repeats=3, warmup=1,
                           clocks={"mm": "cuda_events", "none": "cuda_events"})
    assert out["mm"]["clock"] == "cuda_events" and out["mm"]["median"] > out["none"]["median"]


# --------------------------------------------------------------------------- reference work


def settings_of(problem, **kw):
    study = {"problem": problem, "train": {"n": 4}, "val": {"n": 4},
             "grid": {"layers": [2], "layer_configs": [["tanh", 8]]}} | kw
    cfg = validate_config({"benchmark": {"n_sets": 1000, "repeats": 3, "warmup": 1, "threads": 1},
                           "studies": {"S": study}})
    return cfg, expand_study(cfg, "S")[0]["problem_settings"]


def tiny_model(settings):
    lo, hi = input_bounds(settings)
    torch.manual_seed(0)
    return MLP(make_spec(input_columns(settings), ["U", "W"], [["tanh", 8], ["tanh", 8]], lo, hi, [0.3, 0.05],
                         [0.5, 0.1]))


def test_reference_sets_problem_a_all_equal_the_initial_state():
    _, settings = settings_of("A", initial_state=[0.5, 0.0])
    sets = reference_sets(settings, 100, seed=1)
    assert set(sets) == {"U0", "W0", "I_app"}
    assert (sets["U0"] == 0.5).all() and (sets["W0"] == 0.0).all() and (sets["I_app"] == 0.0).all()
    assert all(v.shape == (100,) for v in sets.values())
    x = network_inputs(settings, sets, np.arange(1.0, 11.0))
    assert x.shape == (1000, 1)


def test_reference_sets_problem_b_and_c():
    _, b = settings_of("B", i_app=0.1)
    sets = reference_sets(b, 500, seed=1)
    assert (sets["I_app"] == 0.1).all()
    assert sets["U0"].min() >= 0 and sets["U0"].max() <= 1 and sets["W0"].max() <= 0.18
    assert len(np.unique(sets["U0"])) == 500
    np.testing.assert_array_equal(sets["U0"], reference_sets(b, 500, seed=1)["U0"])
    assert not np.array_equal(sets["U0"], reference_sets(b, 500, seed=2)["U0"])
    _, c = settings_of("C")
    sets = reference_sets(c, 500, seed=1)
    np.testing.assert_allclose(sets["I_app"], 0.08 + 0.04 * sets["K"], rtol=0, atol=1e-15)


def test_network_inputs_layout():
    _, settings = settings_of("C")
    sets = reference_sets(settings, 7, seed=0)
    times = np.array([1.0, 2.0, 3.0])
    x = network_inputs(settings, sets, times)
    assert x.shape == (21, 4) and x.dtype == torch.float32
    for i in range(7):
        rows = x[3 * i:3 * i + 3].double().numpy()
        np.testing.assert_array_equal(rows[:, 0], times)
        for j, col in enumerate(("U0", "W0", "K"), start=1):
            np.testing.assert_allclose(rows[:, j], sets[col][i], rtol=1e-7)


def test_chunk_candidates_respect_the_work_and_an_engine_limit():
    assert chunk_candidates(40000) == [1 << 14, 40000]
    assert chunk_candidates(160_000_000) == list(CHUNK_CANDIDATES)  # 16M sets x 10 points on a GPU
    assert chunk_candidates(160_000_000, max_chunk=1 << 20) == [1 << 14, 1 << 16, 1 << 18, 1 << 20]
    assert chunk_candidates(100) == [100]


def test_choose_chunk_leaves_out_chunks_that_run_out_of_memory():
    x = torch.rand(1 << 17, 3)

    def call(chunk):
        def run():
            if chunk > 1 << 15:
                raise torch.OutOfMemoryError("CUDA out of memory (as a device raises it)")
        return run
    chunk, search = choose_chunk(None, x, call=call)
    assert chunk == 1 << 14 and set(search) == {1 << 14}
    with pytest.raises(RuntimeError, match="fits in device memory"):
        choose_chunk(None, torch.rand(1 << 17, 3), call=lambda c: call(1 << 20))


def test_benchmark_sizes_per_device():
    bench = {"n_sets": 1000, "gpu_n_sets": [16_000_000, 32_000_000, 64_000_000]}
    assert benchmark_sizes(bench, "cpu") == [1000]
    assert benchmark_sizes(bench, "cuda") == [16_000_000, 32_000_000, 64_000_000]


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the fallback where CuPy cannot run the kernel")
def test_solver_beside_a_gpu_network_falls_back_to_the_cpu_with_the_reason():
    cfg, settings = settings_of("B")
    run, info = solver_call(reference_sets(settings, 100, seed=0), FHNParams(), cfg["benchmark"], "cuda")
    assert info["backend"] == "numba" and info["device"] == "cpu" and info["why_not_cuda"]
    run()


def test_choose_chunk_searches_candidates():
    _, settings = settings_of("B")
    model = tiny_model(settings).eval()
    x = torch.rand(40000, 3)
    chunk, search = choose_chunk(model, x)
    assert set(search) == {c for c in CHUNK_CANDIDATES if c < 40000} | {40000}
    assert chunk in search and search[chunk] == min(search.values())
    assert all(v > 0 for v in search.values())


# --------------------------------------------------------------------------- benchmark_model


@pytest.mark.parametrize("problem", ["A", "B", "C"])
def test_benchmark_model_same_work_on_both_sides(problem, monkeypatch):
    cfg, settings = settings_of(problem)
    bench = cfg["benchmark"]
    captured = {"x": [], "solver": []}
    real_inputs, real_euler = bench_mod.network_inputs, solver_bench.fast_euler

    def inputs_spy(*args, **kwargs):
        x = real_inputs(*args, **kwargs)
        captured["x"].append((x, args[2]))
        return x

    def euler_spy(*args, **kwargs):
        out = real_euler(*args, **kwargs)
        captured["solver"].append(out)
        return out

    monkeypatch.setattr(bench_mod, "network_inputs", inputs_spy)
    monkeypatch.setattr(solver_bench, "fast_euler", euler_spy)  # the benchmark's solver call goes through it
    rec = benchmark_model(tiny_model(settings), settings, FHNParams(), bench, 2026, "S")

    n_sets, n_points = bench["n_sets"], bench["n_points"]
    assert (n_sets, n_points) == (1000, 10)
    (x, times), = captured["x"]
    assert x.shape == (n_sets * n_points, len(input_columns(settings)))
    # the solver is called for warm-up + repeats and stores exactly the points the network evaluates
    assert len(captured["solver"]) == bench["warmup"] + bench["repeats"]
    t_solver, U, W = captured["solver"][-1]
    assert U.shape == W.shape == (n_points, n_sets) and U.dtype == np.float32
    np.testing.assert_allclose(t_solver, times, rtol=1e-12)
    np.testing.assert_allclose(times, np.arange(1, 11) * 1.0, rtol=1e-12)  # delta t = 1 up to t_end = 10
    np.testing.assert_allclose(x[:n_points, 0].double().numpy(), times, rtol=1e-7)
    if problem == "A":
        assert np.all(U[:, :1] == U)  # every reference set is the same trajectory

    for side in ("inference_time_s", "solver_time_s"):
        stats = rec[side]
        assert stats["median"] > 0 and stats["min"] > 0 and len(stats["samples"]) == bench["repeats"]
        assert stats["q25"] <= stats["median"] <= stats["q75"]
    assert rec["speedup"] == pytest.approx(rec["solver_time_s"]["median"] / rec["inference_time_s"]["median"])
    assert rec["n_sets"] == n_sets and rec["n_points"] == n_points and rec["device"] == "cpu"
    (size,) = rec["sizes"]
    net, solver = size["builds"]["eager-fp32"], size["solver"]
    assert rec["chunk"] == net["chunk"] in net["chunk_search_s"] and all(v > 0 for v in net["chunk_search_s"].values())
    assert solver["store_every"] * solver["dt"] == pytest.approx(1.0)
    assert solver["precision"] == "float32" and rec["threads"] == 1
    json.loads(json.dumps(rec))  # JSON-able

    # throughput and rooflines of both sides, from the same medians
    assert size["n_sets"] == n_sets and size["peaks"]["kind"] == "cpu"
    t_net, t_sol = rec["inference_time_s"]["median"], rec["solver_time_s"]["median"]
    assert net["outputs_per_s"] == pytest.approx(n_sets * n_points / t_net)
    assert solver["outputs_per_s"] == pytest.approx(n_sets * n_points / t_sol)
    flops = n_sets * n_points * roofline.mlp_flops(tiny_model(settings).spec)
    assert net["flops"] == flops and net["bytes"] == 4 * n_sets * n_points * (len(input_columns(settings)) + 2)
    assert net["bandwidth_fraction"] == pytest.approx(net["bytes"] / t_net / size["peaks"]["bandwidth_Bps"])
    assert solver["bandwidth_fraction"] == pytest.approx(
        roofline.work(n_sets, 100, n_points, 4, solver["kernel"])[0] / t_sol / size["peaks"]["bandwidth_Bps"])
    if size["peaks"].get("float32_flops"):
        assert 0 < net["compute_fraction"] < 1 and 0 < solver["compute_fraction"] < 1
    assert rec["inference_time_s"] == net["time_s"] and rec["speedup"] == net["speedup"]
    assert net["time_s"]["clock"] == rec["solver_time_s"]["clock"] == "perf_counter"


def test_benchmark_reference_sets_problem_a(monkeypatch):
    cfg, settings = settings_of("A", initial_state=[0.5, 0.0])
    seen = []
    real = bench_mod.reference_sets

    def spy(*args, **kwargs):
        sets = real(*args, **kwargs)
        seen.append(sets)
        return sets

    monkeypatch.setattr(bench_mod, "reference_sets", spy)
    benchmark_model(tiny_model(settings), settings, FHNParams(), cfg["benchmark"], 2026, "S")
    (sets,) = seen
    assert sets["U0"].shape == (1000,)
    assert (sets["U0"] == 0.5).all() and (sets["W0"] == 0.0).all() and (sets["I_app"] == 0.0).all()


def test_benchmark_table_and_summary_rows_carry_throughput_and_rooflines(tmp_path):
    from fhnkit.analysis import BENCHMARK_COLUMNS, benchmark_table
    from fhnkit.analysis.summary import benchmark_row

    cfg, settings = settings_of("B")
    bench = cfg["benchmark"] | {"n_sets": 300, "repeats": 2}
    rec = benchmark_model(tiny_model(settings), settings, FHNParams(), bench, 2026, "S")
    rec.update(study="S", model="tanh8x2")
    path = tmp_path / "benchmark.json"
    path.write_text(json.dumps({"study": "S", "models": [rec, rec | {"model": "other", "sizes": []}]}))
    table = benchmark_table([path])
    assert list(table.columns) == BENCHMARK_COLUMNS and len(table) == 1  # a record without sizes adds no row
    row = table.iloc[0]
    assert (row["study"], row["model"], row["n_sets"], row["build"]) == ("S", "tanh8x2", 300, "eager-fp32")
    assert row["network_time_s"] == rec["inference_time_s"]["median"]
    assert row["speedup"] == pytest.approx(row["solver_time_s"] / row["network_time_s"])
    assert row["solver"] == "numba (cpu)" and row["clock"] == "perf_counter"
    assert row["network_outputs_per_s"] == pytest.approx(3000 / row["network_time_s"])
    assert "CPU threads" in row["peaks"] and "triad" in row["peaks"]
    summary = benchmark_row(rec)
    assert summary["network_outputs_per_s"] == row["network_outputs_per_s"]
    assert summary["solver_bandwidth_fraction"] == row["solver_bandwidth_fraction"] > 0


def _cupy_out_of_memory() -> Exception:
    """An exception of the kind CuPy's pool raises (cupy.cuda.memory.OutOfMemoryError), without CuPy."""
    kind = type("OutOfMemoryError", (MemoryError,), {"__module__": "cupy.cuda.memory"})
    return kind("Out of memory allocating 4,294,967,296 bytes (allocated so far: 137,438,953,472 bytes).")


def _ort_out_of_memory() -> Exception:
    pybind = pytest.importorskip("onnxruntime.capi.onnxruntime_pybind11_state")
    return pybind.RuntimeException("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code returned "
                                   "while running Gemm node. Failed to allocate memory for requested buffer of "
                                   "size 8589934592")


@pytest.mark.parametrize("make_error", [_cupy_out_of_memory, _ort_out_of_memory])
def test_choose_chunk_leaves_out_a_chunk_whatever_library_ran_out_of_memory(make_error):
    from fhnkit.inference.device_memory import is_out_of_memory

    error = make_error()
    assert is_out_of_memory(error)

    def call(chunk):
        def run():
            if chunk > 1 << 15:
                raise error
        return run
    chunk, search = choose_chunk(None, torch.rand(1 << 17, 3), call=call)
    assert chunk == 1 << 14 and set(search) == {1 << 14}


def test_choose_chunk_does_not_hide_other_errors():
    from fhnkit.inference.device_memory import is_out_of_memory

    pybind = pytest.importorskip("onnxruntime.capi.onnxruntime_pybind11_state")
    wrong = pybind.RuntimeException("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Got invalid dimensions for input")
    assert not is_out_of_memory(wrong) and not is_out_of_memory(ValueError("out of memory"))

    def call(chunk):
        def run():
            raise wrong
        return run
    with pytest.raises(type(wrong), match="invalid dimensions"):
        choose_chunk(None, torch.rand(1 << 15, 3), call=call)

