"""Increased point density where a trained model errs most (thesis 3.4.2; SPEC.md section 5).

A base model is trained on the study's uniform training set. Its error is
mapped over the parameter space on that training set (never on validation
data, which stays untouched for judging the result): per trajectory, the mean
of eq. 3.3 over its time points; for an iterator network, the one-step error
of every state (U, W[, K]) it steps from, each state being a parameter set of
its own, or, with `resample.error: rollout`, the mean error of its full rollout
of each training trajectory, the trajectory's initial state being the point
(the thesis ranks one-step errors while judging rollouts). High-error
parameter sets are chosen by a rule (the top fraction q, or a mean error above
a threshold), new parameter sets are drawn around them
(Gaussian, spread as a fraction of each parameter's range, clipped to the
study's ranges), solved with the data solver, and a model is retrained with
them as an extra data term. The number of new sets is known only once the
base model is trained, which is why the workflow splits the solve into a
data-dependent number of chunks (a Snakemake checkpoint).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..cell.problems import INPUTS, OUTPUTS, input_bounds
from ..nets import itnn
from ..nets.evaluate import sample_errors

ERROR = "mean_err"


def _tensor(df: pd.DataFrame, columns) -> torch.Tensor:
    return torch.tensor(df[list(columns)].to_numpy(np.float32))


def trajectory_errors(model, df: pd.DataFrame, problem: str) -> pd.DataFrame:
    """Per trajectory of a (t, U0, W0[, K]) data set: its parameters, mean and max of eq. 3.3 over its times."""
    params = INPUTS[problem][1:]
    err = sample_errors(model, _tensor(df, INPUTS[problem]), _tensor(df, OUTPUTS))
    frame = df[["traj", *params]].assign(err=err)
    out = frame.groupby("traj", sort=True).agg(**{p: (p, "first") for p in params},
                                               mean_err=("err", "mean"), max_err=("err", "max"))
    return out.reset_index()


def state_errors(model, df: pd.DataFrame, problem: str, dt_net: float) -> pd.DataFrame:
    """Per one-step pair of an iterator network: the state it steps from, as (U0, W0[, K]), and its error."""
    x, y = itnn.pairs(df, problem, dt_net)
    err = sample_errors(model, x, y)
    frame = pd.DataFrame(x.double().numpy(), columns=INPUTS[problem][1:])
    return frame.assign(mean_err=err, max_err=err)


def rollout_errors(model, df: pd.DataFrame, problem: str, dt_net: float) -> pd.DataFrame:
    """Per trajectory: an iterator network's mean and max full-rollout error (eq. 3.18, 3.3)."""
    params = INPUTS[problem][1:]
    err = itnn.RolloutValidation(df, problem, dt_net).errors(model)  # (steps, trajectories)
    first = df.sort_values(["traj", "t"]).groupby("traj", sort=True)[params].first().reset_index()
    return first.assign(mean_err=err.mean(axis=0), max_err=err.max(axis=0))


def error_map(model, df: pd.DataFrame, problem: str, for_selection: bool) -> pd.DataFrame:
    """Errors of `model` over the parameter sets of `df`: what the selection ranks (`for_selection`:
    one-step states for an iterator) or what the report maps (whole trajectories, rollouts for an iterator)."""
    if not model.is_iterator:
        return trajectory_errors(model, df, problem)
    if for_selection:
        return state_errors(model, df, problem, model.iterator_dt)
    return rollout_errors(model, df, problem, model.iterator_dt)


def select_high_error(errors: pd.DataFrame, rule: str, q: float, threshold: float) -> pd.DataFrame:
    """The rows of `errors` chosen by the rule, highest error first.

    top_fraction: the ceil(q * n) rows with the highest mean error; threshold: every row whose mean
    error exceeds `threshold` (possibly none).
    """
    ranked = errors.sort_values(ERROR, ascending=False, kind="stable")
    if rule == "top_fraction":
        chosen = ranked.head(int(np.ceil(q * len(ranked))))
    elif rule == "threshold":
        chosen = ranked[ranked[ERROR] > threshold]
    else:
        raise ValueError(f"resample.rule must be top_fraction or threshold, got {rule!r}")
    return chosen.reset_index(drop=True)


def sample_around(centers: np.ndarray, lo, hi, spread: float, per_point: int, max_points: int,
                  seed: int) -> np.ndarray:
    """`per_point` parameter sets around each center (rows, highest error first): Gaussian with standard
    deviation `spread` x (hi - lo) per parameter, clipped to [lo, hi]. Only the first max_points //
    per_point centers are used, so a cap drops the lowest-error centers."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    centers = np.asarray(centers, float).reshape(-1, lo.size)[: max_points // per_point]
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((len(centers), per_point, lo.size)) * spread * (hi - lo)
    return np.clip(centers[:, None, :] + noise, lo, hi).reshape(-1, lo.size)


def new_parameter_sets(errors: pd.DataFrame, study: dict, settings: dict, seed: int) -> tuple[pd.DataFrame,
                                                                                                 pd.DataFrame]:
    """(chosen high-error points, new parameter sets around them) for a study's `resample` settings."""
    columns = INPUTS[study["problem"]][1:]
    centers = select_high_error(errors, settings["rule"], settings["q"], settings["threshold"])
    lo, hi = (b[1:] for b in input_bounds(study))
    new = sample_around(centers[columns].to_numpy(), lo, hi, settings["spread"], settings["per_point"],
                        settings["max_points"], seed)
    return centers, pd.DataFrame(new, columns=columns)


def chunks(frame: pd.DataFrame, size: int) -> list[pd.DataFrame]:
    """Consecutive pieces of at most `size` rows (none for an empty frame)."""
    return [frame.iloc[i:i + size] for i in range(0, len(frame), size)]


def merge_solved(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    """One data set from solved chunks, trajectories renumbered 0..n-1 in chunk order."""
    out, offset = [], 0
    for frame in frames:
        out.append(frame.assign(traj=frame["traj"] + offset))
        offset += frame["traj"].nunique()
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=columns)


# --- the workflow's steps (thin I/O around the functions above)

def write_selection(model_dir, train_path, study: dict, settings: dict, seed: int, centers_path,
                    chunks_dir) -> dict:
    """Rank the base model's training-set errors (`settings.error` of an iterator: one-step states, or
    whole rollouts from each training trajectory's initial state), choose the high-error points, draw new parameter sets
    around them and write them as `chunks_dir/chunk_NNNN.parquet` pieces of `settings.chunk` rows (none
    when no point met the rule); the chosen points go to `centers_path`. Returns counts for the log."""
    from pathlib import Path

    from ..artifacts import versions, write_parquet
    from ..nets import load_model

    model = load_model(model_dir)
    ranks = settings.get("error", "one_step")  # an iterator's one-step states, or its training rollouts
    errors = error_map(model, pd.read_parquet(train_path), study["problem"], for_selection=ranks == "one_step")
    centers, new = new_parameter_sets(errors, study, settings, seed)
    meta = {"rule": settings["rule"], "q": settings["q"], "threshold": settings["threshold"], "seed": seed,
            "error": ranks if model.is_iterator else "trajectory",
            "n_candidates": len(errors), "n_centers": len(centers), "n_new": len(new),
            "spread": settings["spread"], "per_point": settings["per_point"], "versions": versions()}
    write_parquet(centers, centers_path, meta)
    chunks_dir = Path(chunks_dir)
    chunks_dir.mkdir(parents=True, exist_ok=True)
    for i, piece in enumerate(chunks(new, settings["chunk"])):
        write_parquet(piece.reset_index(drop=True), chunks_dir / f"chunk_{i:04d}.parquet", meta)
    return {k: meta[k] for k in ("n_candidates", "n_centers", "n_new")}


def compare_error_maps(base_dir, retrained_dir, val_df: pd.DataFrame, problem: str) -> pd.DataFrame:
    """Validation errors per trajectory of the base and the retrained model (column `model`: before, after)."""
    from ..nets import load_model

    maps = [error_map(load_model(d), val_df, problem, for_selection=False).assign(model=which)
            for which, d in (("before", base_dir), ("after", retrained_dir))]
    return pd.concat(maps, ignore_index=True)


def resampling_summary(study: str, maps: pd.DataFrame, selection: dict) -> dict:
    """One row of the report's resampling table: what was chosen and the validation errors before/after."""
    row = {"study": study, **{k: selection[k] for k in ("rule", "n_candidates", "n_centers", "n_new")}}
    for which in ("before", "after"):
        errs = maps.loc[maps["model"] == which]
        row[f"mean_err_{which}"] = float(errs["mean_err"].mean())
        row[f"max_err_{which}"] = float(errs["max_err"].max())
    row["mean_err_ratio"] = row["mean_err_after"] / row["mean_err_before"]
    return row
