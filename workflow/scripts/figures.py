"""Snakemake script of rule `figures`: summary and histories -> PNG figures."""

import logging
from pathlib import Path

import pandas as pd

from fhnkit.analysis import accuracy_vs_neurons, error_vs_inference, iteration_cost, study_training_curves
from fhnkit.joblog import log_to

log_to(snakemake.log[0])

inp, out, params = snakemake.input, snakemake.output, snakemake.params
summary = pd.read_parquet(inp.summary)
accuracy_vs_neurons(summary, out.accuracy)
error_vs_inference(summary, out.inference)
iteration_cost(summary, out.iteration_cost)
histories = {}  # study -> {model: path}, from results/{study}/models/{model}/history.parquet
for path in map(Path, inp.histories):
    histories.setdefault(path.parts[-4], {})[path.parts[-2]] = path
for path in map(Path, out.curves):
    study = path.stem.removeprefix("training_curves_")
    study_training_curves(summary, study, histories.get(study, {}), path, params.per_class)
    logging.info("training curves of %s -> %s", study, path)
