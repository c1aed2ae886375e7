"""Snakemake script of rule `resampled_set`: the solved chunks -> one high-error data set."""

import logging
import sys

import pandas as pd

from fhnkit.artifacts import read_parquet_meta, write_parquet
from fhnkit.cell import INPUTS, OUTPUTS
from fhnkit.resampling import merge_solved

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

paths = list(snakemake.input)  # noqa: F821
columns = ["traj", *INPUTS[snakemake.params.problem], *OUTPUTS]  # noqa: F821
df = merge_solved([pd.read_parquet(p) for p in paths], columns)
meta = read_parquet_meta(paths[0]) if paths else {"n_new": 0}
write_parquet(df, snakemake.output[0], {**meta, "chunks": len(paths)})  # noqa: F821
logging.info("%d trajectories from %d chunks", df["traj"].nunique() if len(df) else 0, len(paths))
