"""Snakemake script of rule `compile`: one trained model built and checked with the configured backends."""

import logging
from pathlib import Path

from fhnkit.inference import compile_model
from fhnkit.joblog import log_to

log_to(snakemake.log[0])

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
