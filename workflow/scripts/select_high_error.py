"""Snakemake script of checkpoint `select_high_error`: base model errors -> high-error points -> chunks."""

import logging
import sys
from pathlib import Path

from fhnkit.resampling import write_selection

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821 (snakemake is injected)
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

study, out = snakemake.params.study, snakemake.output  # noqa: F821
counts = write_selection(Path(snakemake.input.model).parent, snakemake.input.train, study,  # noqa: F821
                         study["resample"], snakemake.params.seed, out.centers, out.chunks)  # noqa: F821
logging.info("%d high-error points of %d (%s); %d new parameter sets", counts["n_centers"],
             counts["n_candidates"], study["resample"]["rule"], counts["n_new"])
