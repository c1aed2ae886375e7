"""Snakemake script of rule `train`: one model of the grid."""

import logging
import sys
from pathlib import Path

from fhnkit.train import train_model

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

spec = snakemake.params.spec  # noqa: F821
logging.info("training %s/%s (%s, %s)", spec["study"], spec["model"], spec["class"], spec["arch"])
inputs = snakemake.input  # noqa: F821
metrics = train_model(spec, inputs.train, inputs.val, Path(snakemake.output.metrics).parent,  # noqa: F821
                      region_path=inputs.get("region"), march_path=inputs.get("march"))
if metrics["status"] == "ok":
    logging.info("done: mean error %.3e, max error %.3e, %.2e s/iteration", metrics["mean_err"],
                 metrics["max_err"], metrics["iter_time_s"])
else:
    logging.error("recorded as failed: %s", metrics["error"])
