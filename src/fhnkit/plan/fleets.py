"""Which models of a study train together as a fleet (the config's `fleet`: the most models per fleet).

Models are ordered so that those a fleet stacks into one group (same network kind and whether the loss
has data terms only, `fhnkit.training.fleet.group_key`) sit next to each other (by class, region and
window settings, then depth and batch size, which stack too), then cut into fleets of at most
`training.fleet` models, named f0, f1, ... With `fleet: 1` there are no fleets: one job per model.
(The order, and so which models share a fleet job, is unchanged from when depth and batch size split
groups: a new order would rename every fleet's models and retrain them for nothing.)
"""

from __future__ import annotations


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


def fleet_of(fleets: dict[str, list[str]]) -> dict[str, str]:
    """{model name: its fleet} of `study_fleets`."""
    return {model: fleet for fleet, models in fleets.items() for model in models}
