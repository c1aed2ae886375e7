"""Snakemake script of checkpoint `select_high_error`: base model errors -> high-error points -> chunks."""

import logging
from pathlib import Path

from fhnkit.joblog import log_to
from fhnkit.resampling import write_selection

log_to(snakemake.log[0])

study, out = snakemake.params.study, snakemake.output
counts = write_selection(Path(snakemake.input.model).parent, snakemake.input.train, study,
                         study["resample"], snakemake.params.seed, out.centers, out.chunks)
logging.info("%d high-error points of %d (%s); %d new parameter sets", counts["n_centers"],
             counts["n_candidates"], study["resample"]["rule"], counts["n_new"])
