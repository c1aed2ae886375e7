"""The FitzHugh-Nagumo cell model (SPEC.md section 1).

    dU/dt = k * (U (U - a)(1 - U) - W + I_app)
    dW/dt = epsilon * (beta U - gamma W)

Time is in the model's dimensionless units; U and W are dimensionless.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class FHNParams:
    """Parameters of the FHN model; `k` multiplies the whole U bracket."""

    k: float = 10.0
    a: float = 0.4
    epsilon: float = 0.2
    beta: float = 0.2
    gamma: float = 0.8

    @classmethod
    def from_mapping(cls, mapping: dict | None) -> FHNParams:
        """Build from a config mapping, ignoring nothing: unknown keys are an error."""
        mapping = dict(mapping or {})
        known = {f.name for f in fields(cls)}
        unknown = set(mapping) - known
        if unknown:
            raise ValueError(f"unknown FHN parameter(s) {sorted(unknown)}; allowed: {sorted(known)}")
        return cls(**{k: float(v) for k, v in mapping.items()})

    def as_dict(self) -> dict:
        return asdict(self)


def fhn_rhs(u, w, i_app, k, a, epsilon, beta, gamma, one=1.0):
    """The FHN right-hand side (dU/dt, dW/dt): the one definition of the model's equations.

    Plain arithmetic on the arguments, so it works on floats, numpy arrays and
    torch tensors, and numba compiles it unchanged (fhnkit.solvers.cpu jits this
    very function for its Euler and RK4 kernels). `one` is the constant 1 of
    (1 - U): a numba float32 kernel passes a float32 1 so that the arithmetic
    stays float32. The order of the operations is part of the contract: the
    solvers' results are compared bit for bit with stored data sets, and the
    CUDA kernel (fhn_euler.cu, `fhn_rhs`) does the same operations in the same
    order (tests/test_rhs.py checks both).
    """
    du = k * (u * (u - a) * (one - u) - w + i_app)
    dw = epsilon * (beta * u - gamma * w)
    return du, dw


def rhs(u, w, i_app, p: FHNParams):
    """`fhn_rhs` with the parameters of `p`; works on floats, numpy arrays and torch tensors."""
    return fhn_rhs(u, w, i_app, p.k, p.a, p.epsilon, p.beta, p.gamma)
