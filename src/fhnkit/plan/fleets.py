"""Which models of a study train together as a fleet (the config's `fleet`: the most models per fleet).

A study's models of one family (`fleet_family`) are ordered so that those a fleet stacks into one group
(`fhnkit.training.fleet.group_key`) sit next to each other (by class, region and window settings, then
depth and batch size, which stack too), then cut into fleets of at most `fleet` models, named f0, f1, ...
With `fleet: 1` there are no fleets: each model trains in its own job. Which fleet a model falls in is how
it trains, never part of what a job makes: no file name or recorded parameter holds it.
"""

from __future__ import annotations

from .kinds import kind_of, n_windows

# A study's fleet-trained models fall into families by what their loss computes, a property of each model
# (never of the config's `fleet`): each family is one fleet job of the workflow, so that a model's inputs
# name its family, not its fleet, and families train side by side. Models of one network per time window
# never stack: they have no family and train alone, each in its own job.
FAMILIES = ("data", "physics")


def fleet_family(spec: dict) -> str | None:
    """"data" (data terms only: gradients by hand), "physics" (a residual: autograd), or None (one network
    per time window: trained alone)."""
    if n_windows(spec) > 1:
        return None
    return "physics" if kind_of(spec).physics else "data"


def fleet_size(config: dict) -> int:
    return int(config.get("fleet", 1))


def _stacking_order(spec: dict) -> tuple:
    return (spec["class"], bool(spec.get("region")), int(spec.get("windows", 1)), spec["depth"],
            spec["batch_size"], spec["model"])


def study_fleets(config: dict, specs: list[dict]) -> dict[str, list[str]]:
    """{fleet name: [model names]} of the study's grid `specs`; empty when the study trains one job per model."""
    size = fleet_size(config)
    if size <= 1:
        return {}
    names = [s["model"] for s in sorted(specs, key=_stacking_order)]
    return {f"f{i // size}": names[i: i + size] for i in range(0, len(names), size)}
