"""The summary table: one row per trained model, joining its metrics and its benchmark record.

Units: errors (`mean_err`, `max_err`) are the validation error of eq. 3.3,
|U_pred - U_true| + |W_pred - W_true|, dimensionless; every `*_time_s`
column is in seconds (wall clock); `speedup` is dimensionless.
"""

from __future__ import annotations

import json
import logging
from os import PathLike

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

METRIC_COLUMNS = [
    "study", "problem", "model", "class", "region", "windows", "arch", "depth", "neurons", "shape",
    "batch_size", "seed", "n_params", "iterations", "mean_err", "max_err", "iter_time_s", "march_err", "jump_err",
]
BENCH_COLUMNS = [
    "inference_time_s", "inference_time_iqr_s", "solver_time_s", "solver_time_iqr_s", "backend", "device",
    "eager_time_s", "compile_speedup", "network_outputs_per_s", "network_compute_fraction",
    "network_bandwidth_fraction", "solver_outputs_per_s", "solver_compute_fraction", "solver_bandwidth_fraction",
]
SUMMARY_COLUMNS = METRIC_COLUMNS + BENCH_COLUMNS + ["speedup", "n_sets", "status", "error"]


def _read_json(path: str | PathLike) -> dict:
    with open(path) as fh:
        return json.load(fh)


def _metrics_row(metrics: dict) -> dict:
    """One summary row from a metrics.json mapping; errors of failed models become NaN."""
    row = {col: metrics.get(col) for col in METRIC_COLUMNS}
    row["region"] = bool(row["region"])
    row["windows"] = int(row["windows"] or 1)
    row["status"] = metrics.get("status", "ok")
    row["error"] = metrics.get("error")
    for col in ("mean_err", "max_err", "iter_time_s", "march_err", "jump_err"):
        row[col] = np.nan if row[col] is None else float(row[col])
    return row


def benchmark_row(bench: dict) -> dict:
    """Timing columns (seconds) from a bench.json mapping: medians and IQRs."""
    inf, sol = bench["inference_time_s"], bench["solver_time_s"]
    return {
        "study": bench["study"],
        "model": bench["model"],
        "inference_time_s": float(inf["median"]),
        "inference_time_iqr_s": float(inf["q75"]) - float(inf["q25"]),
        "solver_time_s": float(sol["median"]),
        "solver_time_iqr_s": float(sol["q75"]) - float(sol["q25"]),
        # the build timed as the network (eager torch in records older than the compile stage)
        "backend": bench.get("backend", "torch-eager"),
        "device": bench.get("device", "cpu"),
        "eager_time_s": float(bench.get("eager_time_s", inf)["median"]),
        "compile_speedup": float(bench.get("compile_speedup", 1.0)),
        "n_sets": int(bench["n_sets"]),
        # throughput (outputs per second) and roofline fractions of the primary build and the solver on the
        # first set count (records older than the roofline lack them)
        **{f"{side}_{key}": _number(part.get(key))
           for side, part in _first_size_sides(bench) for key in ("outputs_per_s", "compute_fraction",
                                                                   "bandwidth_fraction")},
    }


def _first_size_sides(bench: dict) -> list[tuple[str, dict]]:
    """("network", the primary build's timing) and ("solver", its timing) on a record's first set count."""
    sizes = bench.get("sizes") or [{}]
    primary = f"{bench.get('backend')}-{bench.get('precision')}"
    return [("network", sizes[0].get("builds", {}).get(primary, {})), ("solver", sizes[0].get("solver", {}))]


def _number(value) -> float:
    return np.nan if value is None else float(value)


def _bench_records(obj) -> list[dict]:
    """Benchmark records of a file: one model's record, or a study's {"models": [records]}."""
    return obj.get("models", [obj])


def build_summary(metric_files: list, bench_files: list) -> pd.DataFrame:
    """One row per model, joining metrics.json and benchmark records on (study, model).

    Columns are `SUMMARY_COLUMNS`: errors are dimensionless (eq. 3.3), times
    are seconds (medians, plus inter-quartile ranges `*_iqr_s`), `speedup`
    is solver median / inference median, `n_sets` the number of parameter
    sets timed. Failed models keep their row with NaN errors and
    `status == "failed"`; models without a bench.json get NaN timings.
    Raises ValueError if a (study, model) pair occurs twice.
    """
    metrics = pd.DataFrame([_metrics_row(_read_json(p)) for p in metric_files],
                           columns=METRIC_COLUMNS + ["status", "error"])
    records = [r for p in bench_files for r in _bench_records(_read_json(p))]
    bench = pd.DataFrame([benchmark_row(r) for r in records],
                         columns=["study", "model", *BENCH_COLUMNS, "n_sets"])
    orphans = bench.merge(metrics[["study", "model"]], how="left", indicator=True)
    orphans = orphans[orphans["_merge"] == "left_only"]
    if len(orphans):
        log.warning("ignoring %d bench.json without metrics.json: %s", len(orphans),
                    list(zip(orphans["study"], orphans["model"], strict=True)))
    try:
        df = metrics.merge(bench, on=["study", "model"], how="left", validate="one_to_one")
    except pd.errors.MergeError as exc:
        raise ValueError(f"duplicate (study, model) among metrics/bench files: {exc}") from exc
    df["speedup"] = df["solver_time_s"] / df["inference_time_s"]
    df["n_sets"] = df["n_sets"].astype("Int64")
    return df[SUMMARY_COLUMNS].sort_values(["study", "model"], ignore_index=True)


def successful(summary: pd.DataFrame) -> pd.DataFrame:
    """Rows of models that trained (status ok) and have a finite, positive mean error."""
    ok = summary["status"].eq("ok") & np.isfinite(summary["mean_err"]) & (summary["mean_err"] > 0)
    return summary[ok]


def time_domains(summary: pd.DataFrame) -> pd.DataFrame:
    """Per study, class and number of time windows: median mean error on the study's time domain;
    for a study with marching, median error marched to its horizon (thesis Table 7's small vs large
    domain); for split models, the median interface jump between windows (eq. 3.20's residual)."""
    ok = successful(summary)
    table = ok.groupby(["study", "class", "windows"], sort=True).agg(
        n_models=("model", "size"), median_err=("mean_err", "median"), median_march_err=("march_err", "median"),
        median_jump_err=("jump_err", "median"))
    return table.reset_index()


def failed_models(summary: pd.DataFrame) -> pd.DataFrame:
    """The models that did not train (status other than ok), with their error message."""
    cols = ["study", "model", "class", "arch", "iterations", "status", "error"]
    return summary.loc[summary["status"].ne("ok"), cols].reset_index(drop=True)
