"""Snakemake script of rule `cost_sweep`: build and time every architecture of the sweep."""

import logging

from fhnkit.analysis import write_timings_page
from fhnkit.inference import run_sweep, write_sweep
from fhnkit.joblog import log_to
from fhnkit.plan import config_hash

log_to(snakemake.log[0])

config = snakemake.params.config
timings, meta = run_sweep(config)
logging.info("plan on %s: %s; skipped: %s", meta["device"], meta["builds"], meta["skipped"])
out = snakemake.output
write_sweep(timings, meta, out.parquet, config_hash(config))
write_timings_page(timings, meta, out.csv, out.html)
