"""Snakemake script of rule `benchmark_table`: every model, set count and build beside the solver."""

import logging

from fhnkit.analysis import BENCHMARK_CAPTION, PAGE_COLUMNS, benchmark_table, write_table
from fhnkit.joblog import log_to

log_to(snakemake.log[0])

table = benchmark_table(snakemake.input)
write_table(table, snakemake.output.csv, snakemake.output.html, "Inference benchmark", BENCHMARK_CAPTION,
            PAGE_COLUMNS)
logging.info("%d rows (model x set count x build)", len(table))
