"""Snakemake script of rule `error_cuts`: a study's best networks' error over cuts of the solution space."""

import logging
from pathlib import Path

import pandas as pd

from fhnkit.analysis import build_summary, cut_models, error_cuts_figure, message_figure, study_cuts
from fhnkit.joblog import log_to
from fhnkit.nets import load_model

log_to(snakemake.log[0])

study = snakemake.wildcards.study
config = snakemake.params.config.value  # the study's data settings and the data solver (the cuts' truth)
chosen = cut_models(build_summary(list(snakemake.input.metrics), []), study)
dirs = {Path(p).parent.name: Path(p).parent for p in snakemake.input.weights}
title = f"{study}: error over cuts of (U0, t)"
if not chosen:
    logging.warning("no model of %s trained successfully: the figure says so", study)
    message_figure(snakemake.output.figure, title, "no model of this study\ntrained successfully")
    pd.DataFrame().to_parquet(snakemake.output.table)
else:
    models = {f"{label}: {name}": load_model(dirs[name]) for label, name in chosen.items()}
    cuts = study_cuts(models, config, config["studies"][study])
    cuts.to_parquet(snakemake.output.table)
    for label, rows in cuts.groupby("model"):
        logging.info("%s: mean %.3e, max %.3e over %d points", label, rows["err"].mean(), rows["err"].max(), len(rows))
    error_cuts_figure(cuts, snakemake.output.figure, title, config["model"]["a"])
