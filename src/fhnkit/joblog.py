"""A job's log: where a workflow script (or an MPI rank's job) sends its messages."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(name)s %(message)s"


def log_to(path) -> None:
    """Send this process's stderr (progress bars, warnings, a traceback) and its logging to `path`,
    line-buffered, for the rest of the process: the job's Snakemake `log:` file."""
    sys.stderr = open(path, "w", buffering=1)  # noqa: SIM115 (open until the process ends, as stderr is)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format=FORMAT, force=True)
