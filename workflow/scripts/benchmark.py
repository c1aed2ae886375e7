"""Snakemake script of rule `benchmark`: every trained network of a study against the Euler solver."""

import logging
import sys
from pathlib import Path

from fhnkit.inference import benchmark_study

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

p = snakemake.params  # noqa: F821
inputs = snakemake.input  # noqa: F821
benchmark_study([Path(s).parent for s in inputs.specs], p.settings, p.fhn, p.bench, p.seed,
                snakemake.wildcards.study, snakemake.output[0],  # noqa: F821
                compiled_dirs=[Path(c).parent for c in inputs.compiled], compile_settings=p.compile)
