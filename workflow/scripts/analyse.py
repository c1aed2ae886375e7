"""Snakemake script of rule `analyse`: summary -> ANOVA, t-test and variance tables."""

import logging
import sys

import pandas as pd

from fhnkit.analysis import analysis_tables, write_table

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

summary = pd.read_parquet(snakemake.input.summary)  # noqa: F821
out, params = snakemake.output, snakemake.params  # noqa: F821
tables = analysis_tables(summary, params.neuron_threshold, params.ttest_studies)
for name, (table, title, caption) in tables.items():
    write_table(table, out[f"{name}_csv"], out[f"{name}_html"], title, caption)
    logging.info("%s: %d rows", name, len(table))
