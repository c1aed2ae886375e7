"""The study problems of SPEC.md section 2 as data: inputs, outputs, ranges, I_app.

A study in the config names a problem (A, B or C) plus its own ranges and
time domain; everything downstream asks this module what the network's
inputs are and how a parameter set maps to the model's applied current.
"""

from __future__ import annotations

import numpy as np

from .model import FHNParams

INPUTS = {"A": ["t"], "B": ["t", "U0", "W0"], "C": ["t", "U0", "W0", "K"]}
OUTPUTS = ["U", "W"]
PARAM_KEYS = {"U0": "u0", "W0": "w0", "K": "K"}  # input column -> key of study["ranges"]


def input_columns(study: dict) -> list[str]:
    """Network input columns of a study, time first."""
    return list(INPUTS[study["problem"]])


def parameter_columns(study: dict) -> list[str]:
    """The inputs that define one trajectory (everything but t); empty for problem A."""
    return input_columns(study)[1:]


def input_bounds(study: dict) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bound of each input column (t in model time units)."""
    lo, hi = [0.0], [float(study["t_max"])]
    for col in parameter_columns(study):
        a, b = study["ranges"][PARAM_KEYS[col]]
        lo.append(float(a))
        hi.append(float(b))
    return np.array(lo), np.array(hi)


def i_app(study: dict, K=None):
    """Applied current for a study: a constant for A and B, the affine map of K for C."""
    if study["problem"] == "C":
        base, span = study["k_to_i_app"]
        return base + span * K
    return study["i_app"]


def fhn_params(config: dict) -> FHNParams:
    """The FHN model parameters of a validated config."""
    return FHNParams.from_mapping(config["model"])


def region_bounds(study: dict, region: dict) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bound of each input column inside a region (inputs it leaves out span the study)."""
    lo, hi = input_bounds(study)
    keys = ["t"] + [PARAM_KEYS[c] for c in parameter_columns(study)]
    for i, key in enumerate(keys):
        if key in region["ranges"]:
            lo[i], hi[i] = region["ranges"][key]
    return lo, hi
