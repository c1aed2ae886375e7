"""Snakemake script of rule `train`: one model of the grid."""

import logging
import os
import sys
from pathlib import Path

from fhnkit.cluster import acquire_gpu
from fhnkit.cluster.handoff import take_from_fleet, take_shared_model
from fhnkit.joblog import log_to
from fhnkit.plan.layout import fleet_model_dir
from fhnkit.plan.model_spec import ModelSpec

log_to(snakemake.log[0])

# the whole spec: what makes the model (params.identity) and how it runs
spec = ModelSpec.from_mapping(snakemake.params.spec.value)
out_dir = Path(snakemake.output.metrics).parent
if snakemake.input.get("shared"):  # an ablation's variant's model that its study trained: copied from there
    take_shared_model(Path(snakemake.input.shared).parent, out_dir, spec.to_dict())
    logging.info("%s: the same model as %s's, copied from there", spec.name, snakemake.input.shared)
    sys.exit(0)
if snakemake.input.get("fleet"):  # after the study's fleet job: take the model from there if it trained it
    fleet_dir = fleet_model_dir(spec.study, spec.model)
    if take_from_fleet(fleet_dir, out_dir, spec.config_hash):
        logging.info("%s: trained by its fleet, moved from %s", spec.name, fleet_dir)
        sys.exit(0)
    logging.info("%s is not in %s (no fleets, deleted since, or it failed there): training it alone",
                 spec.model, fleet_dir)
# Before torch initialises CUDA: on a machine with several GPUs, take a free one for this job
# (held until the job ends; Snakemake run locally does not assign GPUs itself).
slot = acquire_gpu(spec.training.device)
logging.info("training %s (%s, %s) on CUDA_VISIBLE_DEVICES=%s", spec.name, spec.cls, spec.arch,
             os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"))

from fhnkit.training import train_model  # noqa: E402 (after the GPU is chosen)

inputs = snakemake.input
metrics = train_model(spec, inputs.train, inputs.val, out_dir,
                      region_path=inputs.get("region"), march_path=inputs.get("march"),
                      resampled_path=inputs.get("resampled"))
if metrics["status"] == "ok":
    logging.info("done: mean error %.3e, max error %.3e, %.2e s/iteration", metrics["mean_err"],
                 metrics["max_err"], metrics["iter_time_s"])
else:
    logging.error("recorded as failed: %s", metrics["error"])
