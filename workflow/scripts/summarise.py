"""Snakemake script of rule `summarise`: metrics.json + bench.json -> summary table."""

import logging
import sys

from fhnkit.analysis import build_summary

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

summary = build_summary(list(snakemake.input.metrics), list(snakemake.input.bench))  # noqa: F821
summary.to_parquet(snakemake.output.parquet, index=False)  # noqa: F821
summary.to_csv(snakemake.output.csv, index=False)  # noqa: F821
logging.info("summary of %d models (%d failed)", len(summary), (summary["status"] != "ok").sum())
