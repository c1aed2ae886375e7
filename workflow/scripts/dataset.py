"""Snakemake script of rule `dataset`: one split of a study's data as Parquet."""

import logging

from fhnkit.datasets import write_dataset
from fhnkit.joblog import log_to

log_to(snakemake.log[0])

df = write_dataset(snakemake.params.config.value, snakemake.wildcards.study, snakemake.wildcards.split,
                   snakemake.output[0], source=snakemake.input[0] if snakemake.input else None)
logging.info("wrote %d rows to %s", len(df), snakemake.output[0])
