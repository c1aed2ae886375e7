"""The report's first pages: what this run reproduces (`reproduction`) and whether a surrogate pays
(`surrogate_pays`), written from the finished analysis (rule `reproduction`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .reproduction import (
    ALPHA,
    NOT_REPRODUCED,
    NOT_TESTED,
    POWER,
    REPRODUCED,
    UNDERPOWERED,
    Evidence,
    reproduction_table,
)
from .reproduction_forest import forest_plot
from .surrogate_pays import pays_table, solver_floor, verdict
from .tables import write_table


def _optional_csv(path) -> pd.DataFrame | None:
    return pd.read_csv(path) if path else None


def _by_study(paths, results_depth: int) -> dict[str, pd.DataFrame]:
    """{study: frame} of per-study Parquet files (the study is the `results_depth`-th folder from the end)."""
    return {Path(p).parts[-results_depth]: pd.read_parquet(p) for p in paths}


def evidence_of(inputs: dict, config: dict) -> Evidence:
    """The Evidence of a finished run from the rule's inputs: summary, benchmark and cost-ANOVA tables,
    error cuts (results/<study>/error_cuts.parquet) and error maps (results/<study>/resample/...)."""
    return Evidence(pd.read_parquet(inputs["summary"]), config,
                    cost_anova_time=_optional_csv(inputs.get("cost_anova_time")),
                    cost_anova_speedup=_optional_csv(inputs.get("cost_anova_speedup")),
                    benchmark=_optional_csv(inputs.get("benchmark")),
                    error_cuts=_by_study(inputs.get("error_cuts", []), 2),
                    error_maps=_by_study(inputs.get("error_maps", []), 3))


def reproduction_caption(table: pd.DataFrame) -> str:
    default = table[table["ablation"] == "default"]
    counts = default["verdict"].value_counts()
    tally = ", ".join(f"{counts.get(v, 0)} {v}" for v in (REPRODUCED, NOT_REPRODUCED, UNDERPOWERED, NOT_TESTED))
    ablations = sorted(set(table["ablation"]) - {"default"})
    varied = (f" Under the config's ablations ({', '.join(ablations)}) the findings their studies touch are judged "
              "again (column 'ablation'), and each default row's 'why' says which factor turns its verdict, or that "
              "none does." if ablations else "")
    return (f"One row per finding of the thesis (SPEC.md section 8, Tables 7 and 11) and study that tests it, by "
            f"default: {tally}.{varied} Verdicts follow the rule in each row (sign of the effect and a test at "
            f"alpha = {ALPHA}), never a judgement; 'measured' gives the effect with its 95% bootstrap interval (or OLS "
            f"interval), and 'detectable' the smallest effect the test finds with {POWER:.0%} power: a difference "
            "the thesis reports that this test could not have detected at the thesis's size is 'underpowered', not "
            "'not reproduced'. 'n' gives the models (or sets) per group; 'rests_on' the report item it comes from; "
            "'why' what a finding this config cannot test would need. The forest plot shows the same rows.")


def write_reproduction_pages(inputs: dict, config: dict, out: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Judge every finding and write `out["csv"]`/`out["html"]` and its forest plot `out["forest"]`; rate every
    study's best and fastest networks against the solver and write `out["pays_csv"]`/`out["pays_html"]`. Returns
    both tables."""
    evidence = evidence_of(inputs, config)
    table = reproduction_table(evidence)
    write_table(table, out["csv"], out["html"], "What this run reproduces", reproduction_caption(table))
    forest_plot(table, out["forest"])
    analysis = config["analysis"]
    bench = evidence.benchmark if evidence.benchmark is not None else pd.DataFrame(columns=["study", "model"])
    floors = {study: solver_floor(config, study, analysis["floor_sets"], config["seed"])
              for study in sorted(set(bench["study"]))}
    pays = pays_table(evidence.summary, bench, floors, analysis["pays_bound"])
    bound = ("each study's Euler error" if analysis["pays_bound"] is None
             else f"mean error <= {analysis['pays_bound']:g}")
    caption = (f"{verdict(pays)} Per study: the most accurate network and the fastest network within the bound "
               f"({bound}), each at its fastest build, beside the Euler solver (dt = {config['benchmark']['dt']:g}) "
               "on the same work. speedup = solver time / network time (above 1: the network is faster); both "
               "sides' fractions of their rooflines; the solver's own errors on that work as the floors: "
               "float32 vs float64 (rounding alone) and Euler vs the data solver (euler_error). A network pays "
               "when it is faster and within the bound. Network errors are eq. 3.3 on the validation set.")
    write_table(pays, out["pays_csv"], out["pays_html"], "Does a surrogate pay?", caption)
    return table, pays
