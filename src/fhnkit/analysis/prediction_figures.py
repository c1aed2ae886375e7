"""Prediction figures (thesis Fig. 27, 31): the best continuous network (DDNN/PINN) of each class variant
of a study evaluated on the validation set, U(t) and W(t) against the solver, with the high-error
trajectories highlighted (ITNN rollouts are `accuracy_figures.rollout`, Fig. 36).

Layout (DPI, panel height, the legend column on the right, empty panels) is `plotting`'s.
Errors are eq. 3.3, |dU| + |dW| per point; a trajectory's error is the mean over its times.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.collections import LineCollection
from matplotlib.lines import Line2D

from ..cell.problems import OUTPUTS
from ..nets.evaluate import predict
from ..plan.kinds import continuous_classes
from . import plotting
from .summary import successful

CONTINUOUS = tuple(continuous_classes())
# a block of 2 x 2 panels per model: U(t), W(t) above, network vs solver and the error below (the width of
# a two-panel figure, legible at the report's width)
PRED_ROWS, PRED_COLUMNS = 2, 2
BLOCK_GAP = 0.05  # a blank row between two models' blocks (in panel heights; with its spacing about two gaps)


def predictions_size(n_models: int) -> tuple[float, float]:
    """(width, height) in inches of a predictions figure of `n_models` blocks."""
    width = PRED_COLUMNS * plotting.PANEL_W + plotting.LEGEND_W
    return width, plotting.PANEL_H * (PRED_ROWS * n_models + BLOCK_GAP * (n_models - 1))


def _blocks(n_models: int):
    """Figure and, per model, its panels (U, W, network vs solver, error); a blank row between blocks."""
    fig = plt.figure(figsize=predictions_size(n_models))
    ratios = ([1] * PRED_ROWS + [BLOCK_GAP]) * n_models
    grid = fig.add_gridspec(len(ratios) - 1, PRED_COLUMNS, height_ratios=ratios[:-1])
    first = [(PRED_ROWS + 1) * k for k in range(n_models)]
    return fig, [[fig.add_subplot(grid[r + i, j]) for i in range(PRED_ROWS) for j in range(PRED_COLUMNS)]
                 for r in first]
MAX_HIGHLIGHTED = 10  # high-error trajectories drawn in colour, the highest first
MAX_BACKGROUND = 1000  # other trajectories drawn in grey (a seeded random subset of a larger set)
HIGH = "crimson"  # high-error points where a trajectory has no colour of its own
# colours of the drawn high-error trajectories: tab10 without the blue and orange of U and W, the red of HIGH
# and the grey of the other trajectories; more than six drawn take evenly spaced hues
TRAJECTORY_COLOURS = [sns.color_palette("tab10")[i] for i in (2, 4, 5, 6, 8, 9)]


# --------------------------------------------------------------------------- numerics

def high_error(mean_err, max_err, rule: str = "top_fraction", q: float = 0.05, of_max: float = 0.8) -> np.ndarray:
    """Indices of the high-error trajectories (or points), highest mean error first.

    top_fraction: the ceil(q n) of highest mean error (at least one of a non-empty set);
    of_max: every one with a point whose error is at least `of_max` times the largest pointwise
    error of the whole set (thesis Fig. 27, 31: 80 %). NaN errors (an overflowing prediction) rank highest.
    """
    mean = np.nan_to_num(np.asarray(mean_err, float), nan=np.inf)
    peak = np.nan_to_num(np.asarray(max_err, float), nan=np.inf)
    order = np.argsort(-mean, kind="stable")
    if rule == "top_fraction":
        return order[: int(np.ceil(q * mean.size - 1e-9))]  # q n up to rounding: 0.1 x 30 is 3, not 4
    if rule == "of_max":
        return order[(peak >= of_max * peak.max())[order]] if peak.size else order
    raise ValueError(f"analysis.predictions.rule must be top_fraction or of_max, got {rule!r}")


def validation_predictions(model, val: pd.DataFrame) -> pd.DataFrame:
    """The rows of a validation set sorted by (traj, t), with the model's `U_pred`, `W_pred` and the
    pointwise error `err` (eq. 3.3)."""
    df = val.sort_values(["traj", "t"], ignore_index=True)
    pred = predict(model, torch.tensor(df[model.spec["inputs"]].to_numpy(np.float32))).double().numpy()
    df[["U_pred", "W_pred"]] = pred
    df["err"] = np.abs(pred - df[OUTPUTS].to_numpy()).sum(axis=1)
    return df


def unit_errors(pred: pd.DataFrame) -> pd.DataFrame:
    """Mean and max error per trajectory (index: traj), or per point when the set is one trajectory
    (problem A: index the row), with the trajectory's initial state where the set has one."""
    key = pred.index if pred["traj"].nunique() == 1 else pred["traj"]
    columns = {"mean_err": ("err", "mean"), "max_err": ("err", "max"), "t": ("t", "first")}
    columns.update({c: (c, "first") for c in ("U0", "W0", "K") if c in pred})
    return pred.groupby(key, sort=True).agg(**columns)


def select_prediction_models(summary: pd.DataFrame, study: str) -> pd.DataFrame:
    """The lowest-mean-error successful DDNN/PINN of each class variant of `study` (rows by variant)."""
    ok = successful(summary)
    ok = ok[(ok["study"] == study) & ok["class"].isin(CONTINUOUS)].assign(variant=plotting.variant)
    return ok.sort_values(["variant", "mean_err", "model"]).groupby("variant").head(1).reset_index(drop=True)


# --------------------------------------------------------------------------- predictions figure

def _lines(ax, times, values, **kwargs) -> None:
    """One line per row of `values` (n, len(times)) as a single collection."""
    if len(values):
        ax.add_collection(LineCollection(np.stack(np.broadcast_arrays(times, values), axis=-1), **kwargs))
        ax.autoscale_view()


def _trajectory_row(axes, pred: pd.DataFrame, errors: pd.DataFrame, chosen: np.ndarray, u_threshold) -> None:
    """U(t), W(t) and the error against U0 of every validation trajectory of a B/C study."""
    n_traj = len(errors)
    times = pred["t"].to_numpy()[: len(pred) // n_traj]
    grid = {c: pred[c].to_numpy().reshape(n_traj, -1) for c in ("U", "W", "U_pred", "W_pred")}
    drawn = chosen[:MAX_HIGHLIGHTED]
    others = np.setdiff1d(np.arange(n_traj), chosen)
    if len(others) > MAX_BACKGROUND:
        others = np.sort(np.random.default_rng(0).choice(others, MAX_BACKGROUND, replace=False))
    colours = TRAJECTORY_COLOURS[: len(drawn)] if len(drawn) <= len(TRAJECTORY_COLOURS) else sns.color_palette(
        "husl", len(drawn))
    alpha = float(np.clip(20 / max(len(others), 1), 0.1, 0.5))  # fainter the more there are
    for ax, var in zip(axes, "UW", strict=False):
        _lines(ax, times, grid[f"{var}_pred"][others], colors="0.6", lw=0.5, alpha=alpha)
        for colour, i in zip(colours, drawn, strict=True):
            ax.plot(times, grid[f"{var}_pred"][i], color=colour, lw=1.4)
            ax.plot(times, grid[var][i], color=colour, lw=1.1, ls="--")
        ax.set(xlabel="t", ylabel=var)
    error_ax = axes[3]
    error_ax.scatter(errors["U0"], errors["mean_err"], s=9, color="0.55", lw=0)
    error_ax.scatter(errors["U0"].iloc[chosen], errors["mean_err"].iloc[chosen], s=22, color=HIGH, lw=0)
    error_ax.scatter(errors["U0"].iloc[drawn], errors["mean_err"].iloc[drawn], s=22, color=list(colours), lw=0)
    if u_threshold is not None:
        error_ax.axvline(u_threshold, color="0.3", ls=":", lw=1)
    error_ax.set(xlabel="U0", ylabel="mean error of the trajectory")


def _point_row(axes, pred: pd.DataFrame, errors: pd.DataFrame, chosen: np.ndarray, train) -> None:
    """Problem A, one trajectory: U(t), W(t) of the solver and the network, the high-error points marked,
    the training points shown; the error against t."""
    high = pred.loc[errors.index[chosen]]
    for ax, var in zip(axes, "UW", strict=False):
        ax.plot(pred["t"], pred[var], color="k", lw=1.2, ls="--")
        ax.plot(pred["t"], pred[f"{var}_pred"], color="C0", lw=1.4)
        ax.scatter(high["t"], high[f"{var}_pred"], s=22, color=HIGH, zorder=3)
        if train is not None:
            ax.scatter(train["t"], train[var], marker="x", s=28, color="k", zorder=3)
        ax.set(xlabel="t", ylabel=var)
    axes[3].plot(pred["t"], pred["err"], color="0.45", lw=0.8)
    axes[3].scatter(high["t"], high["err"], s=22, color=HIGH, zorder=3)
    axes[3].set(xlabel="t", ylabel="pointwise error")


def _scatter(ax, pred: pd.DataFrame, high_rows: np.ndarray) -> None:
    """Network against solver, U and W, every validation point; the high-error ones ringed."""
    for var, colour in (("U", "C0"), ("W", "C1")):
        ax.scatter(pred[var], pred[f"{var}_pred"], s=5, color=colour, alpha=0.5, lw=0)
        ax.scatter(pred.loc[high_rows, var], pred.loc[high_rows, f"{var}_pred"], s=16, facecolors="none",
                   edgecolors=HIGH, lw=0.6)
    lo = float(np.nanmin(pred[["U", "W", "U_pred", "W_pred"]].to_numpy()))
    hi = float(np.nanmax(pred[["U", "W", "U_pred", "W_pred"]].to_numpy()))
    ax.plot([lo, hi], [lo, hi], color="0.3", lw=0.8)
    ax.set(xlabel="solver", ylabel="network")
    ax.set_title("network vs solver (U, W)", fontsize="medium")


def _legend_sections(per_point: bool, u_threshold) -> list:
    if per_point:
        lines = [Line2D([], [], color="k", ls="--", label="solver"), Line2D([], [], color="C0", label="network"),
                 Line2D([], [], ls="none", marker="o", color=HIGH, label="high-error point"),
                 Line2D([], [], ls="none", marker="x", color="k", label="training point")]
    else:
        colour = TRAJECTORY_COLOURS[0]
        lines = [Line2D([], [], color=colour, lw=1.4, label="network, high-error\ntrajectory (a colour each)"),
                 Line2D([], [], color=colour, lw=1.1, ls="--", label="its solver solution"),
                 Line2D([], [], color="0.65", lw=0.8, label="network, other\ntrajectories")]
    points = [Line2D([], [], ls="none", marker="o", ms=4, color=c, label=v) for v, c in (("U", "C0"), ("W", "C1"))]
    points.append(Line2D([], [], ls="none", marker="o", mfc="none", mec=HIGH, label="high-error"))
    if u_threshold is not None and not per_point:
        points.append(Line2D([], [], color="0.3", ls=":", label=f"U0 = a = {u_threshold:g}"))
    return [("U(t), W(t)", lines), ("network vs solver, error", points)]


def _rule_text(highlight: dict) -> str:
    if highlight["rule"] == "of_max":
        return f"a point at least {highlight['of_max']:.0%} of the largest error"
    return f"top {highlight['q']:.0%} by mean error"


def predictions(evaluated: list[tuple[str, str, pd.DataFrame]], path, title: str, highlight: dict,
                u_threshold: float | None = None, train: pd.DataFrame | None = None,
                empty_message: str = "no model to show") -> Path:
    """Predictions against the solver over a validation set, a block of panels per model: U(t), W(t),
    network vs solver, and the error of each trajectory against U0 (problem A, one trajectory: against t).

    `evaluated` holds (class variant, model name, `validation_predictions` frame); `highlight` is the
    config's `analysis.predictions` (rule, q, of_max), applied per model by `high_error`. High-error
    trajectories are drawn in colour with their solver solutions dashed, the others' predictions in grey;
    `u_threshold` (the model's a) is marked on the U0 axis; `train` (problem A) adds the training points.
    """
    if not evaluated:
        return plotting.message_figure(path, title, empty_message)
    fig, blocks = _blocks(len(evaluated))
    per_point = False
    for row, (label, model, pred) in zip(blocks, evaluated, strict=True):
        errors = unit_errors(pred)
        chosen = high_error(errors["mean_err"], errors["max_err"], **highlight)
        per_point = "U0" not in errors
        high_rows = errors.index[chosen] if per_point else np.flatnonzero(pred["traj"].isin(errors.index[chosen]))
        if per_point:
            _point_row(row, pred, errors, chosen, train)
        else:
            _trajectory_row(row, pred, errors, chosen, u_threshold)
        _scatter(row[2], pred, high_rows)
        plotting.log_axis(row[3], "y")
        unit = "points" if per_point else "trajectories"
        row[0].set_title(f"{label}: {model}", fontsize="medium", fontweight="bold", loc="left")
        row[1].set_title(f"mean error {pred['err'].mean():.2g}, max {pred['err'].max():.2g}", fontsize="medium")
        row[3].set_title(f"{len(chosen)} of {len(errors)} {unit} high-error", fontsize="medium")
    fig.suptitle(f"{title}\nhigh-error: {_rule_text(highlight)}", fontsize="medium",
                 x=(1 - plotting.LEGEND_W / fig.get_figwidth()) / 2)  # centred over the panels, clear of the legends
    plotting.margin_legends(fig, _legend_sections(per_point, u_threshold))
    return plotting.save_figure(fig, path)


def study_predictions(summary: pd.DataFrame, study: str, model_dirs: dict, val: pd.DataFrame, path,
                      highlight: dict, u_threshold: float | None = None, train: pd.DataFrame | None = None) -> Path:
    """`predictions` of the best DDNN/PINN of each class variant of `study` (`select_prediction_models`),
    loaded from `model_dirs` (model name -> folder with spec.json and weights.pt) and run on `val`."""
    from ..nets import load_model

    chosen = select_prediction_models(summary, study)
    evaluated = [(row.variant, row.model, validation_predictions(load_model(model_dirs[row.model]), val))
                 for row in chosen.itertuples()]
    n = val["traj"].nunique()
    what = f"{len(val)} points of one trajectory" if n == 1 else f"{n} trajectories"
    continuous = summary[summary["class"].isin(CONTINUOUS)]
    return predictions(evaluated, path, f"{study}: the best DDNN/PINN of each class variant vs the solver\n"
                       f"validation set, {what}", highlight, u_threshold, train,
                       plotting.failed_note(continuous, study, "DDNN or PINN"))


# --------------------------------------------------------------------------- iteration cost



