"""Snakemake script of rule `benchmark`: every trained network of a study against the Euler solver."""

import logging
import sys
from pathlib import Path

from fhnkit.bench import benchmark_study

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

p = snakemake.params  # noqa: F821
benchmark_study([Path(s).parent for s in snakemake.input.specs], p.settings, p.fhn, p.bench, p.seed,  # noqa: F821
                snakemake.wildcards.study, snakemake.output[0])  # noqa: F821
