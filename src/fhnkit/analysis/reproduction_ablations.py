"""The reproduction page under ablations: each finding judged again with an ablation's variant studies in
place of the studies they vary (`evidence_view`), and one sentence per finding saying which factor
turns its verdict (`explain`). Variants are made by `fhnkit.plan.ablations`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .reproduction_verdicts import DEFAULT, REPRODUCED, Evidence


def ablation_variants(config: dict) -> dict[str, dict[str, str]]:
    """{ablation: {study it varies: its variant}} of a config's ablation variants (`fhnkit.plan.ablations`)."""
    out: dict[str, dict[str, str]] = {}
    for name, study in config["studies"].items():
        if "ablation" in study:
            out.setdefault(study["ablation"]["name"], {})[study["ablation"]["of"]] = name
    return out


def _renamed(frames: dict | None, names: dict[str, str], keep: set[str]) -> dict | None:
    if frames is None:
        return None
    return {names.get(study, study): frame for study, frame in frames.items() if study in keep}


def evidence_view(evidence: Evidence, variants: dict[str, str] | None = None) -> Evidence:
    """`evidence` as the findings judge it: the run's own studies only (no ablation's variants), or, with
    `variants` ({study: its variant}), each of those studies replaced by its variant (settings and models,
    under the study's name), so that a finding is judged again on the varied factor."""
    config, variants = evidence.config, variants or {}
    own = [name for name, study in config["studies"].items() if "ablation" not in study]
    studies = {name: {k: v for k, v in config["studies"][variants.get(name, name)].items() if k != "ablation"}
               for name in own}
    back = {variant: name for name, variant in variants.items()}
    keep = (set(own) - set(variants)) | set(back)
    summary = evidence.summary[evidence.summary["study"].isin(keep)].copy()
    summary["study"] = summary["study"].replace(back)
    return Evidence(summary, {**config, "studies": studies}, evidence.cost_anova_time, evidence.cost_anova_speedup,
                    evidence.benchmark, _renamed(evidence.error_cuts, back, keep),
                    _renamed(evidence.error_maps, back, keep))


def touches(row: dict, studies: set[str]) -> bool:
    """Whether a row's study (e.g. "B_C vs B_C_small", "C (grid)") is one of `studies` or names one."""
    return bool(set(str(row["study"]).replace("(", " ").replace(")", " ").split()) & studies)



def _effect_text(row) -> str:
    if not np.isfinite(row["effect"]):
        return "no effect estimated"
    interval = f" [{row['ci_low']:.3g}, {row['ci_high']:.3g}]" if np.isfinite(row["ci_low"]) else ""
    return f"x{row['effect']:.3g}{interval}"


def _movement(row, base) -> str:
    """How an ablation's effect stands against the default's: no difference left (its interval holds 1),
    reversed (the other side of 1, its interval too: the ablation turns which side is better), or the
    difference shrinking or growing on the default's side."""
    if not (np.isfinite(row["effect"]) and np.isfinite(base["effect"]) and row["effect"] > 0 and base["effect"] > 0):
        return ""
    moved, was = np.log(row["effect"]), np.log(base["effect"])
    same_side, closer = moved * was > 0, abs(moved) < abs(was)
    if np.isfinite(row["ci_low"]) and row["ci_low"] <= 1.0 <= row["ci_high"]:
        how = ("the difference grows, its interval holding 1" if same_side and not closer
               else "no difference is left, its interval holding 1")
    elif not same_side:
        how = "the effect reverses"
    else:
        how = "the difference shrinks" if closer else "the difference grows"
    return f", {_effect_text(row)} against {_effect_text(base)}, {how}"


def explain(table: pd.DataFrame) -> pd.DataFrame:
    """Fill `why` of each default row that ablations also judge with one sentence from their verdicts and
    effects: which factor turns the verdict and which way the effect moves, or that none does."""
    table = table.copy()
    for _, group in table.groupby(["key", "study"], sort=False):
        base = group[group["ablation"] == DEFAULT]
        others = group[group["ablation"] != DEFAULT]
        if base.empty or others.empty:
            continue
        b = base.iloc[0]
        turned = others[others["verdict"] != b["verdict"]]
        moves = [f"{o['factor']} ({o['changes']}): {o['verdict']}" + _movement(o, b) for _, o in others.iterrows()]
        if not turned.empty:
            verdicts = " or ".join(dict.fromkeys(turned["verdict"]))
            where = ", ".join(dict.fromkeys(f"{t['factor']} ({t['changes']})" for _, t in turned.iterrows()))
            which = "that factor turns" if len(turned) == 1 else "each of these turns"
            sentence = f"{verdicts.capitalize()} under {where}, {b['verdict']} by default: {which} the verdict. "
        else:
            holds = "holds" if b["verdict"] == REPRODUCED else "does not hold"
            factors = ", ".join(dict.fromkeys(others["factor"]))
            sentence = (f"No ablation turns the verdict: {b['verdict']} by default and under every factor tried "
                        f"({factors}), so the evidence says the finding {holds} here, whichever of these is "
                        "varied. ")
        table.loc[base.index, "why"] = (sentence + "; ".join(moves) + ".").strip()
    return table
