"""Error over cuts of the solution space (thesis Fig. 28, 32, 33, 35; SPEC.md section 7).

A cut fixes W0 (and, for problem C, K) and spans U0 over the study's range: the
error of eq. 3.3, |dU| + |dW|, of a trained network against the data solver at
every (U0, t) of the study's time lattice. The thesis found the high-error
region of every model near the unstable equilibrium, U0 = a; the cuts show
where it lies and how wide it is. A continuous network is evaluated at each
(t, U0, W0[, K]); an iterator network is rolled out from (U0, W0) and compared
at its own steps (eq. 3.18).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.colors import LogNorm

from ..cell.problems import OUTPUTS, PARAM_KEYS, parameter_columns
from ..datasets.simulate import solve_parameter_sets
from ..nets.evaluate import sample_errors
from ..plan.kinds import continuous_classes
from .summary import successful

CUT_COLUMNS = ["cut", "U0", "W0", "K", "t", "err"]
ERR_FLOOR = 1e-4  # colour scale floor: errors below it look alike


def cut_parameters(settings: dict, n_u0: int = 101, w0_fractions=(0.1, 0.5, 0.9)) -> np.ndarray:
    """Parameter sets of the cuts, (len(w0_fractions) * n_u0, 2 or 3): U0 evenly over its range for each
    W0 at the given fractions of its range; K (problem C) at the middle of its range."""
    ranges = settings["ranges"]
    u0 = np.linspace(*ranges["u0"], n_u0)
    w_lo, w_hi = ranges["w0"]
    rows = []
    for f in w0_fractions:
        cols = [u0, np.full(n_u0, w_lo + f * (w_hi - w_lo))]
        if "K" in parameter_columns(settings):
            cols.append(np.full(n_u0, float(np.mean(ranges[PARAM_KEYS["K"]]))))
        rows.append(np.stack(cols, axis=1))
    return np.concatenate(rows)


def cut_errors(model, truth: pd.DataFrame, n_cuts: int) -> pd.DataFrame:
    """`CUT_COLUMNS` rows: the error of `model` at every (trajectory, time) of `truth` (a frame of
    `solve_parameter_sets` on `cut_parameters`, trajectories in cut order). An iterator network's
    errors are at its rollout steps, the initial state left out."""
    truth = truth.sort_values(["traj", "t"], ignore_index=True)
    per_traj = truth.groupby("traj").first()
    n_traj = len(per_traj)
    cut_of = np.repeat(np.arange(n_cuts), n_traj // n_cuts)
    k = per_traj["K"].to_numpy() if "K" in truth else np.full(n_traj, np.nan)
    if model.is_iterator:
        rollout = model.rollout_validation(truth)
        err = rollout.errors(model)  # (n_steps, n_traj)
        times = np.sort(truth["t"].unique())[rollout.k * np.arange(1, rollout.n_steps + 1)]
        n_t = len(times)
        return pd.DataFrame({"cut": np.repeat(cut_of, n_t), "U0": np.repeat(per_traj["U0"].to_numpy(), n_t),
                             "W0": np.repeat(per_traj["W0"].to_numpy(), n_t), "K": np.repeat(k, n_t),
                             "t": np.tile(times, n_traj), "err": err.T.reshape(-1)})[CUT_COLUMNS]
    x = torch.tensor(truth[model.spec["inputs"]].to_numpy(np.float32))
    y = torch.tensor(truth[OUTPUTS].to_numpy(np.float32))
    n_t = len(truth) // n_traj
    return pd.DataFrame({"cut": np.repeat(cut_of, n_t), "U0": truth["U0"], "W0": truth["W0"],
                         "K": np.repeat(k, n_t), "t": truth["t"], "err": sample_errors(model, x, y)})[CUT_COLUMNS]


def study_cuts(models: dict, config: dict, settings: dict, n_u0: int = 101,
               w0_fractions=(0.1, 0.5, 0.9)) -> pd.DataFrame:
    """Errors of each named model of `models` ({label: model}) over the cuts of one study, solved with
    the config's data solver; a column "model" names the model."""
    params = cut_parameters(settings, n_u0, w0_fractions)
    truth = solve_parameter_sets(config, settings, params)
    frames = [cut_errors(m, truth, len(w0_fractions)).assign(model=label) for label, m in models.items()]
    return pd.concat(frames, ignore_index=True)


def _panel(ax, cut: pd.DataFrame, norm):
    grid = cut.pivot_table(index="t", columns="U0", values="err")
    return ax.pcolormesh(grid.columns.to_numpy(), grid.index.to_numpy(), np.maximum(grid.to_numpy(), ERR_FLOOR),
                         norm=norm, cmap="magma", shading="nearest")


def error_cuts_figure(cuts: pd.DataFrame, path, title: str, a: float) -> Path:
    """One row per model and one column per cut: |dU| + |dW| over (U0, t) on a shared log colour scale,
    with the unstable equilibrium U0 = `a` marked."""
    labels = list(dict.fromkeys(cuts["model"]))
    n_cuts = int(cuts["cut"].max()) + 1
    fig, axes = plt.subplots(len(labels), n_cuts, figsize=(3.6 * n_cuts + 1.2, 3.0 * len(labels) + 0.6),
                             squeeze=False, sharex=True, sharey="row")
    norm = LogNorm(vmin=ERR_FLOOR, vmax=max(float(cuts["err"].max()), 10 * ERR_FLOOR))
    mesh = None
    for row, label in enumerate(labels):
        for c in range(n_cuts):
            ax, cut = axes[row, c], cuts[(cuts["model"] == label) & (cuts["cut"] == c)]
            mesh = _panel(ax, cut, norm)
            ax.axvline(a, color="cyan", ls="--", lw=1)
            extra = f", K = {cut['K'].iloc[0]:.2f}" if np.isfinite(cut["K"].iloc[0]) else ""
            ax.set_title(f"{label}\nW0 = {cut['W0'].iloc[0]:.3f}{extra}", fontsize="small")
            ax.set(xlabel="U0" if row == len(labels) - 1 else None, ylabel="t" if c == 0 else None)
    fig.suptitle(f"{title} (dashed: U0 = a = {a:g})", fontsize="medium")
    fig.tight_layout(rect=(0, 0, 0.9, 0.97))
    cax = fig.add_axes((0.91, 0.15, 0.02, 0.7))
    fig.colorbar(mesh, cax=cax, label="|dU| + |dW| (eq. 3.3)")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def cut_models(summary: pd.DataFrame, study: str) -> dict[str, str]:
    """The models a study's cuts show, {label: model name}: its lowest-error continuous network (DDNN or
    PINN, any variant) and its lowest-error iterator network, where the study has them (status ok)."""
    ok = successful(summary)
    ok = ok[ok["study"] == study]
    chosen, continuous = {}, ok["class"].isin(continuous_classes())
    for label, rows in (("best continuous", ok[continuous]), ("best ITNN", ok[~continuous])):
        if len(rows):
            chosen[label] = rows.loc[rows["mean_err"].idxmin(), "model"]
    return chosen
