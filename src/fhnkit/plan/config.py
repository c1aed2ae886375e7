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
import math
import os
import re
import shutil
import warnings
from pathlib import Path

import jsonschema
import yaml

from .ablations import expand_ablations
from .layout import RUN_DIRECTORIES

SCHEMA_PATH = Path(__file__).parent / "schemas" / "config.schema.yaml"


# a study's name becomes directory and file names (results/{study}/, error_cuts_{study}.png, ...)
MAX_STUDY_NAME = 64


class ConfigError(ValueError):
    """A configuration that does not satisfy the schema; the message names each bad key."""


# JSON Schema counts 3.0 as an integer; a count written as a float is refused (Python cannot count with it)
_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool)))


def _non_finite(node, path: str = "") -> list[str]:
    """`key.path: not a finite number` for every NaN or infinity in the config (a schema's bounds let NaN pass)."""
    if isinstance(node, float) and not math.isfinite(node):
        return [f"{path or '<top level>'}: {node} is not a finite number"]
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _non_finite(v, f"{path}.{k}" if path else str(k))]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _non_finite(v, f"{path}[{i}]")]
    return []


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
    if error.validator == "type" and "integer" in str(error.validator_value) and isinstance(error.instance, float):
        return f"{path}: {error.instance!r} is not a whole number; write it without a decimal point"
    if error.validator == "enum":
        return f"{path}: {error.instance!r} is not allowed; choose one of {schema.get('enum')}"
    return f"{path}: {error.message}"


def validate_config(config: dict) -> dict:
    """Return a validated copy of `config` with every default filled in.

    Raises ConfigError listing each violation as `key.path: problem; allowed ...`.
    """
    schema = load_schema()
    config = copy.deepcopy(config if config is not None else {})
    problems = _schema_problems(config, schema)
    if not problems:  # each ablation's variants (fhnkit.plan.ablations), then checked as any study
        problems = expand_ablations(config) or _schema_problems(config, schema)
    # where the structure is broken, the schema errors above already say where
    with contextlib.suppress(KeyError, TypeError, ValueError, ZeroDivisionError, OverflowError):
        problems += _semantic_problems(config)
    problems = [_made_by(problem, config) for problem in problems]
    if problems:
        raise ConfigError("invalid fhnkit configuration:\n  " + "\n  ".join(problems))
    return config


def _made_by(problem: str, config: dict) -> str:
    """`problem`, saying which ablation made the study it names, where an ablation did."""
    with contextlib.suppress(AttributeError, KeyError, TypeError):
        for name, study in config["studies"].items():
            if "ablation" in study and problem.startswith((f"studies.{name}.", f"studies.{name}:")):
                return f"{problem} (a study made by ablations.{study['ablation']['name']})"
    return problem


def _schema_problems(config: dict, schema: dict) -> list[str]:
    """Fill `config`'s defaults in place; what the schema refuses, and non-finite numbers."""
    _fill_defaults(config, schema, schema)
    errors = sorted(_Validator(schema).iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    return _non_finite(config) + [_describe(e) for e in errors]


def data_solver_of(config: dict, study_name: str) -> dict:
    """The data solver settings of a study's data: the top-level `data_solver`, with the keys the study's own
    `data_solver` gives replaced."""
    return {**config["data_solver"], **config["studies"][study_name].get("data_solver", {})}


def _semantic_problems(config: dict) -> list[str]:
    """Checks a JSON schema cannot express (ordered ranges, divisible time steps)."""
    problems = _resource_problems(config) + _stability_problems(config)
    known = set(config["studies"])
    for name in known:
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
            problems.append(f"studies: {name!r} cannot name a study: a name is a letter, then letters, digits or _")
        elif len(name) > MAX_STUDY_NAME:
            problems.append(f"studies: {name[:20]}... ({len(name)} characters) is too long to name a study: at most "
                            f"{MAX_STUDY_NAME} (the study's files carry its name, and a file name ends at 255 bytes)")
        elif name.lower() in RUN_DIRECTORIES:
            problems.append(f"studies: {name!r} names a directory of the whole run (results/{name.lower()}/, "
                            f"logs/{name.lower()}/); choose another name (not one of {list(RUN_DIRECTORIES)})")
    unknown = sorted(set(config["analysis"].get("ttest_studies") or []) - known)
    if unknown:
        problems.append(f"analysis.ttest_studies: {unknown} are not studies of this config; "
                        f"choose from {sorted(known)}")
    for name, study in config["studies"].items():
        problems += _grid_problems(name, study["grid"])
        for key, (lo, hi) in study["ranges"].items():
            if not lo < hi:
                problems.append(f"studies.{name}.ranges.{key}: lower bound {lo} must be below upper bound {hi}")
        problems += _region_problems(name, study) + _marching_problems(name, study) + _itnn_problems(name, study)
        if set(study["grid"]["classes"]) == {"itnn"} and max(study["grid"]["windows"]) > 1:
            problems.append(f"studies.{name}.grid.windows: itnn models have no time input to split into windows; "
                            "use windows: [1] or add ddnn/pinn classes")
        dt = data_solver_of(config, name)["dt"]
        steps = round(study["t_max"] / dt)
        if abs(steps * dt - study["t_max"]) > 1e-9 * study["t_max"]:
            problems.append(f"studies.{name}.t_max: {study['t_max']} is not a multiple of data_solver.dt={dt}")
        elif study["problem"] != "A" and steps % (study["times_per_trajectory"] - 1):
            intervals = study["times_per_trajectory"] - 1
            divisors = [d for d in range(1, min(steps, 100000) + 1) if steps % d == 0]
            fits = sorted(sorted(divisors, key=lambda d: abs(d - intervals))[:4])
            fits = [d + 1 for d in fits]
            problems.append(f"studies.{name}.times_per_trajectory: {intervals + 1} evenly spaced points need the "
                            f"{steps} solver steps of t_max/data_solver.dt to be a multiple of {intervals}; "
                            f"allowed e.g. {fits}")
    bench = config["benchmark"]
    if bench["t_end"] / bench["n_points"] / bench["dt"] % 1 > 1e-9:
        problems.append("benchmark: t_end / n_points must be a multiple of dt (the solver stores every n-th step)")
    return problems


GRID_AXES = ("layers", "layer_configs", "classes", "batch_size", "seeds", "region", "windows")


def grid_size(grid: dict) -> int:
    """How many models a study's grid expands to (`grid.expand_study`), counted without enumerating them."""
    configs = {tuple(c) for c in grid["layer_configs"]}
    architectures = sum(len(configs) ** depth for depth in set(grid["layers"]))
    windows = sum(sum(1 for w in set(grid["windows"]) if cls != "itnn" or w <= 1) for cls in set(grid["classes"]))
    return windows * len(set(grid["region"])) * architectures * len(set(grid["batch_size"])) * len(set(grid["seeds"]))


def _grid_problems(name: str, grid: dict) -> list[str]:
    """Values given twice on an axis (they would name one model twice), and grids above max_models."""
    problems = []
    for axis in GRID_AXES:
        values = [json.dumps(v) for v in grid.get(axis, [])]
        twice = sorted({v for v in values if values.count(v) > 1})
        if twice:
            problems.append(f"studies.{name}.grid.{axis}: {', '.join(twice)} given more than once")
    size = grid_size(grid)
    if size > grid["max_models"]:
        problems.append(f"studies.{name}.grid expands to {size} models, above grid.max_models={grid['max_models']}; "
                        "shrink the grid (e.g. grid.layers lists depths, not widths) or raise max_models")
    return problems


RK4_REACH = 2.785  # fourth-order Runge-Kutta is stable for dt*|lambda| up to 2.785 on the negative real axis


def _stability_problems(config: dict) -> list[str]:
    """Solver steps beyond the explicit stability bound of the model's fastest decaying mode over the
    states the studies start from and reach (U in [0, 1] and their u0 ranges): their solutions blow up."""
    from ..cell.model import FHNParams
    from ..cell.stability import euler_stable_dt

    lows, highs = [0.0], [1.0]
    for study in config["studies"].values():
        u0 = study["ranges"].get("u0") or [study["initial_state"][0]] * 2
        lows.append(u0[0])
        highs.append(u0[1])
    bound = euler_stable_dt(FHNParams.from_mapping(config["model"]), min(lows), max(highs))
    problems = []
    solvers = {"data_solver": config["data_solver"]} | {
        f"studies.{name}.data_solver": data_solver_of(config, name) for name, study in config["studies"].items()
        if study.get("data_solver")}
    for key, solver in solvers.items():
        reach = RK4_REACH / 2.0 if solver["method"] == "rk4" else 1.0
        if solver["dt"] > bound * reach:
            problems.append(f"{key}.dt: {solver['dt']} is beyond the {solver['method']} stability bound "
                            f"{bound * reach:.3g} for these model parameters (the data would blow up to NaN); lower "
                            "dt or check model")
        if solver["method"] == "rk4" and solver["backend"] == "cuda":
            problems.append(f"{key}: data_solver.backend cuda runs the Euler kernel only, but the method is rk4 "
                            "(a CPU kernel); use backend auto or cpu with rk4, or method euler on the GPU")
    if config["benchmark"]["dt"] > bound:
        problems.append(f"benchmark.dt: {config['benchmark']['dt']} is beyond the explicit Euler stability bound "
                        f"{bound:.3g} for these model parameters; lower it or check model")
    return problems


ROW_BYTES = 8 * 8  # a data set's row: up to 8 float64 columns (t, U0, W0, K, U, W, trajectory, ...)


def _resource_problems(config: dict) -> list[str]:
    """Data sets that cannot fit in this machine's memory when a job loads one (rows x ROW_BYTES, about 3
    copies: the Parquet read, the frame, the tensors), or whose rows, even compressed 2:1, exceed the free
    disk under the working directory (above the free disk uncompressed: a warning with the estimate)."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        free = shutil.disk_usage(os.getcwd()).free
    except (ValueError, OSError, AttributeError):
        return []
    problems, disk = [], 0
    for name, study in config["studies"].items():
        per_set = 1 if study["problem"] == "A" else study["times_per_trajectory"]
        for split in ("train", "val"):
            rows = study[split]["n"] * per_set
            disk += rows * ROW_BYTES
            if 3 * rows * ROW_BYTES > memory:
                problems.append(f"studies.{name}.{split}.n: {study[split]['n']} sets x {per_set} time points need "
                                f"about {3 * rows * ROW_BYTES / 2**30:.1f} GiB of memory to load, this machine has "
                                f"{memory / 2**30:.1f} GiB; make the set smaller")
    message = (f"the data sets of this config hold about {disk / 2**30:.1f} GiB uncompressed; {free / 2**30:.1f} GiB "
               f"are free under {os.getcwd()}")
    if disk > 2 * free:
        problems.append(f"studies: {message}; make the sets smaller or free disk space")
    elif disk > free:
        warnings.warn(f"{message}: the run may fill the disk", stacklevel=3)
    return problems


def _region_problems(name: str, study: dict) -> list[str]:
    """A region axis needs a region; a region lies inside the study's ranges; A has no region data set."""
    region = study.get("region")
    if "itnn" in study["grid"]["classes"] and study["problem"] == "A":
        return [f"studies.{name}.grid.classes: itnn needs problem B or C (a state to iterate on)"]
    if study.get("resample") is not None and study["problem"] == "A":
        return [f"studies.{name}.resample: needs problem B or C (a parameter space to resample)"]
    resample = study.get("resample") or {}
    if resample.get("error") == "rollout" and resample["base"]["class"] != "itnn":
        return [f"studies.{name}.resample.error: rollout ranks an iterator network's rollouts and the base is "
                f"{resample['base']['class']}; use one_step (a {resample['base']['class']} ranks whole trajectories) "
                "or resample.base.class: itnn"]
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


def _itnn_problems(name: str, study: dict) -> list[str]:
    """An iterator network's step must be a whole number (>= 1) of the data's stored steps, below t_max."""
    base = (study.get("resample") or {}).get("base") or {}
    if study["problem"] == "A" or ("itnn" not in study["grid"]["classes"] and base.get("class") != "itnn"):
        return []
    step, save = study["itnn"]["dt"], study["t_max"] / (study["times_per_trajectory"] - 1)
    k = round(step / save)
    if k < 1 or abs(k * save - step) > 1e-9 * max(1.0, step) or step >= study["t_max"]:
        return [f"studies.{name}.itnn.dt: {step} must be a multiple of the stored step t_max/(times_per_trajectory"
                f" - 1) = {save:g} and below t_max = {study['t_max']}"]
    return []


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


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (plain YAML keeps the last). Merge keys
    (`<<: *anchor`) are standard YAML: a key the mapping writes itself overrides the merged one, as intended."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise ConfigError(f"key {key!r} is given twice in one mapping (lines {seen[key]} and "
                                  f"{key_node.start_mark.line + 1}); YAML would silently keep only the last")
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def read_config_file(path) -> dict:
    """The mapping in YAML file `path`, unvalidated; a missing or unreadable file, broken YAML, a
    duplicate key or a top level that is not a mapping raise ConfigError naming the file."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.load(fh, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader)
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not a text file in UTF-8 (byte {err.object[err.start]:#04x} at offset "
                          f"{err.start}): a config is YAML text") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config file: {err.strerror or err}") from None
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config is a mapping of keys (seed, studies, ...), not {type(data).__name__}")
    return data


def load_config(path) -> dict:
    """Read a YAML config file and validate it (see `read_config_file`, `validate_config`)."""
    try:
        return validate_config(read_config_file(path))
    except ConfigError as err:
        message = str(err)
        raise ConfigError(message if message.startswith(str(path)) else f"{path}: {message}") from None


def config_hash(config: dict) -> str:
    """A short stable fingerprint (sha256 of canonical JSON) of a validated config or sub-config."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def derive_seed(*parts) -> int:
    """A 63-bit seed derived deterministically from the config seed and names (study, model, purpose)."""
    digest = hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1
