"""Snakemake script of rule `compile`: one trained model built and checked with the configured backends."""

import logging
import sys
from pathlib import Path

from fhnkit.inference import compile_model

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

out = Path(snakemake.output[0]).parent  # noqa: F821
record = compile_model(Path(snakemake.input.metrics).parent, snakemake.input.val, out,  # noqa: F821
                       snakemake.params.settings)  # noqa: F821
for build in record["builds"]:
    logging.info("%s %s on %s: max |compiled - eager| = %.2e (tolerance %.0e)", build["backend"],
                 build["precision"], build["device"], build["check"]["max_err"], build["check"]["tolerance"])
for what, why in record["skipped"].items():
    logging.info("skipped %s: %s", what, why)
