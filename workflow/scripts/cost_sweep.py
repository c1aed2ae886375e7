"""Snakemake script of rule `cost_sweep`: build and time every architecture of the sweep."""

import logging

from fhnkit.cluster import acquire_gpu
from fhnkit.joblog import log_to

log_to(snakemake.log[0])

config = snakemake.params.config
slot = acquire_gpu(config["compile"]["device"])  # a GPU of its own, before CUDA is initialised

from fhnkit.analysis import write_timings_page  # noqa: E402 (after the GPU is chosen)
from fhnkit.inference import run_sweep, write_sweep  # noqa: E402
from fhnkit.plan import config_hash  # noqa: E402

timings, meta = run_sweep(config)
logging.info("plan on %s: %s; skipped: %s", meta["device"], meta["builds"], meta["skipped"])
out = snakemake.output
write_sweep(timings, meta, out.parquet, config_hash(config))
write_timings_page(timings, meta, out.csv, out.html)
