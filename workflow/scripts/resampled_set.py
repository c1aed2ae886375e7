"""Snakemake script of rule `resampled_set`: the solved chunks -> one high-error data set."""

import logging

import pandas as pd

from fhnkit.artifacts import read_parquet_meta, write_parquet
from fhnkit.cell import INPUTS, OUTPUTS
from fhnkit.joblog import log_to
from fhnkit.resampling import merge_solved

log_to(snakemake.log[0])

paths = list(snakemake.input)
columns = ["traj", *INPUTS[snakemake.params.problem], *OUTPUTS]
df = merge_solved([pd.read_parquet(p) for p in paths], columns)
meta = read_parquet_meta(paths[0]) if paths else {"n_new": 0}
write_parquet(df, snakemake.output[0], {**meta, "chunks": len(paths)})
logging.info("%d trajectories from %d chunks", df["traj"].nunique() if len(df) else 0, len(paths))
