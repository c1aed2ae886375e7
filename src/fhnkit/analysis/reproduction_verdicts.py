"""How a finding of the reproduction page is decided: the evidence it is judged on, the statistics of
one verdict (ratio of geometric means with a bootstrap interval, Welch's t-test on logs, the smallest
effect detectable with 80% power) and the row it becomes (`fhnkit.analysis.reproduction`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from .summary import successful

ALPHA = 0.05
POWER = 0.8  # a verdict states the smallest effect its test detects this often
REPRODUCED, NOT_REPRODUCED, NOT_TESTED = "reproduced", "not reproduced", "not tested by this config"
UNDERPOWERED = "underpowered"
DEFAULT = "default"  # the run's own studies, as apart from an ablation's variants
COLUMNS = ["finding", "thesis", "study", "ablation", "factor", "changes", "measured", "n", "p_value", "rule",
           "verdict", "effect", "ci_low", "ci_high", "detectable", "thesis_effect", "rests_on", "why", "key"]
BOOTSTRAP = 2000


@dataclass(frozen=True)
class Evidence:
    """What the findings are judged on: the summary table (one row per model), the config, and the
    tables some findings need (each may be None when the run did not make it)."""

    summary: pd.DataFrame
    config: dict
    cost_anova_time: pd.DataFrame | None = None
    cost_anova_speedup: pd.DataFrame | None = None
    benchmark: pd.DataFrame | None = None
    error_cuts: dict | None = None  # {study: error cuts frame (U0, W0, t, err per point)}
    error_maps: dict | None = None  # {study: per-trajectory errors of the resampling stage, before/after}

    def models(self, study: str, **where) -> pd.DataFrame:
        df = successful(self.summary)
        df = df[df["study"] == study]
        for column, value in where.items():
            df = df[df[column] == value]
        return df


@dataclass(frozen=True)
class Finding:
    """One result of the thesis: what it claims and reports, the rule that decides, the item it rests on."""

    key: str
    claim: str
    thesis: str
    rule: str
    rests_on: str  # the report item's file name ("{study}": the study of the row)
    test: Callable[[Finding, Evidence], list[dict]]
    effect: str = ""  # what the row's effect is (a ratio; the forest plot's axis)
    thesis_effect: float | None = None  # the thesis's own size of that effect, where it gives one
    expects_difference: bool = True  # False: the thesis reports no difference



def ratio_interval(high: np.ndarray, low: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """Ratio of geometric means high/low and its bootstrap 95% interval (resampling each group)."""
    rng = np.random.default_rng(seed)
    lh, ll = np.log(high), np.log(low)
    ratio = float(np.exp(lh.mean() - ll.mean()))
    draws = [np.exp(rng.choice(lh, lh.size).mean() - rng.choice(ll, ll.size).mean()) for _ in range(BOOTSTRAP)]
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return ratio, float(lo), float(hi)


def detectable_ratio(high: np.ndarray, low: np.ndarray, alternative: str) -> float:
    """The smallest ratio of geometric means high/low that a t-test on log values of groups this size and
    spread detects with probability POWER at ALPHA (`alternative` "larger": one-sided, else two-sided):
    Cohen's d from the power equation, times the pooled standard deviation of the logs."""
    from statsmodels.stats.power import TTestIndPower

    lh, ll = np.log(high), np.log(low)
    pooled = np.sqrt(((lh.size - 1) * lh.var(ddof=1) + (ll.size - 1) * ll.var(ddof=1)) / (lh.size + ll.size - 2))
    d = TTestIndPower().solve_power(effect_size=None, nobs1=lh.size, alpha=ALPHA, power=POWER,
                                    ratio=ll.size / lh.size, alternative=alternative)
    return float(np.exp(d * pooled))


def welch_log(high: np.ndarray, low: np.ndarray, alternative: str) -> float:
    """p-value of Welch's t-test on log10 values ("greater": high's mean exceeds low's)."""
    if len(high) < 2 or len(low) < 2:
        return float("nan")
    return float(stats.ttest_ind(np.log10(high), np.log10(low), equal_var=False, alternative=alternative).pvalue)


def differs(expected_sign_ok: bool, p: float) -> str:
    return REPRODUCED if expected_sign_ok and p < ALPHA else NOT_REPRODUCED


def verdict_row(finding: Finding, study: str, measured: str, n: str, p: float, verdict: str, why: str = "",
                effect: tuple[float, float, float] | None = None, detectable: float = float("nan")) -> dict:
    """One verdict; `effect`: (estimate, low, high) of the finding's effect (a ratio, `Finding.effect`), and
    `detectable` the smallest effect its test detects with probability POWER. A difference the thesis
    reports but this test could not have detected at the thesis's own size is underpowered, not refuted."""
    estimate, low, high = effect if effect is not None else (float("nan"),) * 3
    if verdict == NOT_REPRODUCED and finding.expects_difference and finding.thesis_effect is not None and \
            np.isfinite(detectable) and detectable > finding.thesis_effect:
        verdict = UNDERPOWERED
        why = why or (f"this test detects a ratio of x{detectable:.3g} or more ({POWER:.0%} power), and the thesis "
                      f"reports x{finding.thesis_effect:.3g}: add seeds (grid.seeds) for a test that could tell")
    return {"finding": finding.claim, "thesis": finding.thesis, "study": study, "ablation": DEFAULT, "factor": "",
            "changes": "", "measured": measured, "n": n, "p_value": p, "rule": finding.rule, "verdict": verdict,
            "effect": estimate, "ci_low": low, "ci_high": high, "detectable": detectable,
            "thesis_effect": finding.thesis_effect, "rests_on": finding.rests_on.format(study=study), "why": why,
            "key": finding.key}


def not_tested(finding: Finding, why: str) -> dict:
    return verdict_row(finding, "-", "-", "-", float("nan"), NOT_TESTED, why)


def compare_groups(finding: Finding, study: str, high: np.ndarray, low: np.ndarray, names: tuple[str, str],
                   what: str = "mean error") -> dict:
    """A row testing that `high` exceeds `low` (geometric means; Welch on log10, one-sided)."""
    if len(high) < 2 or len(low) < 2:
        return verdict_row(finding, study, "-", f"{names[0]} {len(high)}, {names[1]} {len(low)}", float("nan"),
                           NOT_TESTED, "fewer than 2 successful models in a group: add seeds (grid.seeds) for a test")
    ratio, lo, hi = ratio_interval(high, low)
    p = welch_log(high, low, "greater")
    detectable = detectable_ratio(high, low, "larger")
    measured = (f"{what}: {names[0]} {np.exp(np.log(high).mean()):.3g}, {names[1]} {np.exp(np.log(low).mean()):.3g} "
                f"(geometric means); {names[0]}/{names[1]} = {ratio:.3g} [95% CI {lo:.3g}, {hi:.3g}]; detects "
                f"x{detectable:.3g} or more")
    return verdict_row(finding, study, measured, f"{names[0]} {len(high)}, {names[1]} {len(low)}", p,
                       differs(ratio > 1, p), effect=(ratio, lo, hi), detectable=detectable)
