"""The FitzHugh-Nagumo cell model and the study problems posed on it (SPEC.md sections 1-2).

`fhn_rhs` is the model's right-hand side, written once: the numba and CUDA solvers and the PINN
residual all evaluate it. `problems` says what a study's network inputs and outputs are, their
bounds, and how a parameter set maps to the applied current I_app. Light: numpy only.
"""

from .model import FHNParams, fhn_rhs, rhs
from .problems import (
    INPUTS,
    K_TO_I_APP,
    OUTPUTS,
    PARAM_KEYS,
    fhn_params,
    i_app,
    i_app_of_k,
    input_bounds,
    input_columns,
    parameter_columns,
    region_bounds,
)

__all__ = [
    "INPUTS",
    "K_TO_I_APP",
    "OUTPUTS",
    "PARAM_KEYS",
    "FHNParams",
    "fhn_params",
    "fhn_rhs",
    "i_app",
    "i_app_of_k",
    "input_bounds",
    "input_columns",
    "parameter_columns",
    "region_bounds",
    "rhs",
]
