"""Figures of the analysis stage (SPEC.md section 7), drawn with seaborn/matplotlib.

Each public function writes one PNG at `DPI` dots per inch and returns its
path. Figure sizes are fixed by the number of panels (no tight bounding box):
panels of width w sit in rows of at most `MAX_COLS`, plus a legend column of
`LEGEND_W` inches on the right (see `figure_size`).
Errors are the dimensionless validation error of eq. 3.3, times are seconds.
Failed models (NaN errors) are left out of the plots and counted in titles.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

from fhnkit.analysis.stats import successful  # noqa: E402

DPI = 120
PANEL_W, PANEL_H, LEGEND_W = 4.0, 3.5, 2.2
WIDE_PANEL_W = 6.0
MAX_COLS = 3
SHAPES = ["rectangle", "funnel", "bottleneck", "bowtie", "diamond", "other"]
# line styles of loss terms: distinct for up to eight terms (then repeated)
LINE_STYLES = ["-", "--", ":", "-.", (0, (3, 1, 1, 1, 1, 1)), (0, (1, 4)), (0, (8, 2, 1, 2, 1, 2)), (0, (4, 4))]
SHAPE_COLOURS = dict(zip(SHAPES, sns.color_palette("colorblind", len(SHAPES))))


def _grid(n_panels: int) -> tuple[int, int]:
    """(rows, columns) of the panel grid."""
    n = max(n_panels, 1)
    cols = min(n, MAX_COLS)
    return -(-n // cols), cols


def figure_size(n_panels: int, panel_w: float = PANEL_W) -> tuple[float, float]:
    """(width, height) in inches of a figure with `n_panels` panels and a legend column."""
    rows, cols = _grid(n_panels)
    return panel_w * cols + LEGEND_W, PANEL_H * rows


def _new_figure(n_panels: int, panel_w: float = PANEL_W):
    """Figure and its first `n_panels` axes (at least one); unused grid cells are hidden."""
    rows, cols = _grid(n_panels)
    fig, axes = plt.subplots(rows, cols, figsize=figure_size(n_panels, panel_w), squeeze=False)
    axes = axes.ravel()
    for ax in axes[max(n_panels, 1):]:
        ax.set_visible(False)
    return fig, axes[:max(n_panels, 1)]


def _save(fig, path) -> Path:
    """Reserve the legend column, save at DPI and close."""
    width = fig.get_figwidth()
    fig.tight_layout(rect=(0, 0, 1 - LEGEND_W / width, 1))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return Path(path)


def _empty(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _margin_legend(fig, handles, fontsize: str = "small") -> None:
    """A legend of `handles` in the figure's reserved right-hand column."""
    if handles:
        fig.legend(handles=handles, loc="center left", fontsize=fontsize, frameon=False,
                   bbox_to_anchor=(1 - LEGEND_W / fig.get_figwidth(), 0.5))


def message_figure(path, title: str, message: str) -> Path:
    """A figure of one panel that says `message` (why there is nothing to draw) under `title`."""
    fig, (ax,) = _new_figure(1)
    _empty(ax, message)
    fig.suptitle(title, fontsize="medium")
    return _save(fig, path)


def _margin_legends(fig, sections, fontsize: str = "x-small") -> None:
    """Titled legends, one per (title, handles) of `sections`, stacked from the top of the figure's
    reserved right-hand column; at a smaller font when they do not fit its height or width. Line-style
    handles are drawn long enough to tell the dash patterns apart."""
    left = 1 - LEGEND_W / fig.get_figwidth()
    renderer = fig.canvas.get_renderer()
    sizes = (fontsize, "xx-small")
    for size in sizes:
        top, right, legends = 0.98, 0.0, []
        for title, handles in sections:
            if handles:
                dashed = any(h.get_linestyle() not in ("-", "None", "none", "") for h in handles)
                legends.append(fig.legend(handles=handles, title=title, loc="upper left", fontsize=size,
                                          title_fontsize=size, alignment="left", frameon=False,
                                          handlelength=3.5 if dashed else 1.5, bbox_to_anchor=(left, top)))
                box = legends[-1].get_window_extent(renderer)
                top -= box.height / fig.bbox.height
                right = max(right, box.x1 / fig.bbox.width)
        if (top >= 0 and right <= 1) or size == sizes[-1]:  # fits, or is clipped at the smallest size
            return
        for legend in legends:
            legend.remove()


def _figure_legend(fig, axes) -> None:
    """Move the axes' legends (the last one's entries) to the figure's right margin."""
    handles = []
    for ax in axes:
        if ax.get_legend() is not None:
            handles = ax.get_legend_handles_labels()[0]
            ax.get_legend().remove()
    _margin_legend(fig, handles)


def _log_axis(ax, which: str) -> None:
    """Log scale on axis `which` ("x"/"y"), at least a decade wide; labelled at powers of ten, and also at
    2 and 5 times them (matplotlib's minor labels) when it spans less than two decades."""
    ax.set(**{f"{which}scale": "log"})
    lo, hi = getattr(ax, f"get_{which}lim")()
    if hi / lo < 10:
        centre = np.sqrt(lo * hi)
        lo, hi = centre / np.sqrt(10), centre * np.sqrt(10)
        ax.set(**{f"{which}lim": (lo, hi)})
    if hi / lo > 100:
        getattr(ax, f"{which}axis").set_minor_formatter(NullFormatter())


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
    fig, axes = _new_figure(len(studies))
    ok = successful(summary)
    for ax, study in zip(axes, studies):
        data = ok[ok["study"] == study].assign(neurons_dodged=_dodge)
        n_failed = int((summary["study"] == study).sum()) - len(data)
        ax.set_title(study + (f" ({n_failed} failed)" if n_failed else ""), fontsize="medium")
        if data.empty:
            _empty(ax, "no successful models")
            continue
        sns.scatterplot(data=data, x="neurons_dodged", y="mean_err", hue="shape",
                        hue_order=[s for s in SHAPES if s in set(ok["shape"])],
                        palette=SHAPE_COLOURS, style="class", style_order=sorted(ok["class"].unique()),
                        alpha=0.8, ax=ax)
        ax.set(xlabel="neurons", ylabel="mean error")
        _log_axis(ax, "y")
    if not studies:
        _empty(axes[0], "no models")
    _figure_legend(fig, axes)
    return _save(fig, path)


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
        _empty(ax, f"no {name} recorded")
        return
    ax.set(xlabel="iteration", ylabel=name)
    _log_axis(ax, "y")


def training_curves(histories: dict[str, pd.DataFrame], path, title: str,
                    empty_message: str = "no training history to show") -> Path:
    """Loss terms (left) and validation mean/max error (right) vs iteration, log y.

    `histories` maps a label to a history table (columns `iteration`,
    `loss_*`, `val_mean`, `val_max`); colour = model, line style = term; the
    legends (models, loss terms, validation errors) sit in the right margin.
    Without histories, one panel says `empty_message`. Mirrors thesis Fig. 19-20.
    """
    if not histories:
        return message_figure(path, title, empty_message)
    fig, (ax_loss, ax_val) = _new_figure(2)
    colours = dict(zip(histories, sns.color_palette("tab10", len(histories))))
    terms = sorted({c for h in histories.values() for c in _loss_columns(h)},
                   key=lambda c: (c != "loss_total", c))
    loss_styles = {c: LINE_STYLES[i % len(LINE_STYLES)] for i, c in enumerate(terms)}
    val_styles = {"val_mean": "-", "val_max": "--"}
    for label, history in histories.items():
        for column in _loss_columns(history):
            _plot_positive(ax_loss, history, column, color=colours[label], ls=loss_styles[column])
        for column in val_styles.keys() & set(history.columns):
            _plot_positive(ax_val, history, column, color=colours[label], ls=val_styles[column])
    _log_or_empty(ax_loss, "loss")
    _log_or_empty(ax_val, "validation error")
    fig.suptitle(title, fontsize="medium")
    _margin_legends(fig, [("model", [Line2D([], [], color=c, label=label) for label, c in colours.items()]),
                          ("loss term (left)", _style_handles(loss_styles)),
                          ("validation error (right)", _style_handles(val_styles))])
    return _save(fig, path)


def variant(summary: pd.DataFrame) -> pd.Series:
    """Class variant of each model: the class, "a" appended for the region terms (DDNNa, PINNa, as the
    thesis names them) and ", n windows" for a model split into n time windows, e.g. "pinna, 5 windows"."""
    label = summary["class"].astype(str) + np.where(summary["region"].eq(True), "a", "")
    windows = pd.to_numeric(summary["windows"], errors="coerce").fillna(1).astype(int)
    return label + np.where(windows > 1, ", " + windows.astype(str) + " windows", "")


def select_curve_models(summary: pd.DataFrame, study: str, per_class: int = 2) -> list[str]:
    """Names of the `per_class` lowest-mean-error successful models of each class variant in `study`."""
    ok = successful(summary)
    ok = ok[ok["study"] == study].assign(variant=variant).sort_values(["variant", "mean_err", "model"])
    return ok.groupby("variant").head(per_class)["model"].tolist()


def failed_note(summary: pd.DataFrame, study: str, what: str = "model") -> str:
    """Why a study has nothing to plot: every one of its `what` (rows of `summary`) failed, or none trained."""
    rows = summary[summary["study"] == study]
    n_failed = int(rows["status"].ne("ok").sum())
    if len(rows) and n_failed == len(rows):
        return (f"every {what} of {study} failed\n({n_failed} of {len(rows)} diverged):\n"
                "nothing to show;\nsee the table Failed models")
    return f"no successful {what} in {study}"


def study_training_curves(summary: pd.DataFrame, study: str, history_paths: dict[str, str],
                          path, per_class: int = 2) -> Path:
    """`training_curves` of the best `per_class` models of each class variant of `study`.

    `history_paths` maps model name to its history.parquet; only the chosen
    models' histories are read.
    """
    chosen = select_curve_models(summary, study, per_class)
    histories = {m: pd.read_parquet(history_paths[m]) for m in chosen}
    return training_curves(histories, path, f"{study}: training curves of the best models per class variant",
                           failed_note(summary, study))


def _solver_line(ax, data: pd.DataFrame, colour) -> None:
    """Vertical line at the study's median solver time, labelled for the legend."""
    times = data["solver_time_s"].dropna()
    if times.empty:
        return
    median = float(times.median())
    ax.axvline(median, color=colour, ls="--", lw=1,
               label=f"Euler, {data['study'].iloc[0]}: {_seconds(median)}")


def _seconds(value: float) -> str:
    """A duration in seconds, short: 2.7 ms, 0.13 s, 12 s."""
    return f"{value * 1e3:.2g} ms" if value < 0.1 else f"{value:.2g} s"


def error_vs_inference(summary: pd.DataFrame, path) -> Path:
    """Mean error vs median inference time (log-log), hue = study, marker = class.

    Each study's median Euler-solver time (same number of outputs) is a
    dashed vertical line in the study's colour. Mirrors thesis Fig. 41.
    """
    fig, (ax,) = _new_figure(1, WIDE_PANEL_W)
    ok = successful(summary)
    ok = ok[np.isfinite(ok["inference_time_s"]) & (ok["inference_time_s"] > 0)]
    studies = sorted(summary["study"].unique())
    colours = dict(zip(studies, sns.color_palette("colorblind", max(len(studies), 1))))
    if ok.empty:
        _empty(ax, "no timed, successful models")
    else:
        sns.scatterplot(data=ok, x="inference_time_s", y="mean_err", hue="study",
                        hue_order=studies, palette=colours, style="class", alpha=0.8, ax=ax)
        for study in studies:
            _solver_line(ax, summary[summary["study"] == study], colours[study])
        ax.set(xlabel="inference time (s, median)", ylabel="mean error")
        _log_axis(ax, "x")
        _log_axis(ax, "y")
        ax.legend()
    _figure_legend(fig, [ax])
    return _save(fig, path)


def rollout(model, val_df: pd.DataFrame, problem: str, path, title: str, n_show: int = 6) -> Path:
    """An iterator network fed back from (U0, W0) against the solver, for the validation trajectories
    with the largest and smallest rollout errors (thesis Fig. 36): U and W vs time."""
    from ..nets.itnn import RolloutValidation, trajectories
    from ..nets.itnn import rollout as run_rollout

    validation = RolloutValidation(val_df, problem, model.spec["itnn_dt"])
    err = validation.errors(model).mean(axis=0)
    order = np.argsort(err)
    shown = list(order[-(n_show // 2):][::-1]) + list(order[: n_show - n_show // 2])
    times, U, W, _ = trajectories(val_df, problem)
    pred = run_rollout(model, validation.u0, validation.w0, validation.K, validation.n_steps).numpy()
    t_net = model.spec["itnn_dt"] * np.arange(validation.n_steps + 1)
    fig, axes = _new_figure(2, WIDE_PANEL_W)
    colours = sns.color_palette("colorblind", len(shown))
    for ax, var, truth in ((axes[0], 0, U), (axes[1], 1, W)):
        for colour, i in zip(colours, shown):
            ax.plot(times, truth[i], color=colour, lw=1)
            ax.plot(t_net, np.r_[truth[i, 0], pred[:, i, var]], "o--", color=colour, ms=3, lw=0.8)
        ax.set(xlabel="t", ylabel="UW"[var])
    handles = [Line2D([], [], color="k", lw=1, label="solver"),
               Line2D([], [], color="k", ls="--", marker="o", ms=3, lw=0.8, label="ITNN rollout")]
    handles += [Line2D([], [], color=c, lw=2, label=f"set {i}: error {err[i]:.2g}") for c, i in zip(colours, shown)]
    _margin_legend(fig, handles)
    fig.suptitle(title)
    return _save(fig, path)


def error_maps(maps: pd.DataFrame, centers: pd.DataFrame, path, title: str) -> Path:
    """Validation error per trajectory over (U0, W0) before and after resampling (thesis Fig. 28, 32, 33,
    35): one panel each, a shared logarithmic colour scale, and the chosen high-error points (from the
    training set) marked on the "before" panel. For problem C, K is not shown: points of every K overlap."""
    from matplotlib.colors import LogNorm

    fig, axes = _new_figure(2)
    positive = maps["mean_err"][maps["mean_err"] > 0]
    norm = LogNorm(vmin=positive.min(), vmax=positive.max()) if len(positive) else None
    for ax, which in zip(axes, ("before", "after")):
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
    legend_left = 1 - LEGEND_W / fig.get_figwidth()
    fig.tight_layout(rect=(0, 0, legend_left, 1))
    fig.colorbar(points, cax=fig.add_axes((legend_left + 0.02, 0.15, 0.015, 0.7)),
                 label="error per trajectory (eq. 3.3)")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return Path(path)


# --------------------------------------------------------------------------- architecture cost sweep

def _layer_lines(ax, data: pd.DataFrame, y: str, layer_counts) -> None:
    """One line (with markers) per layer count of `data[y]` against neurons."""
    colours = dict(zip(layer_counts, sns.color_palette("viridis", len(layer_counts))))
    for n, group in data.groupby("layers", sort=True):
        group = group.sort_values("neurons")
        ax.plot(group["neurons"], group[y], marker="o", ms=4, color=colours[n],
                label=f"{n} layer{'s' if n > 1 else ''}")


def inference_vs_neurons(timings: pd.DataFrame, path) -> Path:
    """Median inference time of the reference work vs neuron count, one line per layer count, a panel
    per build (backend and precision), the Euler solver's median time on the same work as a dotted
    grey horizontal line. Mirrors thesis Fig. 39 (there: TensorRT only)."""
    builds = list(dict.fromkeys(timings["build"]))
    fig, axes = _new_figure(len(builds))
    layer_counts = sorted(timings["layers"].unique())
    for ax, name in zip(axes, builds):
        data = timings[timings["build"] == name]
        _layer_lines(ax, data, "inference_time_s", layer_counts)
        solver = float(data["solver_time_s"].median())
        ax.axhline(solver, color="grey", ls=":", lw=1.5, label=f"Euler solver: {solver:.2g} s")
        ax.set(xlabel="neurons", ylabel="inference time (s, median)",
               title=f"{name} ({data['device'].iloc[0]})")
        ax.set_ylim(bottom=0)
        ax.legend()
    if not builds:
        _empty(axes[0], "no timings")
    n_sets = int(timings["n_sets"].iloc[0]) if len(timings) else 0
    fig.suptitle(f"Inference time of untrained networks, {n_sets:,} parameter sets", fontsize="medium")
    _figure_legend(fig, axes)
    return _save(fig, path)


def compile_speedup(timings: pd.DataFrame, path, labels: dict[str, str] | None = None) -> Path:
    """Eager-torch time over compiled time vs neuron count, one line per layer count, a panel per
    compiled build, a grey line at 1 (no gain). `labels` titles the panels by build (e.g. "ONNX
    Runtime over eager PyTorch (CPU)"). Mirrors thesis Fig. 40 (TensorRT over PyTorch)."""
    builds = [b for b in dict.fromkeys(timings["build"]) if b != "eager-fp32"]
    fig, axes = _new_figure(len(builds))
    layer_counts = sorted(timings["layers"].unique())
    for ax, name in zip(axes, builds):
        _layer_lines(ax, timings[timings["build"] == name], "compile_speedup", layer_counts)
        ax.axhline(1.0, color="grey", ls=":", lw=1.5, label="no speedup")
        ax.set(xlabel="neurons", ylabel="speedup over eager (median times)",
               title=(labels or {}).get(name, f"{name} over eager"))
        ax.legend()
    if not builds:
        _empty(axes[0], "only eager torch ran here:\nno compiled backend to compare")
    _figure_legend(fig, axes)
    return _save(fig, path)
