"""Snakemake script of rule `predictions_figure`: the best DDNN/PINN of each class variant of a study on its
validation set against the solver, high-error trajectories highlighted."""

import logging
import sys
from pathlib import Path

import pandas as pd

from fhnkit.analysis import study_predictions

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

inp, params, study = snakemake.input, snakemake.params, snakemake.wildcards.study  # noqa: F821
# problem A is one trajectory: its figure shows the training points too
train = pd.read_parquet(inp.train) if params.problem == "A" else None
dirs = {Path(p).parent.name: Path(p).parent for p in inp.weights}
path = study_predictions(pd.read_parquet(inp.summary), study, dirs, pd.read_parquet(inp.val),
                         snakemake.output[0], params.highlight, u_threshold=params.a,  # noqa: F821
                         train=train)
logging.info("predictions of %s -> %s", study, path)
