"""Snakemake script of rule `figures`: summary and histories -> PNG figures."""

import logging
import sys

import pandas as pd

from fhnkit import figures

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

out, params = snakemake.output, snakemake.params  # noqa: F821
summary = pd.read_parquet(snakemake.input.summary)  # noqa: F821
figures.accuracy_vs_neurons(summary, out.accuracy)
figures.error_vs_inference(summary, out.inference)
for (study, paths), path in zip(params.histories.items(), out.curves):
    figures.study_training_curves(summary, study, paths, path, params.per_class)
    logging.info("training curves of %s -> %s", study, path)
