"""Load, validate and fingerprint an fhnkit configuration.

The JSON schema (`schemas/config.schema.yaml`, also linked from
`workflow/schemas/`) is the single description of every key, its default and
its allowed range. Validation fills defaults first, then reports every error
with the key path and what is allowed, before any job runs.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
from pathlib import Path

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).parent / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration that does not satisfy the schema; the message names each bad key."""


def load_schema() -> dict:
    with open(SCHEMA_PATH) as fh:
        return yaml.safe_load(fh)


def _resolve(schema: dict, root: dict) -> dict:
    while "$ref" in schema:
        ref = schema["$ref"]
        node = root
        for part in ref.lstrip("#/").split("/"):
            node = node[part]
        schema = {**node, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _fill_defaults(instance, schema: dict, root: dict):
    """Insert schema defaults into `instance` in place, recursing into objects."""
    schema = _resolve(schema, root)
    if not isinstance(instance, dict):
        return
    props = schema.get("properties", {})
    for key, sub in props.items():
        sub_r = _resolve(sub, root)
        if key not in instance and "default" in sub_r:
            instance[key] = copy.deepcopy(sub_r["default"])
        if key in instance:
            _fill_defaults(instance[key], sub_r, root)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key in instance:
            if key not in props:
                _fill_defaults(instance[key], extra, root)


def _describe(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path) or "<top level>"
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        return f"{path}: {error.message}; allowed keys here: {allowed}"
    if error.validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        bounds = {k: schema[k] for k in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum") if k in schema}
        return f"{path}: {error.message}; allowed range {bounds}"
    if error.validator == "enum":
        return f"{path}: {error.instance!r} is not allowed; choose one of {schema.get('enum')}"
    return f"{path}: {error.message}"


def validate_config(config: dict) -> dict:
    """Return a validated copy of `config` with every default filled in.

    Raises ConfigError listing each violation as `key.path: problem; allowed ...`.
    """
    schema = load_schema()
    config = copy.deepcopy(config if config is not None else {})
    _fill_defaults(config, schema, schema)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    problems = [_describe(e) for e in errors]
    # where the structure is broken, the schema errors above already say where
    with contextlib.suppress(KeyError, TypeError, ValueError, ZeroDivisionError):
        problems += _semantic_problems(config)
    if problems:
        raise ConfigError("invalid fhnkit configuration:\n  " + "\n  ".join(problems))
    return config


def _semantic_problems(config: dict) -> list[str]:
    """Checks a JSON schema cannot express (ordered ranges, divisible time steps)."""
    problems = []
    for name, study in config["studies"].items():
        for key, (lo, hi) in study["ranges"].items():
            if not lo < hi:
                problems.append(f"studies.{name}.ranges.{key}: lower bound {lo} must be below upper bound {hi}")
        problems += _region_problems(name, study) + _marching_problems(name, study)
        if set(study["grid"]["classes"]) == {"itnn"} and max(study["grid"]["windows"]) > 1:
            problems.append(f"studies.{name}.grid.windows: itnn models have no time input to split into windows; "
                            "use windows: [1] or add ddnn/pinn classes")
        dt = config["data_solver"]["dt"]
        if abs(round(study["t_max"] / dt) * dt - study["t_max"]) > 1e-9 * study["t_max"]:
            problems.append(f"studies.{name}.t_max: {study['t_max']} is not a multiple of data_solver.dt={dt}")
    bench = config["benchmark"]
    if bench["t_end"] / bench["n_points"] / bench["dt"] % 1 > 1e-9:
        problems.append("benchmark: t_end / n_points must be a multiple of dt (the solver stores every n-th step)")
    return problems


def _region_problems(name: str, study: dict) -> list[str]:
    """A region axis needs a region; a region lies inside the study's ranges; A has no region data set."""
    region = study.get("region")
    if "itnn" in study["grid"]["classes"] and study["problem"] == "A":
        return [f"studies.{name}.grid.classes: itnn needs problem B or C (a state to iterate on)"]
    if study.get("resample") is not None and study["problem"] == "A":
        return [f"studies.{name}.resample: needs problem B or C (a parameter space to resample)"]
    if True in study["grid"]["region"] and region is None and study.get("resample") is None:
        return [f"studies.{name}.grid.region: true needs studies.{name}.region (its ranges and terms) or "
                f"studies.{name}.resample (an extra data term from high-error points)"]
    if region is None:
        return []
    problems = []
    full = {**study["ranges"], "t": [0.0, study["t_max"]]}
    for key, (lo, hi) in region["ranges"].items():
        if not full[key][0] <= lo < hi <= full[key][1]:
            problems.append(f"studies.{name}.region.ranges.{key}: [{lo}, {hi}] must be an increasing range "
                            f"inside the study's {full[key]}")
    if study["problem"] == "A" and region["data"]["n"] > 0:
        problems.append(f"studies.{name}.region.data.n: problem A has no region data set; use region.physics")
    return problems


def _marching_problems(name: str, study: dict) -> list[str]:
    """Marching needs a state input (B, C) and a horizon that is a whole number of windows."""
    marching = study.get("marching")
    if marching is None:
        return []
    if study["problem"] == "A":
        return [f"studies.{name}.marching: needs problem B or C (the initial state is an input)"]
    windows = marching["horizon"] / study["t_max"]
    if windows < 2 or abs(windows - round(windows)) > 1e-9:
        return [f"studies.{name}.marching.horizon: {marching['horizon']} must be a multiple (>= 2) of t_max "
                f"= {study['t_max']}"]
    return []


def load_config(path) -> dict:
    """Read a YAML config file and validate it (see `validate_config`)."""
    with open(path) as fh:
        return validate_config(yaml.safe_load(fh))


def config_hash(config: dict) -> str:
    """A short stable fingerprint (sha256 of canonical JSON) of a validated config or sub-config."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def derive_seed(*parts) -> int:
    """A 63-bit seed derived deterministically from the config seed and names (study, model, purpose)."""
    digest = hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1
