"""Snakemake script of rule `solve_resample_chunk`: new parameter sets -> solved trajectories."""

import logging
import sys

import pandas as pd

from fhnkit.artifacts import read_parquet_meta, write_parquet
from fhnkit.cell import parameter_columns
from fhnkit.datasets import solve_parameter_sets

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

study = snakemake.params.study  # noqa: F821
params = pd.read_parquet(snakemake.input[0])[parameter_columns(study)].to_numpy()  # noqa: F821
df = solve_parameter_sets(snakemake.config, study, params)  # noqa: F821
meta = {**read_parquet_meta(snakemake.input[0]), "data_solver": snakemake.config["data_solver"]}  # noqa: F821
write_parquet(df, snakemake.output[0], meta)  # noqa: F821
logging.info("solved %d parameter sets", len(params))
