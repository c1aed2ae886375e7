"""The FitzHugh-Nagumo cell model (SPEC.md section 1).

    dU/dt = k * (U (U - a)(1 - U) - W + I_app)
    dW/dt = epsilon * (beta U - gamma W)

Time is in the model's dimensionless units; U and W are dimensionless.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np


@dataclass(frozen=True)
class FHNParams:
    """Parameters of the FHN model; `k` multiplies the whole U bracket."""

    k: float = 10.0
    a: float = 0.4
    epsilon: float = 0.2
    beta: float = 0.2
    gamma: float = 0.8

    @classmethod
    def from_mapping(cls, mapping: dict | None) -> "FHNParams":
        """Build from a config mapping, ignoring nothing: unknown keys are an error."""
        mapping = dict(mapping or {})
        known = {f.name for f in fields(cls)}
        unknown = set(mapping) - known
        if unknown:
            raise ValueError(f"unknown FHN parameter(s) {sorted(unknown)}; allowed: {sorted(known)}")
        return cls(**{k: float(v) for k, v in mapping.items()})

    def as_dict(self) -> dict:
        return asdict(self)


def rhs(u, w, i_app, p: FHNParams):
    """Right-hand side (dU/dt, dW/dt); works on floats, numpy arrays and torch tensors."""
    du = p.k * (u * (u - p.a) * (1.0 - u) - w + i_app)
    dw = p.epsilon * (p.beta * u - p.gamma * w)
    return du, dw


def i_app_from_k_param(kparam, base: float = 0.08, span: float = 0.04):
    """Problem C's map from its parameter K in [0, 1] to the applied current I_app."""
    return base + span * np.asarray(kparam) if not hasattr(kparam, "detach") else base + span * kparam
