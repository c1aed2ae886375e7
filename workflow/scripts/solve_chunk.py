"""Snakemake script of rule `solve_resample_chunk`: new parameter sets -> solved trajectories."""

import logging

import pandas as pd

from fhnkit.artifacts import read_parquet_meta, write_parquet
from fhnkit.cell import parameter_columns
from fhnkit.datasets import solve_parameter_sets, solver_provenance
from fhnkit.joblog import log_to

log_to(snakemake.log[0])

config = snakemake.params.config.value  # the study's data settings and the data solver
study = config["studies"][snakemake.wildcards.study]
params = pd.read_parquet(snakemake.input[0])[parameter_columns(study)].to_numpy()
df = solve_parameter_sets(config, study, params)
meta = {**read_parquet_meta(snakemake.input[0]), "data_solver": solver_provenance(config)}
write_parquet(df, snakemake.output[0], meta)
logging.info("solved %d parameter sets", len(params))
