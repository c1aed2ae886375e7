"""fhnkit: neural-network surrogates for the FitzHugh-Nagumo cell model, reproducibly.

The package holds all logic of the pipeline; the Snakemake workflow only wires
files to the functions defined here.
"""

from ._vector_width import prefer_wide_vectors

__version__ = "0.1.0"
WIDE_VECTORS = prefer_wide_vectors()  # before anything imports numba
