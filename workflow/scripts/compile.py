"""Snakemake script of rule `compile`: one trained model built and checked with the configured backends."""

import logging
import os
from pathlib import Path

from fhnkit.cluster import acquire_gpu
from fhnkit.joblog import log_to

log_to(snakemake.log[0])

# Before anything initialises CUDA: take a free GPU slot (Snakemake run locally does not assign GPUs).
slot = acquire_gpu(snakemake.params.settings["device"])
logging.info("building on CUDA_VISIBLE_DEVICES=%s", os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"))

from fhnkit.inference import compile_model  # noqa: E402 (after the GPU is chosen)

out = Path(snakemake.output[0]).parent
record = compile_model(Path(snakemake.input.metrics).parent, snakemake.input.val, out,
                       snakemake.params.settings)
for build in record["builds"]:
    if build["check"].get("reference"):
        logging.info("%s %s on %s: the reference of the checks", build["backend"], build["precision"], build["device"])
    else:
        logging.info("%s %s on %s: max |compiled - eager| = %.2e (tolerance %.2e)", build["backend"],
                     build["precision"], build["device"], build["check"]["max_err"], build["check"]["tolerance"])
for what, why in record["skipped"].items():
    logging.info("skipped %s: %s", what, why)
