"""Snakemake script of rule `rollout_figure`: the best ITNN of a study fed back against the solver."""

import logging
import sys
from pathlib import Path

import pandas as pd

from fhnkit.analysis import rollout, successful
from fhnkit.nets import load_model

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

study = snakemake.wildcards.study  # noqa: F821
summary = successful(pd.read_parquet(snakemake.input.summary))  # noqa: F821
itnns = summary[(summary["study"] == study) & (summary["class"] == "itnn")]
dirs = {Path(p).parent.name: Path(p).parent for p in snakemake.input.weights}  # noqa: F821
if itnns.empty:
    sys.exit(f"no ITNN of study {study} trained successfully: nothing to roll out")
best = itnns.loc[itnns["mean_err"].idxmin(), "model"]
logging.info("rolling out %s (rollout mean error %.3e)", best, itnns["mean_err"].min())
rollout(load_model(dirs[best]), pd.read_parquet(snakemake.input.val), snakemake.params.problem,  # noqa: F821
        snakemake.output[0], f"{study}: {best} fed back from (U0, W0) vs the solver")  # noqa: F821
