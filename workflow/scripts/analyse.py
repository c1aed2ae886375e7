"""Snakemake script of rule `analyse`: summary -> ANOVA, t-test and variance tables."""

import logging

import pandas as pd

from fhnkit.analysis import analysis_tables, write_table
from fhnkit.joblog import log_to

log_to(snakemake.log[0])

summary = pd.read_parquet(snakemake.input.summary)
out, params = snakemake.output, snakemake.params
tables = analysis_tables(summary, params.neuron_threshold, params.ttest_studies)
for name, (table, title, caption) in tables.items():
    write_table(table, out[f"{name}_csv"], out[f"{name}_html"], title, caption)
    logging.info("%s: %d rows", name, len(table))
