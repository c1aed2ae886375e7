"""Snakemake script of rule `benchmark`: a trained network against the Euler solver."""

import logging
import sys
from pathlib import Path

from fhnkit.artifacts import read_json, write_json
from fhnkit.bench import benchmark_model
from fhnkit.mlp import load_model
from fhnkit.model import FHNParams

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

p, w = snakemake.params, snakemake.wildcards  # noqa: F821
model = load_model(Path(snakemake.input.spec).parent)  # noqa: F821
record = benchmark_model(model, p.settings, FHNParams.from_mapping(p.fhn), p.bench, p.seed, w.study)
record.update(study=w.study, model=w.model, config_hash=read_json(snakemake.input.metrics).get("config_hash"))  # noqa: F821
write_json(record, snakemake.output[0])  # noqa: F821
logging.info("network %.3e s, solver %.3e s (median of %d)", record["inference_time_s"]["median"],
             record["solver_time_s"]["median"], p.bench["repeats"])
