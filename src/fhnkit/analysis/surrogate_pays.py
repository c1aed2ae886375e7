"""Does a surrogate pay? For each study, the best network by accuracy and the fastest one within an
accuracy bound, each beside the solver on the same work: the time ratio, both sides' fractions of
their rooflines, and the accuracy each gives up.

The solver's own errors on the benchmark's work are the floors a network is judged against: its
float32-vs-float64 discrepancy (what rounding alone costs the solver), and the benchmark's explicit
Euler (dt = benchmark.dt) against the data solver (what the solver being replaced gets wrong itself).
A network "pays" when it is faster than the solver and its mean error is within the bound (by default,
the Euler solver's own error: a surrogate that is less accurate than what it replaces has not won).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..cell.model import FHNParams
from ..solvers.cpu import solve, steps_for
from .summary import successful

COLUMNS = ["study", "pick", "model", "build", "device", "mean_err", "bound", "speedup", "network_compute_fraction",
           "network_bandwidth_fraction", "solver_compute_fraction", "solver_bandwidth_fraction", "solver_f32_vs_f64",
           "euler_error", "error_vs_euler", "pays"]


def _points(t_end: float, n_points: int, dt: float) -> tuple[int, int]:
    """(steps, store every) of a solve of step `dt` that stores `n_points` points up to `t_end`."""
    n_steps = steps_for(t_end, dt)
    if n_steps % n_points:
        raise ValueError(f"{n_points} points do not divide {n_steps} steps of dt = {dt}")
    return n_steps, n_steps // n_points


def solver_floor(config: dict, study: str, n_sets: int, seed: int = 0) -> dict:
    """The benchmark solver's own errors on `n_sets` of the study's reference parameter sets (the benchmark's
    work: t to benchmark.t_end, benchmark.n_points stored), as means over sets and points of |dU| + |dW|
    (eq. 3.3): `solver_f32_vs_f64` (float32 against float64 Euler) and `euler_error` (float64 Euler against
    the data solver at its own step)."""
    from ..inference.benchmark import reference_sets

    bench, data = config["benchmark"], config["data_solver"]
    params = FHNParams.from_mapping(config["model"])
    sets = reference_sets(config["studies"][study], n_sets, seed)
    state = (sets["U0"], sets["W0"], sets["I_app"])
    steps, every = _points(bench["t_end"], bench["n_points"], bench["dt"])
    euler = {dtype: solve(*state, params, bench["dt"], steps, every, dtype, store_initial=False, backend="cpu",
                          method="euler")[1:] for dtype in (np.float32, np.float64)}
    ref_steps, ref_every = _points(bench["t_end"], bench["n_points"], data["dt"])
    _, u_ref, w_ref = solve(*state, params, data["dt"], ref_steps, ref_every, np.float64, store_initial=False,
                            backend="cpu", method=data["method"])

    def distance(a, b):
        return float(np.mean(np.abs(a[0].astype(float) - b[0]) + np.abs(a[1].astype(float) - b[1])))

    return {"solver_f32_vs_f64": distance(euler[np.float32], euler[np.float64]),
            "euler_error": distance(euler[np.float64], (u_ref, w_ref))}


def _pick_row(study: str, pick: str, row: pd.Series, floor: dict, bound: float) -> dict:
    out = {"study": study, "pick": pick, "bound": bound, **floor}
    for key in ("model", "build", "device", "mean_err", "speedup", "network_compute_fraction",
                "network_bandwidth_fraction", "solver_compute_fraction", "solver_bandwidth_fraction"):
        out[key] = row[key]
    out["error_vs_euler"] = row["mean_err"] / floor["euler_error"] if floor["euler_error"] > 0 else np.nan
    out["pays"] = bool(row["speedup"] > 1 and row["mean_err"] <= bound)
    return out


def pays_table(summary: pd.DataFrame, bench: pd.DataFrame, floors: dict[str, dict],
               bound: float | None) -> pd.DataFrame:
    """Per study: the best network by accuracy (at its fastest build) and the fastest build of any network
    whose mean error is within `bound` (None: the study's Euler error), beside the solver."""
    models = successful(summary)[["study", "model", "mean_err"]]
    timed = bench.merge(models, on=["study", "model"], how="inner")
    rows = []
    for study, group in timed.groupby("study", sort=True):
        floor = floors[study]
        limit = floor["euler_error"] if bound is None else bound
        fastest_build = group.loc[group.groupby("model")["speedup"].idxmax()]
        best = fastest_build.loc[fastest_build["mean_err"].idxmin()]
        rows.append(_pick_row(study, "best accuracy", best, floor, limit))
        within = group[group["mean_err"] <= limit]
        if within.empty:
            rows.append({"study": study, "pick": "fastest within the bound", "model": "(none within the bound)",
                         "bound": limit, **floor, "pays": False})
        else:
            rows.append(_pick_row(study, "fastest within the bound", within.loc[within["speedup"].idxmax()], floor,
                                  limit))
    return pd.DataFrame(rows, columns=COLUMNS)


def verdict(table: pd.DataFrame) -> str:
    """One plain sentence: where a surrogate pays in this run, or that it never does (and by how much)."""
    if table.empty:
        return "No study was benchmarked: nothing to say."
    paying = table[table["pays"]]
    devices = sorted(set(table["device"].dropna()))
    where = " and ".join(devices) or "this machine"
    if paying.empty:
        timed = table.dropna(subset=["speedup"])
        if timed.empty:
            return f"On {where}, no network was timed: nothing to say."
        within = timed[timed["mean_err"] <= timed["bound"]]
        if within.empty:
            top = timed.loc[timed["speedup"].idxmax()]
            return (f"On {where}, a surrogate never pays: no network is as accurate as the bound, and even the "
                    f"fastest ({top['study']}/{top['model']}, {top['build']}) is {1 / top['speedup']:.3g}x slower "
                    "than the Euler solver on the same work.")
        top = within.loc[within["speedup"].idxmax()]
        return (f"On {where}, a surrogate never pays: the fastest network within the bound ({top['study']}/"
                f"{top['model']}, {top['build']}) is {1 / top['speedup']:.3g}x slower than the Euler solver on the "
                "same work.")
    studies = ", ".join(sorted(set(paying["study"])))
    top = paying.loc[paying["speedup"].idxmax()]
    return (f"On {where}, a surrogate pays for {studies}: {top['study']}/{top['model']} ({top['build']}) is "
            f"{top['speedup']:.3g}x faster than the solver with mean error {top['mean_err']:.3g} "
            f"(bound {top['bound']:.3g}).")
