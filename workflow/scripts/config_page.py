"""Snakemake script of rule `config_page`: the validated config as an HTML page."""


from fhnkit.analysis import write_config_page
from fhnkit.joblog import log_to
from fhnkit.plan import config_hash

log_to(snakemake.log[0])
config = dict(snakemake.params.config)
write_config_page(config, snakemake.output[0], config_hash(config))
