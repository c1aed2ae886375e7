"""Snakemake script of rule `train_fleet`: a study's fleets of one family, each of up to `fleet` models
trained together (fhnkit.cluster.fleet_job)."""

import logging
import os

from fhnkit.joblog import log_to
from fhnkit.plan.layout import fleet_compiled_dir, fleet_dir, fleet_model_dir
from fhnkit.plan.model_spec import ModelSpec

log_to(snakemake.log[0])

fleets = snakemake.params.fleets.value  # {fleet: [model names]}; empty with `fleet: 1`
family = snakemake.params.specs.value  # every model of the study's family, in the order of params.data
data = {spec["model"]: paths for spec, paths in zip(family, snakemake.params.data, strict=True)}
specs = {spec["model"]: ModelSpec.from_mapping(spec) for spec in family}
if not fleets:
    logging.info("no fleets (config fleet: 1): each model's own job trains it")
else:
    from fhnkit.cluster import acquire_gpu

    first = specs[next(iter(fleets.values()))[0]]
    slot = acquire_gpu(first.training.device)
    workers = max(1, snakemake.threads // first.training.threads)
    logging.info("training %d models of %s as %d fleet(s), up to %d at once, on CUDA_VISIBLE_DEVICES=%s",
                 sum(map(len, fleets.values())), first.study, len(fleets), workers,
                 os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"))

    from fhnkit.cluster.fleet_job import run_fleets  # noqa: E402 (after the GPU is chosen)

    study = first.study
    jobs = {name: [(specs[m], data[m], fleet_model_dir(study, m), fleet_compiled_dir(study, m)) for m in models]
            for name, models in fleets.items()}
    run_fleets(jobs, fleet_dir(study), snakemake.params.compile.value, workers)
