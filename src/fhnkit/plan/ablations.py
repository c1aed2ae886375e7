"""Ablations as configuration: one factor of some studies varied, each variant a study of the same DAG.

An ablation (`ablations.<name>` in the config) names a factor, the studies it varies, and the changes:
`set` (settings replaced; nested mappings merge) and `scale` (numeric settings multiplied, by dotted
path). `expand_ablations` adds, for each such study, a study `<study>__<name>`: a copy of the study's
validated settings with the changes applied and an `ablation` record (the study it varies, the
ablation, the factor, the changes in words). Everything downstream treats it as a study; its models
keep the seeds of the study it varies (`fhnkit.plan.grid`), and its data sets are made from the same
seeds, so a variant differs from its study by the factor alone.
"""

from __future__ import annotations

import copy

SEPARATOR = "__"  # <study>__<ablation>


def variant_name(study: str, ablation: str) -> str:
    return f"{study}{SEPARATOR}{ablation}"


def base_study(config: dict, name: str) -> str:
    """The study a study varies (itself when it is no ablation's variant)."""
    return config["studies"][name].get("ablation", {}).get("of", name)


def is_variant(study: dict) -> bool:
    return "ablation" in study


def _merge(into: dict, changes: dict) -> None:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


def _flat(changes: dict, prefix: str = "") -> list[tuple[str, object]]:
    out = []
    for key, value in changes.items():
        path = f"{prefix}{key}"
        out += _flat(value, f"{path}.") if isinstance(value, dict) and value else [(path, value)]
    return out


def describe(ablation: dict) -> str:
    """The changes of an ablation in words: `training.iterations x4; data_solver.method = euler`."""
    parts = [f"{path} x{factor:g}" for path, factor in ablation.get("scale", {}).items()]
    parts += [f"{path} = {value}" for path, value in _flat(ablation.get("set", {}))]
    return "; ".join(parts)


def _scaled(study: dict, path: str, factor: float, where: str) -> str | None:
    """Multiply the setting at dotted `path` of `study` by `factor` in place; a problem, or None."""
    *parents, leaf = path.split(".")
    node = study
    for key in parents:
        node = node.get(key) if isinstance(node, dict) else None
    value = node.get(leaf) if isinstance(node, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{where}: {path} is not a numeric setting of the study (its value: {value!r})"
    node[leaf] = max(1, round(value * factor)) if isinstance(value, int) else value * factor
    return None


def expand_ablations(config: dict) -> list[str]:
    """Add each ablation's variant studies to the validated `config` in place (replacing variants made by an
    earlier expansion); returns the problems found (an unknown study, a name taken, a setting that cannot
    be scaled), each naming its key."""
    studies = {name: study for name, study in config["studies"].items() if not is_variant(study)}
    variants, problems = {}, []
    for name, ablation in config.get("ablations", {}).items():
        where = f"ablations.{name}"
        if "ablation" in ablation.get("set", {}):
            problems.append(f"{where}.set: 'ablation' is fhnkit's record of a variant, not a setting")
            continue
        for base in ablation["studies"]:
            if base not in studies:
                problems.append(f"{where}.studies: {base!r} is not a study of this config; choose from "
                                f"{sorted(studies)}")
                continue
            vname = variant_name(base, name)
            if vname in studies:
                problems.append(f"{where}: its variant of {base} would be named {vname!r}, which is a study of "
                                "this config already; rename the ablation or the study")
                continue
            variant = copy.deepcopy(studies[base])
            _merge(variant, ablation.get("set", {}))
            scaled = [_scaled(variant, path, factor, f"{where}.scale") for path, factor in
                      ablation.get("scale", {}).items()]
            problems += [p for p in scaled if p]
            variant["ablation"] = {"of": base, "name": name, "factor": ablation["factor"],
                                   "changes": describe(ablation)}
            variants[vname] = variant
    config["studies"] = {**studies, **variants}
    return problems
