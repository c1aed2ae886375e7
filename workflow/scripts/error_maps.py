"""Snakemake script of rule `error_maps`: validation errors before/after resampling, figure and summary row."""

import logging
from pathlib import Path

import pandas as pd

from fhnkit.analysis import error_maps
from fhnkit.artifacts import read_parquet_meta, versions, write_json, write_parquet
from fhnkit.joblog import log_to
from fhnkit.resampling import compare_error_maps, resampling_summary

log_to(snakemake.log[0])

inp, out, study = snakemake.input, snakemake.output, snakemake.wildcards.study
maps = compare_error_maps(Path(inp.base).parent, Path(inp.retrained).parent, pd.read_parquet(inp.val),
                          snakemake.params.problem)
write_parquet(maps, out.maps, {"study": study, "versions": versions()})
row = resampling_summary(study, maps, read_parquet_meta(inp.centers))
write_json(row, out.row)
error_maps(maps, pd.read_parquet(inp.centers), out.figure, f"{study}: validation error before and after "
           f"resampling ({row['n_new']} new parameter sets)")
logging.info("mean validation error %.3e -> %.3e", row["mean_err_before"], row["mean_err_after"])
