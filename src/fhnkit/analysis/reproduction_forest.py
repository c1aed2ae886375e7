"""The reproduction page's picture: one forest plot of every finding's effect, by default and under each ablation.

Each row of the reproduction table with an estimated effect is one line: its effect (a ratio, on a log
axis) with its 95% interval, coloured by verdict, the thesis's own size of the effect marked where
the thesis gives one, and the line of no effect (1). A finding's rows under the ablations follow its
default row, so a reader sees at a glance which factor moves an effect across the line.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .reproduction import DEFAULT, FINDINGS, NOT_REPRODUCED, NOT_TESTED, REPRODUCED, UNDERPOWERED

VERDICT_COLOURS = {REPRODUCED: "#1b9e77", NOT_REPRODUCED: "#d95f02", UNDERPOWERED: "#7570b3",
                   NOT_TESTED: "#999999"}
_EFFECT = {f.key: f.effect for f in FINDINGS}


def _label(row) -> str:
    variant = "default" if row["ablation"] == DEFAULT else f"{row['factor']}: {row['changes']}"
    return f"{_EFFECT.get(row['key'], row['key'])} ({row['study']})\n{variant}"


def forest_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows a forest plot shows: those with a positive, finite effect (a ratio), in the table's order."""
    effect = pd.to_numeric(table["effect"], errors="coerce")
    return table[np.isfinite(effect) & (effect > 0)]


def forest_plot(table: pd.DataFrame, path) -> None:
    """Write the forest plot of `table` (`reproduction_table`'s) to `path` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    rows = forest_rows(table).reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(9, 1.6 + 0.42 * max(len(rows), 1)))
    if rows.empty:
        ax.text(0.5, 0.5, "no finding of this run has an estimated effect to show", ha="center", va="center")
        ax.set_axis_off()
    else:
        y = np.arange(len(rows))[::-1]
        for yi, (_, row) in zip(y, rows.iterrows(), strict=True):
            colour = VERDICT_COLOURS.get(row["verdict"], "black")
            lo, hi = row["ci_low"], row["ci_high"]
            if np.isfinite(lo) and np.isfinite(hi) and lo > 0:
                ax.plot([lo, hi], [yi, yi], color=colour, lw=2)
            marker = "o" if row["ablation"] == DEFAULT else "s"
            ax.plot(row["effect"], yi, marker, color=colour, ms=7)
            thesis = row["thesis_effect"]
            if thesis is not None and np.isfinite(thesis) and thesis > 0:
                ax.plot(thesis, yi, "D", mfc="none", mec="black", ms=8)
        ax.axvline(1.0, color="grey", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_yticks(y, [_label(r) for _, r in rows.iterrows()], fontsize=7)
        ax.set_xlabel("effect (ratio; 1: no difference), with its 95% interval")
        handles = [Line2D([], [], color=c, marker="o", lw=2, label=v) for v, c in VERDICT_COLOURS.items()
                   if v in set(rows["verdict"])]
        handles += [Line2D([], [], color="black", marker="D", mfc="none", ls="", label="the thesis's effect"),
                    Line2D([], [], color="grey", marker="s", ls="", label="under an ablation")]
        ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax.set_title("What this run reproduces: each finding's effect, by default and under each ablation",
                     fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
