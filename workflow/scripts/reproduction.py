"""Snakemake script of rule `reproduction`: what this run reproduces, and whether a surrogate pays."""

from fhnkit.analysis.reproduction_pages import write_reproduction_pages
from fhnkit.joblog import log_to

log_to(snakemake.log[0])

inputs = {key: value for key, value in snakemake.input.items()}
write_reproduction_pages(inputs, snakemake.params.config, dict(snakemake.output.items()))
