"""Snakemake script of rule `dataset`: one split of a study's data as Parquet."""

import logging
import sys

from fhnkit.datasets import write_dataset

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

df = write_dataset(snakemake.config, snakemake.wildcards.study, snakemake.wildcards.split,  # noqa: F821
                   snakemake.output[0])  # noqa: F821
logging.info("wrote %d rows to %s", len(df), snakemake.output[0])  # noqa: F821
