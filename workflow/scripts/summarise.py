"""Snakemake script of rule `summarise`: metrics.json + bench.json -> summary table."""

import logging

from fhnkit.analysis import build_summary
from fhnkit.joblog import log_to

log_to(snakemake.log[0])

summary = build_summary(list(snakemake.input.metrics), list(snakemake.input.bench))
summary.to_parquet(snakemake.output.parquet, index=False)
summary.to_csv(snakemake.output.csv, index=False)
logging.info("summary of %d models (%d failed)", len(summary), (summary["status"] != "ok").sum())
