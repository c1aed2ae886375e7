"""Snakemake script of rule `error_cuts`: a study's best networks' error over cuts of the solution space."""

import logging
import sys
from pathlib import Path

import pandas as pd

from fhnkit.analysis import cut_models, error_cuts_figure, message_figure, study_cuts
from fhnkit.nets import load_model

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

study = snakemake.wildcards.study  # noqa: F821
config = snakemake.config  # noqa: F821
chosen = cut_models(pd.read_parquet(snakemake.input.summary), study)  # noqa: F821
dirs = {Path(p).parent.name: Path(p).parent for p in snakemake.input.weights}  # noqa: F821
title = f"{study}: error over cuts of (U0, t)"
if not chosen:
    logging.warning("no model of %s trained successfully: the figure says so", study)
    message_figure(snakemake.output.figure, title, "no model of this study\ntrained successfully")  # noqa: F821
    pd.DataFrame().to_parquet(snakemake.output.table)  # noqa: F821
else:
    models = {f"{label}: {name}": load_model(dirs[name]) for label, name in chosen.items()}
    cuts = study_cuts(models, config, config["studies"][study])
    cuts.to_parquet(snakemake.output.table)  # noqa: F821
    for label, rows in cuts.groupby("model"):
        logging.info("%s: mean %.3e, max %.3e over %d points", label, rows["err"].mean(), rows["err"].max(), len(rows))
    error_cuts_figure(cuts, snakemake.output.figure, title, config["model"]["a"])  # noqa: F821
