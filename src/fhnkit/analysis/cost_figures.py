"""Inference-cost figures: error vs inference time against the solver (Fig. 41), inference time vs
neurons (Fig. 39) and the compiled-over-eager speedup (Fig. 40)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns

from . import plotting
from .summary import successful


def _solver_line(ax, data: pd.DataFrame, colour) -> None:
    """Vertical line at the study's median solver time, labelled for the legend."""
    times = data["solver_time_s"].dropna()
    if times.empty:
        return
    median = float(times.median())
    ax.axvline(median, color=colour, ls="--", lw=1,
               label=f"Euler, {data['study'].iloc[0]}: {seconds_label(median)}")


def seconds_label(value: float) -> str:
    """A duration in seconds, short: 2.7 ms, 0.13 s, 12 s."""
    return f"{value * 1e3:.2g} ms" if value < 0.1 else f"{value:.2g} s"


def error_vs_inference(summary: pd.DataFrame, path) -> Path:
    """Mean error vs median inference time (log-log), hue = study, marker = class.

    Each study's median Euler-solver time (same number of outputs) is a
    dashed vertical line in the study's colour. Mirrors thesis Fig. 41.
    """
    fig, (ax,) = plotting.new_figure(1, plotting.WIDE_PANEL_W)
    ok = successful(summary)
    ok = ok[np.isfinite(ok["inference_time_s"]) & (ok["inference_time_s"] > 0)]
    studies = sorted(summary["study"].unique())
    colours = dict(zip(studies, sns.color_palette("colorblind", max(len(studies), 1)), strict=False))
    if ok.empty:
        plotting.empty_panel(ax, "no timed, successful models")
    else:
        sns.scatterplot(data=ok, x="inference_time_s", y="mean_err", hue="study",
                        hue_order=studies, palette=colours, style="class", alpha=0.8, ax=ax)
        for study in studies:
            _solver_line(ax, summary[summary["study"] == study], colours[study])
        ax.set(xlabel="inference time (s, median)", ylabel="mean error")
        plotting.log_axis(ax, "x")
        plotting.log_axis(ax, "y")
        ax.legend()
    plotting.figure_legend(fig, [ax])
    return plotting.save_figure(fig, path)


def _layer_lines(ax, data: pd.DataFrame, y: str, layer_counts) -> None:
    """One line (with markers) per layer count of `data[y]` against neurons."""
    colours = dict(zip(layer_counts, sns.color_palette("viridis", len(layer_counts)), strict=True))
    for n, group in data.groupby("layers", sort=True):
        group = group.sort_values("neurons")
        ax.plot(group["neurons"], group[y], marker="o", ms=4, color=colours[n],
                label=f"{n} layer{'s' if n > 1 else ''}")


def inference_vs_neurons(timings: pd.DataFrame, path) -> Path:
    """Median inference time of the reference work vs neuron count, one line per layer count, a panel
    per build (backend and precision), the Euler solver's median time on the same work as a dotted
    grey horizontal line. Mirrors thesis Fig. 39 (there: TensorRT only)."""
    builds = list(dict.fromkeys(timings["build"]))
    fig, axes = plotting.new_figure(len(builds))
    layer_counts = sorted(timings["layers"].unique())
    for ax, name in zip(axes, builds, strict=False):
        data = timings[timings["build"] == name]
        _layer_lines(ax, data, "inference_time_s", layer_counts)
        solver = float(data["solver_time_s"].median())
        ax.axhline(solver, color="grey", ls=":", lw=1.5, label=f"Euler solver: {solver:.2g} s")
        ax.set(xlabel="neurons", ylabel="inference time (s, median)",
               title=f"{name} ({data['device'].iloc[0]})")
        ax.set_ylim(bottom=0)
        ax.legend()
    if not builds:
        plotting.empty_panel(axes[0], "no timings")
    n_sets = int(timings["n_sets"].iloc[0]) if len(timings) else 0
    fig.suptitle(f"Inference time of untrained networks, {n_sets:,} parameter sets", fontsize="medium")
    plotting.figure_legend(fig, axes)
    return plotting.save_figure(fig, path)


def compile_speedup(timings: pd.DataFrame, path, labels: dict[str, str] | None = None) -> Path:
    """Eager-torch time over compiled time vs neuron count, one line per layer count, a panel per
    compiled build, a grey line at 1 (no gain). `labels` titles the panels by build (e.g. "ONNX
    Runtime over eager PyTorch (CPU)"). Mirrors thesis Fig. 40 (TensorRT over PyTorch)."""
    builds = [b for b in dict.fromkeys(timings["build"]) if b != "eager-fp32"]
    fig, axes = plotting.new_figure(len(builds))
    layer_counts = sorted(timings["layers"].unique())
    for ax, name in zip(axes, builds, strict=False):
        _layer_lines(ax, timings[timings["build"] == name], "compile_speedup", layer_counts)
        ax.axhline(1.0, color="grey", ls=":", lw=1.5, label="no speedup")
        ax.set(xlabel="neurons", ylabel="speedup over eager (median times)",
               title=(labels or {}).get(name, f"{name} over eager"))
        ax.legend()
    if not builds:
        plotting.empty_panel(axes[0], "only eager torch ran here:\nno compiled backend to compare")
    plotting.figure_legend(fig, axes)
    return plotting.save_figure(fig, path)
