"""Eq. 4.3 on the architecture cost sweep (thesis 4.4, Tables 12-13): what explains inference cost.

The sweep's timings (`fhnkit.inference.cost_sweep`) are explained by neuron and layer count,
`inference_time_s ~ neurons*C(layers)` and `compile_speedup ~ neurons*C(layers)`, type II ANOVA
per build. Pure functions on the timing table, plus its report pages.
"""

from __future__ import annotations

import warnings

import pandas as pd
import statsmodels.formula.api as smf

from .stats import ANOVA_COLUMNS, ANOVA_TYPES, anova_table, is_estimable, not_estimable_table
from .tables import write_table

TIME_FORMULA = "inference_time_s ~ neurons*C(layers)"
SPEEDUP_FORMULA = "compile_speedup ~ neurons*C(layers)"
ANOVA_TYPE = 2
BACKEND_NAMES = {"tensorrt": "TensorRT", "onnxruntime": "ONNX Runtime", "torch_compile": "torch.compile",
                 "eager": "eager PyTorch"}


def compiled_builds(timings: pd.DataFrame) -> list[str]:
    """Builds other than the eager fp32 reference, in table order."""
    return [b for b in dict.fromkeys(timings["build"]) if b != "eager-fp32"]


def _coefficients(data: pd.DataFrame, formula: str, terms) -> dict[str, str]:
    """OLS coefficients of `formula` per ANOVA term, as text (a categorical term has one per level)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        params = smf.ols(formula, data=data).fit().params
    out = {}
    for term in terms:
        parts = term.split(":")
        names = [n for n in params.index
                 if len(n.split(":")) == len(parts) and all(p in q for p, q in zip(parts, n.split(":"), strict=True))]
        out[term] = "; ".join(f"{n[len(term):]}={params[n]:.4g}" if n != term else f"{params[n]:.4g}"
                              for n in names)
    return out


def _fit(data: pd.DataFrame, formula: str) -> pd.DataFrame:
    table = anova_table(data, formula, ANOVA_TYPE)
    table["coef"] = ""
    if is_estimable(table):
        coefs = _coefficients(data, formula, [t for t in table["term"] if t != "Residual"])
        table["coef"] = table["term"].map(coefs).fillna("")
    return table


def cost_anova(timings: pd.DataFrame, response: str, skipped: dict | None = None) -> pd.DataFrame:
    """Eq. 4.3 per build, type II: `inference_time_s ~ neurons*C(layers)` (response "time", every build,
    Table 12) or `compile_speedup ~ neurons*C(layers)` (response "speedup", every build but the eager
    fp32 reference, Table 13). Columns: build, then `ANOVA_COLUMNS`, then coef (the OLS coefficients
    of each term; "C(layers)[T.k]" relative to the smallest layer count). When only eager torch ran,
    the speedup table is one "not estimable" row that says so (a speedup of 1 by definition)."""
    formula = {"time": TIME_FORMULA, "speedup": SPEEDUP_FORMULA}[response]
    builds = list(dict.fromkeys(timings["build"])) if response == "time" else compiled_builds(timings)
    tables = [_fit(timings[timings["build"] == b], formula).assign(build=b) for b in builds]
    if not tables:
        why = "; ".join(f"{k}: {v}" for k, v in (skipped or {}).items())
        reason = ("no compiled backend ran here, only the eager torch reference, so its speedup over eager "
                  "is 1 by definition" + (f" (skipped: {why})" if why else ""))
        if timings.empty:
            reason = "no timings"
        tables = [not_estimable_table(reason, ANOVA_TYPES[ANOVA_TYPE], formula, 0).assign(build="", coef="")]
    out = pd.concat(tables, ignore_index=True)[["build"] + ANOVA_COLUMNS + ["coef"]]
    out.attrs.update(anova_type=ANOVA_TYPE, formula=formula)
    return out


def backend_label(build: str, device: str) -> str:
    """'ONNX Runtime over eager PyTorch (CPU)', 'TensorRT fp16 over PyTorch (GPU)', ..."""
    backend, precision = build.rsplit("-", 1)
    name = BACKEND_NAMES.get(backend, backend) + (" fp16" if precision == "fp16" else "")
    if device == "cuda":
        return f"{name} over PyTorch (GPU)"
    return f"{name} over eager PyTorch ({device.upper()})"


def cost_sweep_tables(timings: pd.DataFrame, meta: dict, sweep: dict, bench: dict):
    """The sweep's two eq. 4.3 ANOVAs as {"time"|"speedup": (table, title, caption)} for
    `fhnkit.analysis.tables.write_table`, and the speedup figure's panel labels {build: label}."""
    device = str(timings["device"].iloc[0]) if len(timings) else meta.get("device", "cpu")
    labels = {b: backend_label(b, device) for b in compiled_builds(timings)}
    setup = (f"Untrained {sweep['activation']} networks, widths {sweep['widths']} x layers {sweep['layers']} "
             f"(neurons = width x layers), problem {sweep['problem']} inputs, {sweep['n_sets']:,} parameter sets x "
             f"{bench['n_points']} points on {device}; times are medians in seconds.")
    skipped = meta.get("skipped") or {}
    time_table = cost_anova(timings, "time", skipped)
    speedup_table = cost_anova(timings, "speedup", skipped)
    speedup_note = ("; ".join(labels.values()) if labels else
                    "only eager torch ran here, so there is no compiled-over-eager speedup to explain")
    return {
        "time": (time_table, "ANOVA of inference time on neurons and layers (eq. 4.3, thesis Table 12)",
                 f"Type II ANOVA of OLS fits of {TIME_FORMULA}, one per build (backend-precision). {setup} "
                 "coef: the OLS coefficients of each term (C(layers)[T.k] relative to the fewest layers)."),
        "speedup": (speedup_table, "ANOVA of the compiled-over-eager speedup on neurons and layers "
                    "(eq. 4.3, thesis Table 13)",
                    f"Type II ANOVA of OLS fits of {SPEEDUP_FORMULA}, compile_speedup = eager fp32 time / "
                    f"compiled time ({speedup_note}); the thesis's response was TensorRT (tensor cores) over "
                    f"PyTorch on a GPU. {setup}"),
    }, labels


def write_timings_page(timings: pd.DataFrame, meta: dict, csv_path, html_path) -> None:
    """The sweep's timing table as CSV and as its report page (what was not built here in the caption)."""
    skipped = "; ".join(f"{k}: {v}" for k, v in (meta.get("skipped") or {}).items())
    caption = ("One row per untrained network (width x layers) and build (backend-precision). Times in seconds "
               "for the whole work, median over repeats (*_iqr_s: interquartile range); compile_speedup = eager "
               "fp32 time / the build's time; speedup = Euler solver time / the build's time."
               + (f" Not built here: {skipped}." if skipped else ""))
    write_table(timings, csv_path, html_path, "Architecture cost sweep: timings (thesis 4.4)", caption)
