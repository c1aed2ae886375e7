"""Snakemake script of rule `resampling_table`: one row per study with resampling."""

import logging

import pandas as pd

from fhnkit.analysis import write_table
from fhnkit.artifacts import read_json
from fhnkit.joblog import log_to

log_to(snakemake.log[0])

COLUMNS = ["study", "rule", "n_candidates", "n_centers", "n_new", "mean_err_before", "mean_err_after",
           "mean_err_ratio", "max_err_before", "max_err_after"]
table = pd.DataFrame([read_json(p) for p in snakemake.input], columns=COLUMNS)
write_table(table, snakemake.output.csv, snakemake.output.html, "High-error resampling",
            "Base model vs the same network retrained with the high-error set: validation error per trajectory "
            "(eq. 3.3; an ITNN's over full rollouts).")
logging.info("%d studies", len(table))
