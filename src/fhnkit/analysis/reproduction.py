"""What this run reproduces of the study: one row per finding of SPEC.md section 8 (and Tables 7 and 11).

Each finding states what the thesis reports, what this run measured (with its spread: n per group,
a bootstrap interval of the effect), and a verdict decided by a rule stated in the row, never by
hand: an expected difference is *reproduced* when its sign is the thesis's and a test rejects "no
difference" at ALPHA (one-sided where the thesis names a direction); an expected absence of a
difference is reproduced when the test does not reject it. A finding that the run's configuration
cannot test is *not tested by this config*, with why and which config would test it. Each row names the
report item it rests on (`rests_on`, a file of the report).

Studies are recognised by what they are (problem, stimulus, time window, classes), not by name, so
that any config that holds such studies is judged the same way.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .reproduction_ablations import ablation_variants, evidence_view, explain, touches
from .reproduction_verdicts import (
    ALPHA,
    BOOTSTRAP,
    COLUMNS,
    DEFAULT,
    NOT_REPRODUCED,
    NOT_TESTED,
    POWER,
    REPRODUCED,
    UNDERPOWERED,
    Evidence,
    Finding,
    compare_groups,
    detectable_ratio,
    differs,
    not_tested,
    ratio_interval,
    verdict_row,
    welch_log,
)

__all__ = ["ALPHA", "DEFAULT", "FINDINGS", "NOT_REPRODUCED", "NOT_TESTED", "POWER", "REPRODUCED", "UNDERPOWERED",
           "Evidence", "Finding", "evidence_view", "explain", "reproduction_table"]

HIGH_ERROR_FRACTION = 0.1  # "high-error" parameter sets of a model: its top 10%
WORKSTATION = "config/workstation.yaml (one GPU, overnight) or config/thesis.yaml"



# --------------------------------------------------------------------------- recognising studies


def _studies(config: dict, problem: str, **where) -> list[str]:
    out = []
    for name, study in config["studies"].items():
        if study["problem"] != problem:
            continue
        if all(pred(study) for pred in where.values()):
            out.append(name)
    return out


def _a_studies(config: dict) -> tuple[str | None, str | None]:
    """(scarce, dense) Problem A studies: the fewest and the most training points (the thesis: 10 and 1000)."""
    names = sorted(_studies(config, "A"), key=lambda s: config["studies"][s]["train"]["n"])
    if not names:
        return None, None
    if len(names) == 1:
        n = config["studies"][names[0]]["train"]["n"]
        return (names[0], None) if n <= 100 else (None, names[0])
    return names[0], names[-1]


def _single_stimulus(study: dict) -> bool:
    return study.get("i_app", 0.0) == 0.0


def _autopacing(study: dict) -> bool:
    return study.get("i_app", 0.0) > 0.0


# --------------------------------------------------------------------------- the findings


def _a_scarce(f: Finding, ev: Evidence) -> list[dict]:
    scarce, _ = _a_studies(ev.config)
    if scarce is None:
        return [not_tested(f, "no Problem A study with a scarce training set (10 points): see config/config.yaml")]
    ddnn, pinn = (ev.models(scarce, **{"class": c})["mean_err"].to_numpy(float) for c in ("ddnn", "pinn"))
    return [compare_groups(f, scarce, ddnn, pinn, ("DDNN", "PINN"))]


def _a_dense(f: Finding, ev: Evidence) -> list[dict]:
    _, dense = _a_studies(ev.config)
    if dense is None:
        return [not_tested(f, "no Problem A study with a dense training set (1000 points): see config/config.yaml")]
    ddnn, pinn = (ev.models(dense, **{"class": c})["mean_err"].to_numpy(float) for c in ("ddnn", "pinn"))
    if len(ddnn) < 2 or len(pinn) < 2:
        return [verdict_row(f, dense, "-", f"DDNN {len(ddnn)}, PINN {len(pinn)}", float("nan"), NOT_TESTED,
                            "fewer than 2 successful models in a class")]
    ratio, lo, hi = ratio_interval(ddnn, pinn)
    p = welch_log(ddnn, pinn, "two-sided")
    detectable = detectable_ratio(ddnn, pinn, "two-sided")
    measured = (f"DDNN/PINN mean error = {ratio:.3g} [95% CI {lo:.3g}, {hi:.3g}]; detects a difference of "
                f"x{detectable:.3g} or more")
    return [verdict_row(f, dense, measured, f"DDNN {len(ddnn)}, PINN {len(pinn)}", p,
                        REPRODUCED if p >= ALPHA else NOT_REPRODUCED, effect=(ratio, lo, hi), detectable=detectable)]


def _techniques_studies(ev: Evidence) -> list[str]:
    """Single-stimulus B studies with both DDNN and PINN models."""
    out = []
    for name in _studies(ev.config, "B", stimulus=_single_stimulus):
        classes = set(ev.models(name)["class"])
        if {"ddnn", "pinn"} <= classes:
            out.append(name)
    return out


def _pinn_cost(f: Finding, ev: Evidence) -> list[dict]:
    studies = _techniques_studies(ev)
    if not studies:
        return [not_tested(f, "no single-stimulus Problem B study with DDNN and PINN models (B_S_techniques)")]
    rows = []
    for study in studies:
        pinn = ev.models(study, **{"class": "pinn"})["iter_time_s"].to_numpy(float)
        ddnn = ev.models(study, **{"class": "ddnn"})["iter_time_s"].to_numpy(float)
        rows.append(compare_groups(f, study, pinn, ddnn, ("PINN", "DDNN"), "time per iteration"))
    return rows


def _pinn_no_gain(f: Finding, ev: Evidence) -> list[dict]:
    studies = _techniques_studies(ev)
    if not studies:
        return [not_tested(f, "no single-stimulus Problem B study with DDNN and PINN models (B_S_techniques)")]
    rows = []
    for study in studies:
        ddnn = ev.models(study, **{"class": "ddnn"})["mean_err"].to_numpy(float)
        pinn = ev.models(study, **{"class": "pinn"})["mean_err"].to_numpy(float)
        row = compare_groups(f, study, ddnn, pinn, ("DDNN", "PINN"))
        if row["verdict"] != NOT_TESTED:  # the thesis: PINN does not help, i.e. DDNN is not significantly worse
            row["verdict"] = NOT_REPRODUCED if row["verdict"] == REPRODUCED else REPRODUCED
        rows.append(row)
    return rows


def _depth(f: Finding, ev: Evidence) -> list[dict]:
    import statsmodels.formula.api as smf

    rows = []
    for study in _studies(ev.config, "B", stimulus=_single_stimulus):
        df = ev.models(study, **{"class": "ddnn", "region": False, "windows": 1})
        df = df[df["depth"].isin([2, 3])]
        counts = df["depth"].value_counts()
        if counts.get(2, 0) < 2 or counts.get(3, 0) < 2 or df["neurons"].nunique() < 2:
            continue
        fit = smf.ols("np.log10(mean_err) ~ C(depth) + neurons", data=df).fit()
        coef, p_two = float(fit.params["C(depth)[T.3]"]), float(fit.pvalues["C(depth)[T.3]"])
        lo, hi = (float(v) for v in fit.conf_int().loc["C(depth)[T.3]"])
        p = p_two / 2 if coef < 0 else 1 - p_two / 2  # one-sided: three layers lower
        measured = (f"error of 3 vs 2 layers at equal neurons = x{10 ** coef:.3g} [95% CI x{10 ** lo:.3g}, "
                    f"x{10 ** hi:.3g}] (OLS log10(mean_err) ~ C(depth) + neurons)")
        rows.append(verdict_row(f, study, measured, f"2 layers {counts[2]}, 3 layers {counts[3]}", p,
                                differs(coef < 0, p), effect=(10 ** coef, 10 ** lo, 10 ** hi)))
    return rows or [not_tested(f, "no single-stimulus Problem B study with DDNNs of 2 and 3 layers (B_S)")]


def _enrichment_interval(near: np.ndarray, high: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """Bootstrap 95% interval of the high-error sets' enrichment near the threshold (resampling the sets)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, near.size, (BOOTSTRAP, near.size))
    n, h = near[idx], high[idx]
    with np.errstate(divide="ignore", invalid="ignore"):
        draws = (n & h).sum(axis=1) / np.maximum(h.sum(axis=1), 1) / n.mean(axis=1)
    lo, hi = np.nanpercentile(draws, [2.5, 97.5])
    return float(lo), float(hi)


def _near_threshold(f: Finding, ev: Evidence) -> list[dict]:
    a = ev.config["model"]["a"]
    rows = []
    for study in _studies(ev.config, "B", stimulus=_single_stimulus):
        cuts = (ev.error_cuts or {}).get(study)
        if cuts is None or cuts.empty:
            continue
        per_set = cuts.groupby(["U0", "W0"], as_index=False)["err"].mean()
        near = (np.abs(per_set["U0"] - a) <= 0.05).to_numpy()
        high = (per_set["err"] >= per_set["err"].quantile(1 - HIGH_ERROR_FRACTION)).to_numpy()
        if near.sum() < 2 or (~near).sum() < 2:
            continue
        table = [[int((near & high).sum()), int((near & ~high).sum())], [int((~near & high).sum()),
                                                                         int((~near & ~high).sum())]]
        p = float(stats.fisher_exact(table, alternative="greater").pvalue)
        enrichment = (near & high).sum() / max(high.sum(), 1) / near.mean()
        measured = (f"{table[0][0]} of the {int(high.sum())} highest-error parameter sets (top "
                    f"{HIGH_ERROR_FRACTION:.0%}) of the best model lie where |U0 - a| <= 0.05, which holds "
                    f"{near.mean():.0%} of all sets: x{enrichment:.3g} their share")
        rows.append(verdict_row(f, study, measured, f"{int(near.sum())} sets near a, {int((~near).sum())} elsewhere",
                                p, differs(enrichment > 1, p), effect=(enrichment, *_enrichment_interval(near, high))))
    return rows or [not_tested(f, "no error cuts of a single-stimulus Problem B study")]


def _small_window(f: Finding, ev: Evidence) -> list[dict]:
    rows = []
    studies = _studies(ev.config, "B", stimulus=_autopacing)
    for full in studies:
        for small in studies:
            s_full, s_small = ev.config["studies"][full], ev.config["studies"][small]
            if s_small["t_max"] >= s_full["t_max"] or s_small["i_app"] != s_full["i_app"]:
                continue
            big = ev.models(full, **{"class": "ddnn", "windows": 1})["mean_err"].to_numpy(float)
            little = ev.models(small, **{"class": "ddnn", "windows": 1})["mean_err"].to_numpy(float)
            rows.append(compare_groups(f, f"{full} vs {small}", big, little,
                                       (f"[0, {s_full['t_max']:g}]", f"[0, {s_small['t_max']:g}]")))
    return rows or [not_tested(f, "no two autopacing Problem B studies on different time windows (B_C, B_C_small)")]


def _itnn_high_error(f: Finding, ev: Evidence) -> list[dict]:
    rows = []
    for study, s in ev.config["studies"].items():
        itnn = ev.models(study, **{"class": "itnn"})
        with_term, without = (itnn[itnn["region"] == flag]["mean_err"].to_numpy(float) for flag in (True, False))
        if len(with_term) and len(without):
            rows.append(compare_groups(f, f"{study} (grid)", without, with_term, ("ITNN", "ITNN + term"),
                                       "rollout error"))
        maps = (ev.error_maps or {}).get(study)
        if s.get("resample", {}).get("base", {}).get("class") == "itnn" and maps is not None and not maps.empty:
            wide = maps.pivot_table(index="traj", columns="model", values="mean_err")
            before, after = wide["before"].to_numpy(float), wide["after"].to_numpy(float)
            p = float(stats.wilcoxon(before, after, alternative="greater").pvalue)
            rng = np.random.default_rng(0)
            idx = rng.integers(0, len(before), (BOOTSTRAP, len(before)))
            ratios = after[idx].mean(axis=1) / before[idx].mean(axis=1)
            lo, hi = np.percentile(ratios, [2.5, 97.5])
            effect = (before.mean() / after.mean(), 1 / hi, 1 / lo)  # before/after: > 1 where the term helps
            measured = (f"rollout error of the base ITNN {before.mean():.3g}, retrained with the term "
                        f"{after.mean():.3g} (before/after = {effect[0]:.3g} [95% CI {effect[1]:.3g}, "
                        f"{effect[2]:.3g}]; one model, paired trajectories)")
            rows.append(verdict_row(f, f"{study} (resampling)", measured, f"{len(before)} validation trajectories", p,
                                    differs(effect[0] > 1, p), effect=effect))
    return rows or [not_tested(f, "no ITNN trained with a high-error data term (resample with an itnn base, or "
                                   "itnn with grid.region: [false, true] and resample)")]


def _linear_in_neurons(f: Finding, ev: Evidence) -> list[dict]:
    table = ev.cost_anova_time
    if table is None or table.empty:
        return [not_tested(f, "no cost sweep in this run (cost_sweep)")]
    rows = []
    for build, group in table.groupby("build", sort=False):
        term = group[group["term"] == "neurons"]
        if term.empty or pd.isna(term["PR(>F)"].iloc[0]):
            continue
        p_two = float(term["PR(>F)"].iloc[0])
        coef = float(str(term["coef"].iloc[0]).split(";")[0].split("=")[-1])
        p = p_two / 2 if coef > 0 else 1 - p_two / 2
        measured = f"{build}: +{coef:.3g} s per neuron (eq. 4.3, {group['formula'].iloc[0]})"
        rows.append(verdict_row(f, "cost sweep", measured, f"{int(group['n_obs'].iloc[0])} architectures", p,
                                differs(coef > 0, p)))
    return rows or [not_tested(f, "the cost sweep's ANOVA was not estimable")]


def _tensor_cores(f: Finding, ev: Evidence) -> list[dict]:
    table = ev.cost_anova_speedup
    half = None if table is None else table[table["build"].astype(str).str.contains("fp16")]
    if half is None or half.empty:
        return [not_tested(f, f"needs fp16 builds on a GPU with tensor cores (the cost sweep on CUDA): {WORKSTATION}")]
    rows = []
    for build, group in half.groupby("build", sort=False):
        term = group[group["term"] == "neurons"]
        if term.empty or pd.isna(term["PR(>F)"].iloc[0]):
            continue
        p_two = float(term["PR(>F)"].iloc[0])
        coef = float(str(term["coef"].iloc[0]).split(";")[0].split("=")[-1])
        p = p_two / 2 if coef > 0 else 1 - p_two / 2
        rows.append(verdict_row(f, "cost sweep", f"{build}: tensor-core speedup +{coef:.3g} per neuron",
                                f"{int(group['n_obs'].iloc[0])} architectures", p, differs(coef > 0, p)))
    return rows or [not_tested(f, "the fp16 speedup ANOVA was not estimable")]


def _network_vs_solver(f: Finding, ev: Evidence) -> list[dict]:
    """Table 11 is judged on the run's GPU benchmarks (a workstation run has CPU builds too: the fastest
    of those says nothing of the GPU claim); a run without one says which config tests it."""
    bench = ev.benchmark
    if bench is None or bench.empty:
        return [not_tested(f, "no benchmark in this run")]
    gpu = bench[bench["device"] == "cuda"]
    judged = bench if gpu.empty else gpu
    best = judged.loc[judged["speedup"].idxmax()]
    measured = (f"fastest network {best['study']}/{best['model']} ({best['build']}, {int(best['n_sets']):,} sets on "
                f"{best['device']}): {best['speedup']:.3g}x the solver's speed; the solver at "
                f"{best['solver_bandwidth_fraction']:.1%} of its bandwidth roofline")
    if gpu.empty:
        return [verdict_row(f, "all", measured, f"{len(bench)} builds", float("nan"), NOT_TESTED,
                            f"Table 11 compares on a GPU and this benchmark ran on a CPU: {WORKSTATION} on a GPU")]
    return [verdict_row(f, "all", measured, f"{len(gpu)} GPU builds", float("nan"),
                        REPRODUCED if best["speedup"] > 1 else NOT_REPRODUCED)]


SIGN = f"sign as the thesis's and Welch's t-test on log10 values, one-sided, p < {ALPHA}"
FINDINGS = [
    Finding("a_scarce", "Problem A, scarce data: PINN error far below DDNN",
            "~1e-4 (PINN) vs ~2e-2 (DDNN), Table 14, Fig. 17", f"reproduced if DDNN > PINN: {SIGN}",
            "ttest_pinn_ddnn.html", _a_scarce, "DDNN / PINN mean error", 200.0),
    Finding("a_dense", "Problem A, dense data: no significant difference between PINN and DDNN",
            "no significant difference, Fig. 21", f"reproduced if Welch's t-test on log10 values, two-sided, "
            f"p >= {ALPHA}", "ttest_pinn_ddnn.html", _a_dense, "DDNN / PINN mean error", 1.0, False),
    Finding("bs_pinn_cost", "Problem B_S: physics terms add iteration cost",
            "~10x time per iteration for PINN, Table 3, Fig. 23", f"reproduced if PINN > DDNN: {SIGN}",
            "iteration_cost.png", _pinn_cost, "PINN / DDNN time per iteration", 10.0),
    Finding("bs_pinn_accuracy", "Problem B_S: physics terms do not improve accuracy when data are abundant",
            "no accuracy gain from PINN, Tables 2-3 (eq. 4.1)", f"reproduced unless DDNN > PINN with {SIGN}",
            "ttest_pinn_ddnn.html", _pinn_no_gain, "DDNN / PINN mean error", 1.0, False),
    Finding("bs_depth", "Problem B_S: three layers beat two at equal neuron count",
            "three-layer networks more accurate, Figs. 24-26 (eq. 4.2)",
            f"reproduced if the coefficient of 3 layers in OLS log10(mean_err) ~ C(depth) + neurons is negative, "
            f"one-sided p < {ALPHA}", "accuracy_vs_neurons.png", _depth, "error of 3 / 2 layers at equal neurons"),
    Finding("bs_threshold", "Problem B_S: errors concentrate where U0 is near the threshold a",
            "high-error solutions start near U0 = a, Figs. 27-28",
            f"reproduced if the best model's top-10% error sets lie where |U0 - a| <= 0.05 more often than all sets "
            f"do: Fisher's exact test, one-sided, p < {ALPHA}", "error_cuts_{study}.png", _near_threshold,
            "high-error sets near a / their share"),
    Finding("bc_window", "Problem B_C: the small time window gives a lower mean error",
            "~5x lower mean error on [0, 5] than on [0, 50], Table 7", f"reproduced if [0, 50] > [0, 5]: {SIGN}",
            "time_domains.html", _small_window, "mean error [0, 50] / [0, 5]", 5.0),
    Finding("itnn_region", "ITNN: an extra data term on the high-error region lowers rollout error",
            "lower rollout error with the high-error term, Fig. 34",
            f"reproduced if the error is lower with the term: {SIGN} (grid), or Wilcoxon signed-rank over "
            f"paired validation trajectories, one-sided, p < {ALPHA} (resampling)", "resampling.html",
            _itnn_high_error, "rollout error without / with the term"),
    Finding("inference_linear", "Inference time grows about linearly with neurons",
            "linear in neurons, Fig. 39, Table 12 (eq. 4.3)",
            f"reproduced if the neurons coefficient of eq. 4.3 is positive, one-sided p < {ALPHA}",
            "cost_anova_time.html", _linear_in_neurons),
    Finding("tensor_cores", "Tensor cores help wide networks more than deep ones",
            "fp16 speedup grows with width, Fig. 40, Table 13",
            f"reproduced if the neurons coefficient of the fp16 speedup ANOVA is positive, one-sided p < {ALPHA}",
            "cost_anova_speedup.html", _tensor_cores),
    Finding("table11", "A network is faster than the solver on the same work",
            "1.8x faster than the CUDA solver on 16M sets (RTX 4070), Table 11 (against a solver 50-200x below "
            "its roofline)", "reproduced if the fastest build's median time beats the solver's, on a GPU",
            "benchmark.html", _network_vs_solver),
]



def _judged(evidence: Evidence) -> list[dict]:
    return [row for finding in FINDINGS for row in finding.test(finding, evidence)]


def reproduction_table(evidence: Evidence) -> pd.DataFrame:
    """Every finding judged on `evidence`: one row per (finding, study that tests it), in FINDINGS order, on the
    run's own studies (ablation "default"), then again under each ablation for the rows its studies change
    (ablation, factor, changes named); each row's `why` says, where ablations touch it, which factor turns
    its verdict (`explain`)."""
    config = evidence.config
    varied: dict[tuple, list[dict]] = {}  # (finding, study) -> its rows under the ablations
    for name, variants in sorted(ablation_variants(config).items()):
        some = config["studies"][next(iter(variants.values()))]["ablation"]
        for row in _judged(evidence_view(evidence, variants)):
            if touches(row, set(variants)):
                varied.setdefault((row["key"], row["study"]), []).append(
                    {**row, "ablation": name, "factor": some["factor"], "changes": some["changes"]})
    rows = []
    for row in _judged(evidence_view(evidence)):  # each default row, then the same row under each ablation
        rows += [row, *varied.pop((row["key"], row["study"]), [])]
    rows += [row for rest in varied.values() for row in rest]
    return explain(pd.DataFrame(rows, columns=COLUMNS))
