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

from fhnkit.inference import compile_models  # noqa: E402 (after the GPU is chosen)
from fhnkit.training import train_fleet  # noqa: E402

jobs = list(zip(specs, snakemake.params.data, snakemake.params.dirs, strict=True))
results = train_fleet(jobs, checkpoint_dir=snakemake.params.checkpoints)
for spec, result in zip(specs, results, strict=True):
    if isinstance(result, Exception):  # on_divergence: fail; the model's own job trains it again alone
        logging.error("%s: %s", spec["model"], result)
    elif result["status"] == "ok":
        logging.info("%s: mean error %.3e, max error %.3e", spec["model"], result["mean_err"], result["max_err"])
    else:
        logging.error("%s recorded as failed: %s", spec["model"], result["error"])

# Compile every finished model here too (one import of the backends for all); each model's `compile` job then
# moves its builds into place. The compile settings come from the config, not from params, so that changing
# them reruns the compile jobs (which then build alone), never the fleet.
finished = [(directory, data["val"], compiled) for spec, result, data, directory, compiled
            in zip(specs, results, snakemake.params.data, snakemake.params.dirs, snakemake.params.compiled, strict=True)
            if not isinstance(result, Exception) and result["status"] == "ok"]
for (directory, _, _), built in zip(finished, compile_models(finished, snakemake.config["compile"]), strict=True):
    if not isinstance(built, Exception):
        names = ", ".join(f"{b['backend']}-{b['precision']}" for b in built["builds"])
        logging.info("%s compiled: %s", directory, names)
