"""Snakemake script of rule `figures`: summary and histories -> PNG figures."""

import logging
import sys
from pathlib import Path

import pandas as pd

from fhnkit.analysis import figures

from fhnkit.analysis import study_predictions

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

inp, out, params = snakemake.input, snakemake.output, snakemake.params  # noqa: F821
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
