"""Snakemake script of rule `config_page`: the validated config as an HTML page."""

import sys

from fhnkit.analysis import write_config_page
from fhnkit.plan import config_hash

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
config = dict(snakemake.params.config)  # noqa: F821
write_config_page(config, snakemake.output[0], config_hash(config))  # noqa: F821
