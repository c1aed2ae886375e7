"""Figures of the training stage: loss and validation curves (Fig. 19-20) and iteration cost (Fig. 23)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from . import plotting
from .summary import successful


def _loss_columns(history: pd.DataFrame) -> list[str]:
    return [c for c in history.columns if c.startswith("loss_")]


def _plot_positive(ax, history: pd.DataFrame, column: str, **kwargs) -> None:
    """Plot `column` vs iteration, skipping NaN and non-positive values (log axis)."""
    data = history[["iteration", column]].dropna()
    data = data[data[column] > 0]
    if len(data):
        ax.plot(data["iteration"], data[column], **kwargs)


def _style_handles(styles: dict) -> list[Line2D]:
    return [Line2D([], [], color="0.3", ls=ls, label=col) for col, ls in styles.items()]


def _log_or_empty(ax, name: str) -> None:
    """Log y axis labelled `name`, or an empty note when nothing was plotted."""
    if not ax.lines:
        plotting.empty_panel(ax, f"no {name} recorded")
        return
    ax.set(xlabel="iteration", ylabel=name)
    plotting.log_axis(ax, "y")


def training_curves(histories: dict[str, pd.DataFrame], path, title: str,
                    empty_message: str = "no training history to show") -> Path:
    """Loss terms (left) and validation mean/max error (right) vs iteration, log y.

    `histories` maps a label to a history table (columns `iteration`,
    `loss_*`, `val_mean`, `val_max`); colour = model, line style = term; the
    legends (models, loss terms, validation errors) sit in the right margin.
    Without histories, one panel says `empty_message`. Mirrors thesis Fig. 19-20.
    """
    if not histories:
        return plotting.message_figure(path, title, empty_message)
    fig, (ax_loss, ax_val) = plotting.new_figure(2)
    colours = dict(zip(histories, sns.color_palette("tab10", len(histories)), strict=True))
    terms = sorted({c for h in histories.values() for c in _loss_columns(h)},
                   key=lambda c: (c != "loss_total", c))
    loss_styles = {c: plotting.LINE_STYLES[i % len(plotting.LINE_STYLES)] for i, c in enumerate(terms)}
    val_styles = {"val_mean": "-", "val_max": "--"}
    for label, history in histories.items():
        for column in _loss_columns(history):
            _plot_positive(ax_loss, history, column, color=colours[label], ls=loss_styles[column])
        for column in val_styles.keys() & set(history.columns):
            _plot_positive(ax_val, history, column, color=colours[label], ls=val_styles[column])
    _log_or_empty(ax_loss, "loss")
    _log_or_empty(ax_val, "validation error")
    fig.suptitle(title, fontsize="medium")
    plotting.margin_legends(fig, [("model", [Line2D([], [], color=c, label=label) for label, c in colours.items()]),
                          ("loss term (left)", _style_handles(loss_styles)),
                          ("validation error (right)", _style_handles(val_styles))])
    return plotting.save_figure(fig, path)


def select_curve_models(summary: pd.DataFrame, study: str, per_class: int = 2) -> list[str]:
    """Names of the `per_class` lowest-mean-error successful models of each class variant in `study`."""
    ok = successful(summary)
    ok = ok[ok["study"] == study].assign(variant=plotting.variant).sort_values(["variant", "mean_err", "model"])
    return ok.groupby("variant").head(per_class)["model"].tolist()


def study_training_curves(summary: pd.DataFrame, study: str, history_paths: dict[str, str],
                          path, per_class: int = 2) -> Path:
    """`training_curves` of the best `per_class` models of each class variant of `study`.

    `history_paths` maps model name to its history.parquet; only the chosen
    models' histories are read.
    """
    chosen = select_curve_models(summary, study, per_class)
    histories = {m: pd.read_parquet(history_paths[m]) for m in chosen}
    return training_curves(histories, path, f"{study}: training curves of the best models per class variant",
                           plotting.failed_note(summary, study))


def _cost_ratios(ax, data: pd.DataFrame, order: list[str]) -> None:
    """Above each variant, its median time over the plain DDNN's (the thesis's "~10x for a PINN")."""
    medians = data.groupby("variant")["iter_time_s"].median()
    if "ddnn" not in medians:
        return
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo, max(hi, 2 * data["iter_time_s"].max()))  # room for the labels above the points
    for x, name in enumerate(order):
        ax.text(x, 0.97, f"\u00d7{medians[name] / medians['ddnn']:.2g}", transform=ax.get_xaxis_transform(),
                ha="center", va="top", fontsize="small", color="0.25")


def iteration_cost(summary: pd.DataFrame, path) -> Path:
    """Seconds per training iteration (each model's median; loss evaluation, backpropagation and weight
    update, validation excluded) by class variant, log y, a panel per study: a box per variant and a point
    per model, coloured by batch size. Failed models have no time and are counted in the titles.
    Mirrors thesis Fig. 23."""
    studies = sorted(summary["study"].unique())
    fig, axes = plotting.new_figure(len(studies))
    timed = summary["status"].eq("ok") & (pd.to_numeric(summary["iter_time_s"]) > 0)
    ok = summary[timed].assign(variant=plotting.variant)
    sizes = sorted(ok["batch_size"].unique())
    palette = dict(zip(sizes, sns.color_palette("viridis", len(sizes)), strict=True))
    for ax, study in zip(axes, studies, strict=False):
        data = ok[ok["study"] == study]
        n_failed = int((summary["study"] == study).sum()) - len(data)
        ax.set_title(study + (f" ({n_failed} failed)" if n_failed else ""), fontsize="medium")
        if data.empty:
            plotting.empty_panel(ax, plotting.failed_note(summary, study))
            continue
        data = data.assign(variant=data["variant"].str.replace(", ", "\n"))  # "pinn\n5 windows" as a tick label
        order = sorted(data["variant"].unique())
        sns.stripplot(data=data, x="variant", y="iter_time_s", order=order, hue="batch_size", hue_order=sizes,
                      palette=palette, jitter=0.15, size=5, alpha=0.85, legend=False, log_scale=True, ax=ax,
                      zorder=3)
        ax.boxplot([data.loc[data["variant"] == v, "iter_time_s"] for v in order], positions=range(len(order)),
                   widths=0.6, showfliers=False, manage_ticks=False, patch_artist=True,
                   boxprops={"facecolor": "0.92", "edgecolor": "0.45"}, medianprops={"color": "0.3"},
                   whiskerprops={"color": "0.45"}, capprops={"color": "0.45"})
        ax.set(xlabel="", ylabel="s per training iteration")
        plotting.log_axis(ax, "y")
        _cost_ratios(ax, data, order)
        if len(order) > 5:
            plt.setp(ax.get_xticklabels(), rotation=30, ha="right", rotation_mode="anchor")
    if not studies:
        plotting.empty_panel(axes[0], "no models")
    plotting.margin_legends(fig, [("batch size", [Line2D([], [], ls="none", marker="o", color=c, label=str(b))
                                          for b, c in palette.items()])])
    return plotting.save_figure(fig, path)
