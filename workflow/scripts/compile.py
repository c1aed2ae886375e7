"""Snakemake script of rule `compile`: one trained model built and checked with the configured backends."""

import logging
import os
import sys
from pathlib import Path

from fhnkit.cluster import acquire_gpu
from fhnkit.cluster.handoff import take_compiled_from_fleet
from fhnkit.joblog import log_to
from fhnkit.plan.layout import fleet_compiled_dir

log_to(snakemake.log[0])

out = Path(snakemake.output[0]).parent
w = snakemake.wildcards
source = fleet_compiled_dir(w.study, w.model)  # compiled by the fleet that trained it: take the builds from there
if Path(source).is_dir():
    if take_compiled_from_fleet(source, out, snakemake.input.weights, snakemake.params.settings):
        logging.info("%s/%s: compiled by its fleet, moved from %s", w.study, w.model, source)
        sys.exit(0)
    logging.info("no builds of these weights and settings in %s (any others there removed): building here", source)

# Before anything initialises CUDA: take a free GPU slot (Snakemake run locally does not assign GPUs).
slot = acquire_gpu(snakemake.params.settings["device"])
logging.info("building on CUDA_VISIBLE_DEVICES=%s", os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"))

from fhnkit.inference import compile_model  # noqa: E402 (after the GPU is chosen)

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
