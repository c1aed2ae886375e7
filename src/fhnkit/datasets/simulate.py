"""Training, validation and region sets of a study, solved with the configured solver, as Parquet.

Problem A: one trajectory from `initial_state`; a row per sampled time point.
Problems B and C: `n` sampled parameter sets (U0, W0[, K]), each solved on
[0, t_max] and stored at `times_per_trajectory` evenly spaced times; a row per
(parameter set, time). Training and validation sets are drawn from separate
seeded streams and never share a parameter set (problem A: a time point); a
region set samples the study's region (DDNNa/PINNa data term).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import __version__
from ..artifacts import read_parquet_meta, write_parquet
from ..cell.problems import OUTPUTS, fhn_params, i_app, input_bounds, input_columns, parameter_columns, region_bounds
from ..content import record_content
from ..plan.config import config_hash, derive_seed
from ..plan.execution import data_solver_identity
from ..plan.grid import data_determinants
from ..solvers.cpu import solve, solver_backend, steps_for
from .sampling import sample_box

SPLITS = ("train", "val", "region", "march")


def _split_seed(config: dict, study: dict, split: str) -> int:
    """Seed of one split, derived from what defines it, not from the study's name: two studies
    that differ only in their training set (A scarce vs dense) share one validation set."""
    keys = ("problem", "i_app", "k_to_i_app", "t_max", "initial_state", "ranges", "times_per_trajectory")
    what = study["region"] if split == "region" else _split_spec(study, split)
    return derive_seed(config["seed"], "data", split, config_hash({**{k: study[k] for k in keys}, split: what}))


def _solve(config, study, u0, w0, current, save_times_every, t_end=None):
    solver = config["data_solver"]
    dt = solver["dt"]
    n_steps = steps_for(study["t_max"] if t_end is None else t_end, dt)
    if n_steps % save_times_every:
        raise ValueError(f"t_max/dt = {n_steps} steps is not divisible into the requested time points "
                         f"(every {save_times_every} steps); change times_per_trajectory or data_solver.dt")
    return solve(u0, w0, current, fhn_params(config), dt, n_steps, save_times_every, solver["precision"],
                 backend=solver_backend(solver["backend"], solver["method"]), method=solver["method"])


def solver_provenance(config: dict) -> dict:
    """A data set's `data_solver` metadata: the settings that determine its numbers, and `ran_on`, where this
    process computes them ("cpu": numba, "cuda": the exact CUDA kernel; the same bits either way)."""
    solver = config["data_solver"]
    return data_solver_identity(config) | {"ran_on": solver_backend(solver["backend"], solver["method"])}


def _slot_indices(n: int, n_slots: int, sampler: str, seed: int) -> np.ndarray:
    """`n` distinct sorted slot indices out of `n_slots`, chosen by `sampler`."""
    if n > n_slots:
        raise ValueError(f"asked for {n} time points but only {n_slots} distinct solver steps exist; "
                         "lower n or data_solver.dt")
    rng = np.random.default_rng(seed)
    if sampler == "grid":
        return np.rint(np.linspace(0, n_slots - 1, n)).astype(np.int64)
    if sampler == "uniform":
        return np.sort(rng.choice(n_slots, n, replace=False))
    edges = np.linspace(0, n_slots, n + 1)  # lhs: one slot drawn in each of n strata
    return np.floor(edges[:-1] + rng.random(n) * np.diff(edges)).astype(np.int64)


def _problem_a(config, study, split):
    """Training times lie on even solver steps, validation times on odd ones: the two never meet,
    and the validation set does not depend on the training set."""
    dt = config["data_solver"]["dt"]
    n_steps = steps_for(study["t_max"], dt)
    n_slots = n_steps // 2 + 1 if split == "train" else (n_steps + 1) // 2
    slots = _slot_indices(study[split]["n"], n_slots, study[split]["sampler"], _split_seed(config, study, split))
    steps = 2 * slots + (split == "val")
    u0, w0 = study["initial_state"]
    _, U, W = _solve(config, study, np.array([u0]), np.array([w0]), np.array([i_app(study)]), 1)
    return pd.DataFrame({"traj": np.zeros(steps.size, np.int64), "t": steps * dt,
                         "U": U[steps, 0].astype(np.float64), "W": W[steps, 0].astype(np.float64)})


def _parameter_sets(config, study, split):
    """(n, d) parameter sets of a split; validation drops any set that is also a training set.
    The region split samples the region's box with the region data set's size and sampler."""
    if split in ("region", "march"):
        box = region_bounds(study, study["region"]) if split == "region" else input_bounds(study)
        lo, hi = (b[1:] for b in box)
        spec = study["region"]["data"] if split == "region" else study["marching"]
        return sample_box(spec["n"], lo, hi, spec["sampler"], _split_seed(config, study, split))
    lo, hi = (b[1:] for b in input_bounds(study))
    def draw(which):
        return sample_box(study[which]["n"], lo, hi, study[which]["sampler"],
                          _split_seed(config, study, which))
    params = draw(split)
    if split == "val":
        train = {tuple(r) for r in draw("train")}
        params = params[[tuple(r) not in train for r in params]]
        if len(params) < study["val"]["n"] / 2:
            raise ValueError(f"{study['val']['n'] - len(params)} of the {study['val']['n']} validation parameter "
                             "sets are also training sets; use another val.sampler or val.n")
    return params


def _problem_bc(config, study, split):
    t_end = study["marching"]["horizon"] if split == "march" else None
    return solve_parameter_sets(config, study, _parameter_sets(config, study, split), t_end)


def solve_parameter_sets(config: dict, study: dict, params: np.ndarray, t_end: float | None = None) -> pd.DataFrame:
    """Solve the parameter sets `params` ((n, d): U0, W0[, K] of a B/C study) with the configured solver on
    [0, t_end or t_max], stored on the study's time lattice; a row per (trajectory, time)."""
    cols = parameter_columns(study)
    by_col = dict(zip(cols, np.asarray(params, float).reshape(-1, len(cols)).T, strict=True))
    current = i_app(study, by_col.get("K"))
    current = np.broadcast_to(np.asarray(current, float), by_col["U0"].shape)
    n_steps = steps_for(study["t_max"], config["data_solver"]["dt"])
    every = n_steps // (study["times_per_trajectory"] - 1)  # the same time lattice for every split
    times, U, W = _solve(config, study, by_col["U0"], by_col["W0"], current, every, t_end)
    n_t, n = U.shape
    frame = {"traj": np.repeat(np.arange(n, dtype=np.int64), n_t), "t": np.tile(times, n)}
    for col in cols:
        frame[col] = np.repeat(by_col[col], n_t)
    frame["U"] = U.T.reshape(-1).astype(np.float64)
    frame["W"] = W.T.reshape(-1).astype(np.float64)
    return pd.DataFrame(frame)


def _split_spec(study: dict, split: str) -> dict:
    """The {n, sampler} that defines a split."""
    return {"region": lambda: study["region"]["data"], "march": lambda: study["marching"]}.get(
        split, lambda: study[split])()


def make_dataset(config: dict, study_name: str, split: str) -> tuple[pd.DataFrame, dict]:
    """Build one split of a study's data; returns (rows, metadata for the Parquet schema)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    study = config["studies"][study_name]
    if split == "region" and (study.get("region") is None or study["problem"] == "A"):
        raise ValueError(f"study {study_name} has no region data set (needs a region, problem B or C)")
    if split == "march" and study.get("marching") is None:
        raise ValueError(f"study {study_name} has no marching set (needs studies.{study_name}.marching)")
    build = _problem_a if study["problem"] == "A" else _problem_bc
    df = build(config, study, split)
    det = data_determinants(config, study_name)
    meta = {"study": study_name, "split": split, "problem": study["problem"], "model": config["model"],
            "data_solver": solver_provenance(config), "dt": config["data_solver"]["dt"],
            "i_app": study["i_app"] if study["problem"] != "C" else None,
            "k_to_i_app": study["k_to_i_app"] if study["problem"] == "C" else None,
            "sampler": _split_spec(study, split)["sampler"], "n": _split_spec(study, split)["n"],
            "region": study.get("region") if split == "region" else None,
            "seed": _split_seed(config, study, split), "root_seed": config["seed"],
            "save_step": study["t_max"] / (study["times_per_trajectory"] - 1) if study["problem"] != "A" else None,
            "inputs": input_columns(study), "outputs": OUTPUTS, "fhnkit_version": __version__,
            "config_hash": config_hash(det)}
    return df, meta


def write_dataset(config: dict, study_name: str, split: str, path, source=None) -> pd.DataFrame:
    """Build one split and write it to `path` as Parquet (atomically), its content hash beside it
    (`fhnkit.content.record_content`: a later run detects bytes changed in place); returns the rows.
    With `source`, the same split of a study with the same data determinants (`fhnkit.plan.grid.
    data_shared_with`: an ablation's variant that leaves its data alone), its rows are taken instead of
    solved again: the bytes are those that solving would write."""
    if source is None:
        df, meta = make_dataset(config, study_name, split)
    else:
        df, meta = _shared_dataset(config, study_name, split, source)
    write_parquet(df, path, meta)
    record_content(path)
    return df


def _shared_dataset(config: dict, study_name: str, split: str, source) -> tuple[pd.DataFrame, dict]:
    """The rows and metadata of data set `source`, renamed to `study_name`'s, after checking that it is
    split `split` made from the determinants of `study_name`'s (a stale or foreign file is named)."""
    meta = read_parquet_meta(source)
    expected = config_hash(data_determinants(config, study_name))
    if meta.get("split") != split or meta.get("config_hash") != expected:
        raise ValueError(f"{source} is not the {split} set that study {study_name} shares (its split "
                         f"{meta.get('split')!r}, config hash {meta.get('config_hash')!r}; expected {expected!r}): "
                         "make it again (snakemake --forcerun dataset)")
    return pd.read_parquet(source), {**meta, "study": study_name}
