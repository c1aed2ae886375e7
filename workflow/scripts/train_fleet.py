"""Snakemake script of rule `train_fleet`: up to `fleet` models of a study trained together."""

import logging
import os

from fhnkit.cluster import acquire_gpu
from fhnkit.joblog import log_to

log_to(snakemake.log[0])

specs = snakemake.params.specs
slot = acquire_gpu(specs[0]["training"].get("device", "auto"))
logging.info("training %d models of %s as a fleet on CUDA_VISIBLE_DEVICES=%s", len(specs), specs[0]["study"],
             os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"))

from fhnkit.training import train_fleet  # noqa: E402 (after the GPU is chosen)

jobs = list(zip(specs, snakemake.params.data, snakemake.params.dirs, strict=True))
results = train_fleet(jobs, checkpoint_dir=snakemake.params.checkpoints)
for spec, result in zip(specs, results, strict=True):
    if isinstance(result, Exception):  # on_divergence: fail; the model's own job trains it again alone
        logging.error("%s: %s", spec["model"], result)
    elif result["status"] == "ok":
        logging.info("%s: mean error %.3e, max error %.3e", spec["model"], result["mean_err"], result["max_err"])
    else:
        logging.error("%s recorded as failed: %s", spec["model"], result["error"])
