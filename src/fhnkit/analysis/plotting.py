"""Layout shared by every figure of the report: sizes, the legend column, saving, empty panels.

Each figure function writes one PNG at `DPI` dots per inch. Figure sizes are fixed by the
number of panels (no tight bounding box): panels of width w sit in rows of at most `MAX_COLS`,
plus a legend column of `LEGEND_W` inches on the right (see `figure_size`). Failed models
(NaN errors) are left out of the plots and counted in titles (`failed_note`).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import NullFormatter

from ..plan.grid import SHAPES

DPI = 120
PANEL_W, PANEL_H, LEGEND_W = 4.0, 3.5, 2.2
WIDE_PANEL_W = 6.0
MAX_COLS = 3
# line styles of loss terms: distinct for up to eight terms (then repeated)
LINE_STYLES = ["-", "--", ":", "-.", (0, (3, 1, 1, 1, 1, 1)), (0, (1, 4)), (0, (8, 2, 1, 2, 1, 2)), (0, (4, 4))]
SHAPE_COLOURS = dict(zip(SHAPES, sns.color_palette("colorblind", len(SHAPES)), strict=True))


def _grid(n_panels: int) -> tuple[int, int]:
    """(rows, columns) of the panel grid."""
    n = max(n_panels, 1)
    cols = min(n, MAX_COLS)
    return -(-n // cols), cols


def figure_size(n_panels: int, panel_w: float = PANEL_W) -> tuple[float, float]:
    """(width, height) in inches of a figure with `n_panels` panels and a legend column."""
    rows, cols = _grid(n_panels)
    return panel_w * cols + LEGEND_W, PANEL_H * rows


def new_figure(n_panels: int, panel_w: float = PANEL_W):
    """Figure and its first `n_panels` axes (at least one); unused grid cells are hidden."""
    rows, cols = _grid(n_panels)
    fig, axes = plt.subplots(rows, cols, figsize=figure_size(n_panels, panel_w), squeeze=False)
    axes = axes.ravel()
    for ax in axes[max(n_panels, 1):]:
        ax.set_visible(False)
    return fig, axes[:max(n_panels, 1)]


def save_figure(fig, path) -> Path:
    """Reserve the legend column, save at DPI and close."""
    width = fig.get_figwidth()
    fig.tight_layout(rect=(0, 0, 1 - LEGEND_W / width, 1))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return Path(path)


def empty_panel(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def margin_legend(fig, handles, fontsize: str = "small") -> None:
    """A legend of `handles` in the figure's reserved right-hand column."""
    if handles:
        fig.legend(handles=handles, loc="center left", fontsize=fontsize, frameon=False,
                   bbox_to_anchor=(1 - LEGEND_W / fig.get_figwidth(), 0.5))


def message_figure(path, title: str, message: str) -> Path:
    """A figure of one panel that says `message` (why there is nothing to draw) under `title`."""
    fig, (ax,) = new_figure(1)
    empty_panel(ax, message)
    fig.suptitle(title, fontsize="medium")
    return save_figure(fig, path)


def margin_legends(fig, sections, fontsize: str = "x-small") -> None:
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


def figure_legend(fig, axes) -> None:
    """Move the axes' legends (the last one's entries) to the figure's right margin."""
    handles = []
    for ax in axes:
        if ax.get_legend() is not None:
            handles = ax.get_legend_handles_labels()[0]
            ax.get_legend().remove()
    margin_legend(fig, handles)


def log_axis(ax, which: str) -> None:
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


def variant(summary: pd.DataFrame) -> pd.Series:
    """Class variant of each model: the class, "a" appended for the region terms (DDNNa, PINNa, as the
    thesis names them) and ", n windows" for a model split into n time windows, e.g. "pinna, 5 windows"."""
    label = summary["class"].astype(str) + np.where(summary["region"].eq(True), "a", "")
    windows = pd.to_numeric(summary["windows"], errors="coerce").fillna(1).astype(int)
    return label + np.where(windows > 1, ", " + windows.astype(str) + " windows", "")


def failed_note(summary: pd.DataFrame, study: str, what: str = "model") -> str:
    """Why a study has nothing to plot: every one of its `what` (rows of `summary`) failed, or none trained."""
    rows = summary[summary["study"] == study]
    n_failed = int(rows["status"].ne("ok").sum())
    if len(rows) and n_failed == len(rows):
        return (f"every {what} of {study} failed\n({n_failed} of {len(rows)} diverged):\n"
                "nothing to show;\nsee the table Failed models")
    return f"no successful {what} in {study}"
