"""Snakemake script of rule `rollout_figure`: the best ITNN of a study fed back against the solver."""

import logging
import sys
from pathlib import Path

import pandas as pd

from fhnkit.analysis import build_summary, rollout, successful
from fhnkit.joblog import log_to
from fhnkit.nets import load_model

log_to(snakemake.log[0])

study = snakemake.wildcards.study
summary = successful(build_summary(list(snakemake.input.metrics), []))
itnns = summary[(summary["study"] == study) & (summary["class"] == "itnn")]
dirs = {Path(p).parent.name: Path(p).parent for p in snakemake.input.weights}
if itnns.empty:
    sys.exit(f"no ITNN of study {study} trained successfully: nothing to roll out")
best = itnns.loc[itnns["mean_err"].idxmin(), "model"]
logging.info("rolling out %s (rollout mean error %.3e)", best, itnns["mean_err"].min())
rollout(load_model(dirs[best]), pd.read_parquet(snakemake.input.val), snakemake.params.problem,
        snakemake.output[0], f"{study}: {best} fed back from (U0, W0) vs the solver")
