"""The simulate stage: a study's training, validation, region and marching sets, solved and written as Parquet.

`write_dataset` is what the rule `dataset` runs; the same config gives the same bytes.
"""

from .sampling import sample_box
from .simulate import SPLITS, make_dataset, solve_parameter_sets, solver_provenance, write_dataset

__all__ = [
    "SPLITS",
    "make_dataset",
    "sample_box",
    "solve_parameter_sets",
    "solver_provenance",
    "write_dataset",
]
