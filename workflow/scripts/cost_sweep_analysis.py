"""Snakemake script of rule `cost_sweep_analysis`: sweep timings -> eq. 4.3 ANOVAs and Figures 39-40."""

import logging

import pandas as pd

from fhnkit.analysis import compile_speedup, cost_sweep_tables, inference_vs_neurons, write_table
from fhnkit.artifacts import read_parquet_meta
from fhnkit.joblog import log_to

log_to(snakemake.log[0])

out, params = snakemake.output, snakemake.params
timings = pd.read_parquet(snakemake.input.timings)
meta = read_parquet_meta(snakemake.input.timings)
tables, labels = cost_sweep_tables(timings, meta, params.sweep, params.bench)
for name, (table, title, caption) in tables.items():
    write_table(table, out[f"{name}_csv"], out[f"{name}_html"], title, caption)
    logging.info("%s: %d rows", name, len(table))
inference_vs_neurons(timings, out.time_figure)
compile_speedup(timings, out.speedup_figure, labels)
