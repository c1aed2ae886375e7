"""The analysis tables as report pages: CSV plus a small standalone HTML page each.

`analysis_tables` names, titles and captions every table the analysis stage
writes; `write_table` and `write_config_page` render them for the Snakemake report.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
import pandas as pd

from .stats import pinn_vs_ddnn_ttest, shape_anova, shape_variance, technique_anova
from .summary import failed_models, time_domains

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.25em; }
p.caption { max-width: 60em; color: #444; }
div.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; overflow-wrap: anywhere; }
tr:nth-child(even) td { background: #fafafa; }
"""


def _numeric_css(df: pd.DataFrame) -> str:
    """Right-align the number columns (text columns, such as notes and formulas, stay left-aligned)."""
    return "".join(f"td:nth-child({i}), th:nth-child({i}) {{ text-align: right; }}\n"
                   for i, col in enumerate(df.columns, start=1) if pd.api.types.is_numeric_dtype(df[col]))


def _format_cell(value) -> str:
    if isinstance(value, (float, np.floating)):
        return "—" if np.isnan(value) else f"{value:.4g}"
    return str(value)


def write_table(df: pd.DataFrame, csv_path, html_path, title: str, caption: str, html_columns=None) -> None:
    """Write `df` as CSV and as a small standalone, styled HTML page.

    The HTML page has `title` as heading, `caption` as a paragraph above the
    table and a link that downloads the CSV itself (embedded as a data URI, so
    that it works inside the self-contained report); floats are shown with 4
    significant digits, NaN as "—". The page shows `html_columns` (default:
    all); the CSV holds every column.
    """
    for path in (csv_path, html_path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    text = df.to_csv(index=False)
    Path(csv_path).write_text(text, encoding="utf-8")
    encoded = base64.b64encode(text.encode("utf-8")).decode("ascii")
    download = (f"<p class='download'><a download='{html.escape(Path(csv_path).name)}' "
                f"href='data:text/csv;charset=utf-8;base64,{encoded}'>Download as CSV</a> "
                f"({len(df)} rows; also <code>{html.escape(str(csv_path))}</code>)</p>")
    shown = df if html_columns is None else df[list(html_columns)]
    table = shown.to_html(index=False, formatters={c: _format_cell for c in shown.columns},
                          na_rep="—", border=0, escape=True)
    if df.empty:
        table += "\n<p><em>No rows: nothing in the results fits this analysis.</em></p>"
    page = (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{_CSS}{_numeric_css(shown)}</style></head>\n<body>\n"
            f"<h1>{html.escape(title)}</h1>\n<p class='caption'>{html.escape(caption)}</p>\n{download}\n"
            f"<div class='scroll'>{table}</div>\n</body></html>\n")
    Path(html_path).write_text(page, encoding="utf-8")


def write_config_page(config: dict, path, config_id: str) -> None:
    """The validated config (defaults filled in) as YAML in a standalone HTML page."""
    import yaml

    text = yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=100)
    title = f"Configuration of this run (hash {config_id})"
    page = (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS} pre {{font-size: 12px;}}</style></head>\n<body>\n<h1>{html.escape(title)}</h1>\n"
            "<p class='caption'>Every key of the run after validation, defaults included, except the settings "
            "that only say where work runs (data_solver.backend: each data set's metadata records where it was "
            "computed); workflow/schemas/config.schema.yaml describes each key and its allowed range.</p>\n"
            f"<pre>{html.escape(text)}</pre>\n</body></html>\n")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(page, encoding="utf-8")


def analysis_tables(summary: pd.DataFrame, neuron_threshold: int = 120,
                    ttest_studies: list[str] | None = None) -> dict[str, tuple[pd.DataFrame, str, str]]:
    """The analysis stage's tables as {name: (table, title, caption)} for `write_table`."""
    anova = shape_anova(summary, neuron_threshold)
    return {
        "shape_anova": (
            anova, "ANOVA of mean error on shape and neuron count (eq. 4.2)",
            f"Type {'I' * anova.attrs['anova_type']} ANOVA of OLS fits of mean_err ~ C(shape)*neurons, "
            f"per study and class, for models below and at or above {neuron_threshold} neurons "
            "(thesis Tables 5-6). Successful models only; the formula column shows where terms "
            "that could not be estimated were dropped, the note column why."),
        "ttest_pinn_ddnn": (
            pinn_vs_ddnn_ttest(summary, ttest_studies), "PINN vs DDNN: two-sample t-test of mean error",
            "Welch two-sample t-test (unequal variances) of mean validation error, DDNN vs PINN, "
            "per study with both classes (thesis Fig. 17 and 21); t > 0 when DDNN error is higher. "
            "The *_log10 columns repeat the test on log10(mean error)."),
        "technique_anova": (
            technique_anova(summary), "ANOVA of accuracy and iteration cost on the training techniques (eq. 4.1)",
            "Type II ANOVA of OLS fits of mean_err (thesis Table 2) and iter_time_s (Table 3) on "
            "C(iccs)*bs + C(pinn)*bs: iccs = extra region terms on (DDNNa/PINNa), pinn = physics-informed "
            "class, bs = data batch size; per study, keeping the factors that vary in it. Studies where "
            "neither the region terms nor the class vary have no rows."),
        "time_domains": (
            time_domains(summary), "Errors on each study's time window, and marched to the horizon",
            "median_err: median over models of the mean validation error (eq. 3.3) on the study's own time "
            "window; median_march_err: for studies with marching, the same network reused window after "
            "window (its state at the window's end is the next initial state) up to the marching horizon "
            "(thesis 3.4.1 and Table 7). Compare a small-window study's march error with the error of "
            "the study trained on the whole domain. windows > 1: one network per window, trained together "
            "with the continuity term (eq. 3.20); median_jump_err: median over those models of the mean "
            "|dU| + |dW| between neighbouring windows' networks at the interfaces."),
        "failed_models": (
            failed_models(summary), "Models whose training failed",
            "Models whose loss became NaN or infinite: training stopped at the iteration shown and the "
            "model is left out of every other table and figure. The error column says which loss term "
            "diverged; lowering training.lr (or a term's weight) is the usual remedy."),
        "shape_variance": (
            shape_variance(summary, neuron_threshold), "Intra- vs extra-group variance of mean error by shape",
            "intra_var: pooled variance of mean error within a shape (models differing in widths "
            "and activation sequence); extra_var: variance of the shape means (between shapes); "
            f"ratio = extra/intra. Subsets split at {neuron_threshold} neurons as in thesis §4.2."),
    }
