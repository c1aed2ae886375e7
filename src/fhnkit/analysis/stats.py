"""Statistics of a grid of trained models (SPEC.md section 7): ANOVAs, t-tests, variance by shape.

Pure functions: they take the summary table (`fhnkit.analysis.summary`) and
return tables; nothing here draws or depends on Snakemake.

Units: errors (`mean_err`, `max_err`) are the validation error of eq. 3.3,
|U_pred - U_true| + |W_pred - W_true|, dimensionless; every `*_time_s`
column is in seconds (wall clock); `speedup` is dimensionless.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from statsmodels.stats.anova import anova_lm
from statsmodels.stats.weightstats import ttest_ind

from .summary import successful

TTEST_COLUMNS = [
    "study", "n_ddnn", "n_pinn", "mean_ddnn", "mean_pinn", "median_ddnn", "median_pinn",
    "t", "p_value", "df", "t_log10", "p_value_log10", "df_log10", "note",
]
ANOVA_COLUMNS = ["term", "sum_sq", "df", "F", "PR(>F)", "note", "anova_type", "formula", "n_obs"]
NOT_ESTIMABLE = "not estimable"
ANOVA_TYPES = {1: 1, 2: 2, 3: 3, "I": 1, "II": 2, "III": 3}


def _formula_columns(df: pd.DataFrame, formula: str) -> list[str]:
    """Columns of `df` named in `formula`, in the order of `df`."""
    return [c for c in df.columns if re.search(rf"(?<![\w.]){re.escape(str(c))}(?![\w.])", formula)]


def _precheck(data: pd.DataFrame, formula: str) -> str | None:
    """Reason why `formula` cannot be fitted on complete-case `data`, or None."""
    response = formula.split("~")[0].strip()
    if len(data) < 3:
        return f"too few observations (n={len(data)})"
    for factor in re.findall(r"C\(\s*([\w.]+)", formula):
        if factor in data and data[factor].nunique() < 2:
            return f"factor '{factor}' has a single level ({data[factor].iloc[0]})"
    y = data[response].to_numpy(dtype=float)
    if np.ptp(y) <= 1e-12 * np.abs(y).max():
        return f"response '{response}' is constant"
    return None


def _postcheck(fit) -> str | None:
    """Reason why a fitted OLS model gives no meaningful ANOVA, or None."""
    n_cols = fit.model.exog.shape[1]
    if fit.model.rank < n_cols:
        return f"rank-deficient design ({n_cols} columns, rank {fit.model.rank}): confounded terms"
    if fit.df_resid < 1:
        return f"no residual degrees of freedom (n={int(fit.nobs)}, parameters={n_cols})"
    if fit.ssr <= 1e-12 * fit.centered_tss:
        return "perfect fit: residual sum of squares is zero"
    return None


def not_estimable_table(reason: str, typ: int, formula: str, n_obs: int) -> pd.DataFrame:
    row = {"term": "(model)", "sum_sq": np.nan, "df": np.nan, "F": np.nan, "PR(>F)": np.nan,
           "note": f"{NOT_ESTIMABLE}: {reason}"}
    return _finish(pd.DataFrame([row]), typ, formula, n_obs)


def _finish(table: pd.DataFrame, typ: int, formula: str, n_obs: int) -> pd.DataFrame:
    table = table.assign(anova_type=typ, formula=formula, n_obs=n_obs)
    if "note" not in table:
        table["note"] = ""
    table = table[ANOVA_COLUMNS]
    table.attrs.update(anova_type=typ, formula=formula)
    return table


def anova_table(df: pd.DataFrame, formula: str, typ: int | str = 2) -> pd.DataFrame:
    """ANOVA of an OLS fit of `formula` on `df` (statsmodels), of type `typ`.

    Returns one row per term plus "Residual" with columns `ANOVA_COLUMNS`
    (sum of squares in squared response units, F dimensionless). Rows with a
    missing value in a variable of the formula are dropped. Degenerate data
    (too few rows, a single-level factor, a constant response, a
    rank-deficient design, no residual degrees of freedom, a perfect fit)
    give a single row whose `note` starts with "not estimable: ".
    The ANOVA type is stored in `attrs["anova_type"]` and column `anova_type`.
    """
    typ = ANOVA_TYPES[typ]
    data = df[_formula_columns(df, formula)].dropna()
    reason = _precheck(data, formula)
    if reason:
        return not_estimable_table(reason, typ, formula, len(data))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # rank deficiency is reported by _postcheck
            fit = smf.ols(formula, data=data).fit()
        reason = _postcheck(fit)
        table = None if reason else anova_lm(fit, typ=typ)
    except (ValueError, np.linalg.LinAlgError) as exc:
        reason = f"{type(exc).__name__}: {exc}"
    if reason is None and not np.all(np.isfinite(table["F"].iloc[:-1])):
        reason = "non-finite F statistic"
    if reason:
        return not_estimable_table(reason, typ, formula, len(data))
    return _finish(table.reset_index(names="term"), typ, formula, len(data))


def is_estimable(table: pd.DataFrame) -> bool:
    """False when `table` is the single "not estimable" row of `anova_table`."""
    return not table["note"].str.startswith(NOT_ESTIMABLE).any()


def _shape_formulas(data: pd.DataFrame) -> list[tuple[str, str]]:
    """Candidate (formula, note) pairs for eq. 4.2, most complete first."""
    shapes, neurons = data["shape"].nunique(), data["neurons"].nunique()
    if shapes >= 2 and neurons >= 2:
        return [("mean_err ~ C(shape)*neurons", ""),
                ("mean_err ~ C(shape) + neurons", "interaction not estimable; additive model")]
    if shapes >= 2:
        return [("mean_err ~ C(shape)", "single neuron count; shape only")]
    if neurons >= 2:
        only = data["shape"].iloc[0]
        return [("mean_err ~ neurons", f"single shape ({only}); fitted mean_err ~ neurons")]
    return [("mean_err ~ C(shape)*neurons", "")]


def _fit_first_estimable(data: pd.DataFrame, typ: int) -> pd.DataFrame:
    """ANOVA with the first estimable formula of `_shape_formulas`.

    The note of a reduced model says which terms were dropped and why the
    fuller formula failed; if none is estimable, the last "not estimable" row.
    """
    dropped = ""
    for formula, note in _shape_formulas(data):
        table = anova_table(data, formula, typ=typ)
        if is_estimable(table):
            table["note"] = f"{note} ({dropped})" if note and dropped else note
            return table
        dropped = table["note"].iloc[0].removeprefix(f"{NOT_ESTIMABLE}: ")
    return table


def _subsets(df: pd.DataFrame, threshold: int) -> dict[str, pd.DataFrame]:
    return {f"below {threshold}": df[df["neurons"] < threshold],
            f"at or above {threshold}": df[df["neurons"] >= threshold]}


def shape_anova(summary: pd.DataFrame, neuron_threshold: int = 120, typ: int = 2) -> pd.DataFrame:
    """Eq. 4.2, `mean_err ~ C(shape)*neurons`, per study and model class.

    Fitted separately for models with fewer than `neuron_threshold` neurons
    and for the others (column `subset`; an empty subset gives no rows), on
    successful models only. Classes
    are kept apart because a PINN/DDNN difference would otherwise swamp the
    shape effect. Terms that cannot be estimated are dropped (the formula
    used is in column `formula`, the reason in `note`). Type II by default.
    """
    tables = []
    for (study, cls), group in successful(summary).groupby(["study", "class"], sort=True):
        for subset, data in _subsets(group, neuron_threshold).items():
            if data.empty:
                continue  # no models on this side of the threshold: nothing to report
            table = _fit_first_estimable(data, typ)
            tables.append(table.assign(study=study, **{"class": cls}, subset=subset))
    if not tables:
        out = not_estimable_table("no successful models", ANOVA_TYPES[typ], "mean_err ~ C(shape)*neurons", 0)
        tables = [out.assign(study="", **{"class": ""}, subset="")]
    out = pd.concat(tables, ignore_index=True)
    out = out[["study", "class", "subset"] + ANOVA_COLUMNS]
    out.attrs.update(anova_type=ANOVA_TYPES[typ])
    return out


def technique_formula(data: pd.DataFrame, response: str) -> str | None:
    """Eq. 4.1, `response ~ C(iccs)*bs + C(pinn)*bs`, keeping only the factors that vary in `data`
    (iccs: region terms on, pinn: physics-informed class, bs: batch size); None if none varies."""
    bs = data["batch_size"].nunique() > 1
    terms = [f"C({factor})" + ("*batch_size" if bs else "") for factor in ("iccs", "pinn")
             if data[factor].nunique() > 1]
    if not terms:
        return None
    return f"{response} ~ " + " + ".join(terms)


def technique_anova(summary: pd.DataFrame, typ: int = 2) -> pd.DataFrame:
    """Eq. 4.1 per study, for accuracy (mean_err, thesis Table 2) and cost (iter_time_s, Table 3),
    on successful models of studies where the region terms or the class vary. Type II by default."""
    data = successful(summary).assign(iccs=lambda d: d["region"].astype(bool),
                                      pinn=lambda d: d["class"].eq("pinn"))
    tables = []
    for study, group in data.groupby("study", sort=True):
        for response in ("mean_err", "iter_time_s"):
            formula = technique_formula(group, response)
            if formula is not None:
                tables.append(anova_table(group, formula, typ).assign(study=study, response=response))
    if not tables:
        return pd.DataFrame(columns=["study", "response"] + ANOVA_COLUMNS)
    return pd.concat(tables, ignore_index=True)[["study", "response"] + ANOVA_COLUMNS]


# --------------------------------------------------------------------------- t-test, variance

def _welch(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Welch t statistic, p-value and degrees of freedom of x vs y (NaN if too few)."""
    if len(x) < 2 or len(y) < 2:
        return np.nan, np.nan, np.nan
    return tuple(float(v) for v in ttest_ind(x, y, usevar="unequal"))


def _ttest_row(study: str, ddnn: np.ndarray, pinn: np.ndarray) -> dict:
    t, p, dof = _welch(ddnn, pinn)
    t_log, p_log, dof_log = _welch(np.log10(ddnn), np.log10(pinn))
    enough = min(len(ddnn), len(pinn)) >= 2
    return {
        "study": study, "n_ddnn": len(ddnn), "n_pinn": len(pinn),
        "mean_ddnn": ddnn.mean(), "mean_pinn": pinn.mean(),
        "median_ddnn": np.median(ddnn), "median_pinn": np.median(pinn),
        "t": t, "p_value": p, "df": dof,
        "t_log10": t_log, "p_value_log10": p_log, "df_log10": dof_log,
        "note": "" if enough else "fewer than 2 successful models in a class",
    }


def pinn_vs_ddnn_ttest(summary: pd.DataFrame, studies: list[str] | None = None) -> pd.DataFrame:
    """Welch two-sample t-test of mean error, DDNN vs PINN, per study (Fig. 17, 21).

    Only successful models; one row per study that has both classes
    (`class` 'ddnn' and 'pinn'), restricted to `studies` if given. Reports
    counts, means and medians of mean_err (dimensionless), the t statistic
    (positive when DDNN error is higher), p-value and Welch degrees of
    freedom, and the same test on log10(mean_err) (`*_log10`), which suits
    the roughly log-normal errors better.
    """
    df = successful(summary)
    rows = []
    for study, group in df.groupby("study", sort=True):
        if studies is not None and study not in studies:
            continue
        by_class = {c: g["mean_err"].to_numpy(float) for c, g in group.groupby("class")}
        if "ddnn" in by_class and "pinn" in by_class:
            rows.append(_ttest_row(study, by_class["ddnn"], by_class["pinn"]))
    return pd.DataFrame(rows, columns=TTEST_COLUMNS)


def _variance_row(data: pd.DataFrame) -> dict:
    """Pooled within-shape variance and variance of the shape means of mean_err."""
    groups = data.groupby("shape")["mean_err"]
    n, k = len(data), groups.ngroups
    within_ss = float(((data["mean_err"] - groups.transform("mean")) ** 2).sum())
    means = groups.mean()
    return {
        "n_models": n, "n_shapes": k,
        "intra_var": within_ss / (n - k) if n > k else np.nan,
        "extra_var": float(means.var(ddof=1)) if k >= 2 else np.nan,
    }


def shape_variance(summary: pd.DataFrame, neuron_threshold: int = 120) -> pd.DataFrame:
    """Intra- vs extra-group variance of mean error by architecture shape (§4.2).

    Per study and class, for all successful models and for the two neuron
    subsets of `shape_anova`: `intra_var` is the pooled within-shape variance
    (sum of squared deviations from each shape's mean over n - k), `extra_var`
    the variance (ddof=1) of the k shape means; both in squared error units.
    `ratio` = extra_var / intra_var; large means shape matters more than the
    activation sequence within a shape.
    """
    rows = []
    for (study, cls), group in successful(summary).groupby(["study", "class"], sort=True):
        subsets = {"all": group, **_subsets(group, neuron_threshold)}
        for subset, data in subsets.items():
            if len(data):
                rows.append({"study": study, "class": cls, "subset": subset, **_variance_row(data)})
    out = pd.DataFrame(rows, columns=["study", "class", "subset", "n_models", "n_shapes",
                                      "intra_var", "extra_var"])
    out["ratio"] = out["extra_var"] / out["intra_var"]
    return out
