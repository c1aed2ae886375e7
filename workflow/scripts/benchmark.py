"""Snakemake script of rule `benchmark`: every trained network of a study against the Euler solver."""

from pathlib import Path

from fhnkit.cluster import acquire_gpu
from fhnkit.joblog import log_to

log_to(snakemake.log[0])

p = snakemake.params
slot = acquire_gpu(p.compile["device"])  # a GPU of its own, before CUDA is initialised

from fhnkit.inference import benchmark_study  # noqa: E402 (after the GPU is chosen)

inputs = snakemake.input
benchmark_study([Path(s).parent for s in inputs.specs], p.settings, p.fhn, p.bench, p.seed,
                snakemake.wildcards.study, snakemake.output[0],
                compiled_dirs=[Path(c).parent for c in inputs.compiled], compile_settings=p.compile)
