"""Expand a study's grid (SPEC.md section 6) into one model spec per training job.

Given layer counts and layer configurations, every sequence of that length
over the configurations (repetitions included) is one architecture; the
other axes (class, batch size, seed) multiply it. A model's name encodes all
of its axes and is the Snakemake wildcard that names its training job.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from .. import __version__
from .ablations import base_study
from .config import ConfigError, config_hash, data_solver_of, derive_seed, grid_size
from .execution import data_solver_identity, model_identity

PROBLEM_KEYS = ("problem", "t_max", "ranges", "i_app", "k_to_i_app", "initial_state")
# a model's spec carries the marching settings of its study (None without marching)
SHAPES = ("rectangle", "funnel", "bottleneck", "bowtie", "diamond", "other")


# the keys of a study that its solved data depend on (with the root seed, the FHN model and the data solver)
DATA_KEYS = ("problem", "i_app", "k_to_i_app", "t_max", "initial_state", "ranges", "times_per_trajectory",
             "train", "val", "region", "marching")


def data_job_config(config: dict, study_name: str) -> dict:
    """The part of `config` that a job solving a study's trajectories reads (its data sets, its resampled
    chunks, the error cuts' truth): the config with only these keys, `data_solver.backend` included (where the
    numbers are computed)."""
    study = config["studies"][study_name]
    return {"seed": config["seed"], "model": config["model"], "data_solver": data_solver_of(config, study_name),
            "studies": {study_name: {k: study.get(k) for k in DATA_KEYS}}}


def data_determinants(config: dict, study_name: str) -> dict:
    """Everything that determines a study's data sets (their cache key, Snakemake params and config hash):
    `data_job_config` without what only says where they are computed, and fhnkit's version."""
    job = data_job_config(config, study_name)
    return {"seed": job["seed"], "model": job["model"], "data_solver": data_solver_identity(job),
            "study": job["studies"][study_name], "fhnkit": __version__}


def data_shared_with(config: dict, study_name: str) -> str | None:
    """The study whose data sets a study's are copies of: the study an ablation varies, when the variant
    leaves everything its data depend on alone (an ablation of training, selection or replicates); None
    when the study solves its own (every study of no ablation, and variants of the data solver or sets)."""
    base = base_study(config, study_name)
    if base == study_name or data_determinants(config, base) != data_determinants(config, study_name):
        return None
    return base


def arch_name(layers) -> str:
    """`[["silu", 16], ["tanh", 8]]` -> "silu16-tanh8"."""
    return "-".join(f"{act}{width}" for act, width in layers)


def shape_of(widths) -> str:
    """Shape class of a sequence of hidden widths (SPEC.md section 6 definitions)."""
    widths = list(widths)
    pairs = list(itertools.pairwise(widths))
    if all(a == b for a, b in pairs):
        return "rectangle"
    if all(a >= b for a, b in pairs):
        return "funnel"
    if all(a <= b for a, b in pairs):
        return "bottleneck"
    if len(widths) == 3 and widths[1] < widths[0] and widths[1] < widths[2]:
        return "bowtie"
    if len(widths) == 3 and widths[1] > widths[0] and widths[1] > widths[2]:
        return "diamond"
    return "other"


def architectures(grid: dict) -> list[list[list]]:
    """Every distinct layer sequence of the grid, in a stable order."""
    configs = [tuple(c) for c in grid["layer_configs"]]
    seen, out = set(), []
    for depth in grid["layers"]:
        for seq in itertools.product(configs, repeat=depth):
            if seq not in seen:
                seen.add(seq)
                out.append([list(c) for c in seq])
    return out


def model_name(cls: str, layers, batch_size: int, seed: int, region: bool = False, windows: int = 1) -> str:
    """`pinna_silu16-tanh8_w4_bs64_s0`: class (+ "a" with the region terms, as the thesis's DDNNa/PINNa),
    architecture, number of time windows (left out when 1), batch size, seed."""
    split = f"_w{windows}" if windows > 1 else ""
    return f"{cls}{'a' if region else ''}_{arch_name(layers)}{split}_bs{batch_size}_s{seed}"


def _spec(config: dict, study_name: str, cls: str, region: bool, windows: int, layers, bs: int, rep: int,
          name: str | None = None, training: dict | None = None) -> dict:
    study = config["studies"][study_name]
    name = name or model_name(cls, layers, bs, rep, region, windows)
    widths = [w for _, w in layers]
    spec = {
        "study": study_name, "problem": study["problem"], "model": name, "class": cls,
        "layers": layers, "arch": arch_name(layers), "depth": len(layers), "neurons": sum(widths),
        "shape": shape_of(widths), "batch_size": bs, "seed": rep, "region": region, "windows": windows,
        "region_settings": study.get("region") if region else None,
        # region models of a study with resampling also train on the high-error set
        "resample": study.get("resample") if region else None,
        # an ablation's variant keeps the initial weights of the study it varies (it differs by its factor only)
        "torch_seed": derive_seed(config["seed"], base_study(config, study_name), name, "init"),
        "training": training or study["training"], "fhn": config["model"], "itnn": study["itnn"],
        "marching": study.get("marching") if cls != "itnn" else None,
        "problem_settings": {k: study[k] for k in PROBLEM_KEYS},
    }
    # provenance: the hash of everything that makes this model (its spec and data), not of how it runs
    spec["config_hash"] = config_hash({"spec": model_identity(spec), "data": data_determinants(config, study_name)})
    return spec


def expand_study(config: dict, study_name: str) -> list[dict]:
    """One spec per model of a study: the architecture, class, batch size, seed and training settings."""
    grid = config["studies"][study_name]["grid"]
    if grid_size(grid) > grid["max_models"]:  # refused before a single spec is built
        raise ConfigError(f"studies.{study_name}.grid expands to {grid_size(grid)} models, above "
                          f"grid.max_models={grid['max_models']}; shrink the grid or raise max_models")
    specs = []
    axes = itertools.product(grid["classes"], grid["region"], grid["windows"], architectures(grid),
                             grid["batch_size"], grid["seeds"])
    for cls, region, windows, layers, bs, rep in axes:
        if cls == "itnn" and windows > 1:
            continue  # an iterator network has no time input to split (config.py says so when it is all there is)
        specs.append(_spec(config, study_name, cls, region, windows, layers, bs, rep))
    return specs


RESAMPLE_MODELS = ("base", "retrained")


def resample_specs(config: dict, study_name: str) -> dict[str, dict]:
    """The resampling stage's two models of a study (empty without `resample`): "base", trained on the
    training set, and "retrained", the same network, seed and settings plus the extra data term on the
    high-error set (and the study's region terms, if it has a region), trained for `resample.iterations`
    (default: the base's budget, the study's training.iterations)."""
    settings = config["studies"][study_name].get("resample")
    if settings is None:
        return {}
    base, training = settings["base"], config["studies"][study_name]["training"]
    layers = [list(layer) for layer in base["layers"]]
    budget = {"base": training, "retrained": {**training, "iterations": settings.get("iterations")
                                              or training["iterations"]}}
    return {which: _spec(config, study_name, base["class"], which == "retrained", 1, layers,
                         base["batch_size"], 0, name=f"resample-{which}", training=budget[which])
            for which in RESAMPLE_MODELS}


def expand_all(config: dict) -> list[dict]:
    """Specs of every model of every study in the config."""
    return [spec for name in config["studies"] for spec in expand_study(config, name)]


def _made_alike(spec: dict, other: dict) -> bool:
    """Whether two model specs make the same weights: equal but for their studies' names (and the hash
    that covers the name); execution settings aside."""
    def strip(s):
        return {k: v for k, v in model_identity(s).items() if k not in ("study", "config_hash")}
    return strip(spec) == strip(other)


def models_shared_with(config: dict, study_name: str,
                       specs_of: Callable[[dict, str], list[dict]] = expand_study) -> dict[str, str]:
    """{model: study} of a variant's models that are the same models of the study it varies: its data
    sets are the study's (`data_shared_with`) and the spec differs by the study's name alone (an ablation
    of resampling leaves the grid and the base model alike; one of replicates, the seeds both have); each
    is taken from there instead of trained again. `specs_of` lists a study's specs (the grid's by default,
    or the resampling stage's: `lambda c, s: list(resample_specs(c, s).values())`)."""
    source = data_shared_with(config, study_name)
    if source is None:
        return {}
    theirs = {spec["model"]: spec for spec in specs_of(config, source)}
    return {spec["model"]: source for spec in specs_of(config, study_name)
            if spec["model"] in theirs and _made_alike(spec, theirs[spec["model"]])}
