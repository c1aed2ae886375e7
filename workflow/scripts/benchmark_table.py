"""Snakemake script of rule `benchmark_table`: every model, set count and build beside the solver."""

import logging
import sys

from fhnkit.analysis import BENCHMARK_CAPTION, PAGE_COLUMNS, benchmark_table, write_table

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

table = benchmark_table(snakemake.input)  # noqa: F821
write_table(table, snakemake.output.csv, snakemake.output.html, "Inference benchmark", BENCHMARK_CAPTION,  # noqa: F821
            PAGE_COLUMNS)
logging.info("%d rows (model x set count x build)", len(table))
