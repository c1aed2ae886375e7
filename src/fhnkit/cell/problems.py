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


# Problem C's default (base, span) of I_app = base + span * K (the config schema's `k_to_i_app` default).
K_TO_I_APP = (0.08, 0.04)


def i_app_of_k(K, k_to_i_app=K_TO_I_APP):
    """Problem C's applied current for parameter K: I_app = base + span * K, (base, span) = k_to_i_app.

    The one place this map is written; works on floats, numpy arrays and torch tensors.
    """
    base, span = k_to_i_app
    return base + span * K


def i_app(study: dict, K=None):
    """Applied current for a study: a constant for A and B, the affine map of K (`i_app_of_k`) for C."""
    if study["problem"] == "C":
        if K is None:
            raise ValueError("problem C's applied current depends on K: pass K")
        return i_app_of_k(K, study["k_to_i_app"])
    return study["i_app"]


class AppliedCurrent:
    """A study's I_app as a function of a batch of network inputs (..., inputs): a constant for problems A
    and B, `i_app_of_k` of the batch's K column for C. Works on numpy arrays and torch tensors."""

    def __init__(self, constant: float | None = None, k_to_i_app: tuple[float, float] | None = None,
                 k_column: int | None = None):
        self.constant, self.k_to_i_app, self.k_column = constant, k_to_i_app, k_column

    def __call__(self, x):
        if self.constant is not None:
            return self.constant
        return i_app_of_k(x[..., self.k_column], self.k_to_i_app)

    def __repr__(self) -> str:
        if self.constant is not None:
            return f"AppliedCurrent({self.constant})"
        return f"AppliedCurrent(K column {self.k_column}, k_to_i_app={self.k_to_i_app})"


def applied_current(study: dict) -> AppliedCurrent:
    """A study's applied current as a function of its network inputs (`AppliedCurrent`)."""
    if study["problem"] == "C":
        return AppliedCurrent(k_to_i_app=tuple(study["k_to_i_app"]), k_column=input_columns(study).index("K"))
    return AppliedCurrent(constant=float(study["i_app"]))


def window_edges(t_max: float, n_windows: int) -> list[float]:
    """Edges 0 = t_0 < t_1 < ... < t_n = t_max of n equal time windows (model time units)."""
    return [float(x) for x in np.linspace(0.0, float(t_max), n_windows + 1)]


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
