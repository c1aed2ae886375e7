"""Accuracy figures: error vs neurons by shape and class (Fig. 17, 21, 24-26, ...), ITNN rollouts
(Fig. 36) and error maps over (U0, W0) before and after resampling."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from ..plan.grid import SHAPES
from . import plotting
from .summary import successful


def _dodge(data: pd.DataFrame) -> pd.Series:
    """Neuron counts shifted by ±1.5 % per shape so that shapes do not overlap (as Fig. 26)."""
    centre = (len(SHAPES) - 1) / 2
    offset = data["shape"].map({s: i - centre for i, s in enumerate(SHAPES)}).astype(float)
    return data["neurons"] * (1 + 0.015 * offset.fillna(0.0))


def accuracy_vs_neurons(summary: pd.DataFrame, path) -> Path:
    """Mean error (log) vs neuron count, hue = shape, marker = class, a panel per study.

    Mirrors thesis Fig. 17, 21 and 24-26; points are dodged slightly by shape.
    """
    studies = sorted(summary["study"].unique())
    fig, axes = plotting.new_figure(len(studies))
    ok = successful(summary)
    for ax, study in zip(axes, studies, strict=False):
        data = ok[ok["study"] == study].assign(neurons_dodged=_dodge)
        n_failed = int((summary["study"] == study).sum()) - len(data)
        ax.set_title(study + (f" ({n_failed} failed)" if n_failed else ""), fontsize="medium")
        if data.empty:
            plotting.empty_panel(ax, "no successful models")
            continue
        sns.scatterplot(data=data, x="neurons_dodged", y="mean_err", hue="shape",
                        hue_order=[s for s in SHAPES if s in set(ok["shape"])],
                        palette=plotting.SHAPE_COLOURS, style="class", style_order=sorted(ok["class"].unique()),
                        alpha=0.8, ax=ax)
        ax.set(xlabel="neurons", ylabel="mean error")
        plotting.log_axis(ax, "y")
    if not studies:
        plotting.empty_panel(axes[0], "no models")
    plotting.figure_legend(fig, axes)
    return plotting.save_figure(fig, path)


def rollout(model, val_df: pd.DataFrame, problem: str, path, title: str, n_show: int = 6) -> Path:
    """An iterator network fed back from (U0, W0) against the solver, for the validation trajectories
    with the largest and smallest rollout errors (thesis Fig. 36): U and W vs time."""
    from ..nets import rollout as run_rollout
    from ..nets import trajectories

    validation = model.rollout_validation(val_df)
    err = validation.errors(model).mean(axis=0)
    order = np.argsort(err)
    shown = list(order[-(n_show // 2):][::-1]) + list(order[: n_show - n_show // 2])
    times, U, W, _ = trajectories(val_df, problem)
    pred = run_rollout(model, validation.u0, validation.w0, validation.K, validation.n_steps).numpy()
    t_net = model.iterator_dt * np.arange(validation.n_steps + 1)
    fig, axes = plotting.new_figure(2, plotting.WIDE_PANEL_W)
    colours = sns.color_palette("colorblind", len(shown))
    for ax, var, truth in ((axes[0], 0, U), (axes[1], 1, W)):
        for colour, i in zip(colours, shown, strict=True):
            ax.plot(times, truth[i], color=colour, lw=1)
            ax.plot(t_net, np.r_[truth[i, 0], pred[:, i, var]], "o--", color=colour, ms=3, lw=0.8)
        ax.set(xlabel="t", ylabel="UW"[var])
    handles = [Line2D([], [], color="k", lw=1, label="solver"),
               Line2D([], [], color="k", ls="--", marker="o", ms=3, lw=0.8, label="ITNN rollout")]
    handles += [Line2D([], [], color=c, lw=2, label=f"set {i}: error {err[i]:.2g}")
                for c, i in zip(colours, shown, strict=True)]
    plotting.margin_legend(fig, handles)
    fig.suptitle(title)
    return plotting.save_figure(fig, path)


def error_maps(maps: pd.DataFrame, centers: pd.DataFrame, path, title: str) -> Path:
    """Validation error per trajectory over (U0, W0) before and after resampling (thesis Fig. 28, 32, 33,
    35): one panel each, a shared logarithmic colour scale, and the chosen high-error points (from the
    training set) marked on the "before" panel. For problem C, K is not shown: points of every K overlap."""
    from matplotlib.colors import LogNorm

    fig, axes = plotting.new_figure(2)
    positive = maps["mean_err"][maps["mean_err"] > 0]
    norm = LogNorm(vmin=positive.min(), vmax=positive.max()) if len(positive) else None
    for ax, which in zip(axes, ("before", "after"), strict=True):
        data = maps[maps["model"] == which].sort_values("mean_err")  # the worst drawn on top
        colour = data["mean_err"].clip(lower=positive.min()) if norm else data["mean_err"]
        points = ax.scatter(data["U0"], data["W0"], c=colour, norm=norm, cmap="viridis", s=14)
        if which == "before" and len(centers):
            ax.scatter(centers["U0"], centers["W0"], marker="x", s=10, lw=0.6, color="crimson",
                       label=f"high-error points ({len(centers)})")
            ax.legend(loc="upper right", fontsize="x-small")
        label = "base model" if which == "before" else "retrained (+ high-error set)"
        ax.set(xlabel="U0", ylabel="W0", title=f"{label}: mean {data['mean_err'].mean():.2g}")
    axes[1].set(xlim=axes[0].get_xlim(), ylim=axes[0].get_ylim())  # the same plane in both panels
    fig.suptitle(title)
    legend_left = 1 - plotting.LEGEND_W / fig.get_figwidth()
    fig.tight_layout(rect=(0, 0, legend_left, 1))
    fig.colorbar(points, cax=fig.add_axes((legend_left + 0.02, 0.15, 0.015, 0.7)),
                 label="error per trajectory (eq. 3.3)")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=plotting.DPI)
    plt.close(fig)
    return Path(path)
