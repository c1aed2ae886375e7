"""The inference benchmark as one table: every model, set count and build beside the solver.

One row per (study, model, n_sets, build) from the studies' benchmark.json
files: median time and inter-quartile range (seconds) of the network and of
the solver on the same work, the network's speedup (solver / network),
throughput (outputs, i.e. (U, W) states, per second) and the fraction of the
device's bandwidth and compute rooflines each side reaches (`fhnkit.inference.roofline`).
"""

from __future__ import annotations

import json

import pandas as pd

BENCHMARK_COLUMNS = [
    "study", "model", "n_sets", "build", "device", "clock", "chunk", "network_time_s", "network_time_iqr_s",
    "solver", "solver_time_s", "solver_time_iqr_s", "speedup", "network_outputs_per_s", "solver_outputs_per_s",
    "network_compute_fraction", "network_bandwidth_fraction", "solver_compute_fraction",
    "solver_bandwidth_fraction", "solver_kernel", "solver_bound", "solver_bound_fraction", "solver_bound_why",
    "peaks",
]


def _iqr(t: dict) -> float:
    return float(t["q75"]) - float(t["q25"])


def _peaks_label(peaks: dict | None) -> str | None:
    """What the roofline fractions are fractions of, in words."""
    if not peaks:
        return None
    bandwidth = f"{peaks['bandwidth_Bps'] / 1e9:.0f} GB/s" if peaks.get("bandwidth_Bps") else "bandwidth unknown"
    flops = peaks.get("float32_flops")
    if peaks.get("kind") == "cpu":
        compute = f"{flops / 1e9:.0f} GFLOP/s fp32 nominal" if flops else "compute peak unknown"
        return f"{peaks['threads']} CPU threads: {compute}, {bandwidth} triad"
    compute = f"{flops / 1e12:.1f} TFLOP/s fp32" if flops else "compute peak unknown"
    return f"{peaks.get('name') or 'GPU'}: {compute}, {bandwidth}"


def benchmark_rows(record: dict) -> list[dict]:
    """Rows of one model's benchmark record (see `fhnkit.inference.benchmark.benchmark_model`)."""
    rows = []
    for size in record.get("sizes", []):
        solver, solver_t = size["solver"], size["solver_time_s"]
        for name, b in size["builds"].items():
            rows.append({
                "study": record["study"], "model": record["model"], "n_sets": size["n_sets"], "build": name,
                "device": b["device"], "clock": b["time_s"].get("clock"), "chunk": b["chunk"],
                "network_time_s": b["time_s"]["median"], "network_time_iqr_s": _iqr(b["time_s"]),
                "solver": f"{solver['backend']} ({solver['device']})", "solver_time_s": solver_t["median"],
                "solver_time_iqr_s": _iqr(solver_t), "speedup": b["speedup"],
                "network_outputs_per_s": b["outputs_per_s"], "solver_outputs_per_s": solver["outputs_per_s"],
                "network_compute_fraction": b.get("compute_fraction"),
                "network_bandwidth_fraction": b.get("bandwidth_fraction"),
                "solver_compute_fraction": solver.get("compute_fraction"),
                "solver_bandwidth_fraction": solver.get("bandwidth_fraction"),
                "solver_kernel": solver.get("kernel"), "solver_bound": solver.get("bound"),
                "solver_bound_fraction": solver.get("bound_fraction"), "solver_bound_why": solver.get("why"),
                "peaks": _peaks_label(size.get("peaks")),
            })
    return rows


def benchmark_table(bench_files) -> pd.DataFrame:
    """`BENCHMARK_COLUMNS` for every model of the given study benchmark.json files."""
    rows = []
    for path in bench_files:
        with open(path) as fh:
            for record in json.load(fh)["models"]:
                rows += benchmark_rows(record)
    return pd.DataFrame(rows, columns=BENCHMARK_COLUMNS)


# what the report page shows (every column is in the CSV)
PAGE_COLUMNS = [
    "study", "model", "n_sets", "build", "network_time_s", "solver_time_s", "speedup", "network_outputs_per_s",
    "solver_outputs_per_s", "network_compute_fraction", "solver_compute_fraction", "network_bandwidth_fraction",
    "solver_bandwidth_fraction", "solver_bound_fraction",
]

BENCHMARK_CAPTION = (
    "Every trained network against the explicit Euler solver on the same work: n_sets parameter sets, each "
    "needing (U, W) at benchmark.n_points times (an ITNN steps t_end / dt_itnn times), per compiled build. "
    "Times are medians over benchmark.repeats interleaved repeats after benchmark.warmup untimed calls "
    "(seconds, with inter-quartile range), on each device's clock (CUDA events on a GPU, the monotonic clock "
    "on a CPU); chunk is the evaluation batch chosen by the recorded search. speedup = solver / network. "
    "Throughput is in (U, W) outputs per second. Roofline fractions use the least work of each side (Euler: "
    "the kernel that ran, the fast one with 6 FMA + 1 ADD = 13 FLOP per cell-step, inputs read once, stored "
    "points written; network: matrix products, biases, activations, scaling; inputs read, outputs written) "
    "against the device's peaks: on a GPU read from CuPy, NVML or torch (a peak none offers leaves its "
    "fraction empty), on a CPU a nominal compute peak and a measured STREAM-triad bandwidth. "
    "solver_bound_fraction is the solver's fraction of the roof that bounds its kernel (bandwidth or FP "
    "instruction issue; the CSV says which and why). The CSV also holds the inter-quartile ranges, clock, "
    "chunk, solver backend and the peaks used."
)
