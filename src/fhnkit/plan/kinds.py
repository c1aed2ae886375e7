"""Model kinds (SPEC.md section 4) as types: what each class of network is asked to learn and how.

A model's `spec["class"]` names its kind; code that behaves differently per kind asks the kind
(`kind_of(spec).iterator`) instead of testing class names or looking for keys in the spec.
"""

from __future__ import annotations


class ModelKind:
    """Behaviour shared by every kind; subclasses set what differs."""

    name: str = ""
    label: str = ""
    iterator: bool = False  # learns the state dt later (validated by rollouts) instead of the state at t
    physics: bool = False  # trains on the ODE residual (and the initial condition) as well as on data

    @property
    def continuous(self) -> bool:
        """A network of (t, parameters): evaluated at any time, split into time windows if asked."""
        return not self.iterator

    def collocation_points(self, batch: dict) -> int:
        """Points a training step evaluates besides its data batch (a PINN's physics and initial batches)."""
        return batch.get("physics", 0) + batch.get("initial", 0) if self.physics else 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class DDNN(ModelKind):
    """Data-driven network: the solution U, W at (t, parameters), fitted to solver data."""

    name, label = "ddnn", "DDNN"


class PINN(ModelKind):
    """Physics-informed network: a DDNN whose loss also holds the FHN residual and initial condition."""

    name, label = "pinn", "PINN"
    physics = True


class ITNN(ModelKind):
    """Iterator network: the state one step dt later from the current state (and K), rolled out."""

    name, label = "itnn", "ITNN"
    iterator = True


KINDS: dict[str, ModelKind] = {kind.name: kind for kind in (DDNN(), PINN(), ITNN())}


def kind_named(name: str) -> ModelKind:
    """The kind of a class name (`ddnn`, `pinn`, `itnn`)."""
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown model class {name!r}; allowed: {sorted(KINDS)}") from None


def kind_of(spec: dict) -> ModelKind:
    """The kind of a training spec (`spec["class"]`)."""
    return kind_named(spec["class"])


def continuous_classes() -> list[str]:
    """Class names of the continuous kinds (what time windows and prediction figures apply to)."""
    return [name for name, kind in KINDS.items() if kind.continuous]


def n_windows(spec: dict) -> int:
    """How many time windows a model's domain is split into (1: one network on the whole domain)."""
    return int(spec.get("windows", 1))
