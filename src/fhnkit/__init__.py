"""fhnkit: neural-network surrogates for the FitzHugh-Nagumo cell model, reproducibly.

The package holds all logic of the pipeline; the Snakemake workflow only wires
files to the functions defined here.
"""

__version__ = "0.1.0"
