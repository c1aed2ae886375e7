"""Snakemake script of rule `cost_sweep`: build and time every architecture of the sweep."""

import logging
import sys

from fhnkit.analysis import write_timings_page
from fhnkit.inference import run_sweep, write_sweep
from fhnkit.plan import config_hash

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

config = snakemake.params.config  # noqa: F821
timings, meta = run_sweep(config)
logging.info("plan on %s: %s; skipped: %s", meta["device"], meta["builds"], meta["skipped"])
out = snakemake.output  # noqa: F821
write_sweep(timings, meta, out.parquet, config_hash(config))
write_timings_page(timings, meta, out.csv, out.html)
