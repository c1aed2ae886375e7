"""Snakemake script of rule `predictions_figure`: the best DDNN/PINN of each class variant of a study on its
validation set against the solver, high-error trajectories highlighted."""

import logging
from pathlib import Path

import pandas as pd

from fhnkit.analysis import build_summary, study_predictions
from fhnkit.joblog import log_to

log_to(snakemake.log[0])

inp, params, study = snakemake.input, snakemake.params, snakemake.wildcards.study
# problem A is one trajectory: its figure shows the training points too
train = pd.read_parquet(inp.train) if params.problem == "A" else None
dirs = {Path(p).parent.name: Path(p).parent for p in inp.weights}
path = study_predictions(build_summary(list(inp.metrics), []), study, dirs, pd.read_parquet(inp.val),
                         snakemake.output[0], params.highlight, u_threshold=params.a,
                         train=train)
logging.info("predictions of %s -> %s", study, path)
