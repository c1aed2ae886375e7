"""The planning layer: a run's validated config, its grid of models, their seeds and where every file lives.

This is what Snakemake imports to build the DAG, so it stays light: no torch, numba or scipy
(tests/test_plan_is_light.py builds the DAG with those imports made to fail).
"""

from . import layout
from .config import (
    ConfigError,
    config_hash,
    derive_seed,
    load_config,
    load_schema,
    read_config_file,
    validate_config,
)
from .execution import ExecutionOnly, canonical, model_identity, results_config
from .fleets import FAMILIES, fleet_family, fleet_size, study_fleets
from .grid import (
    arch_name,
    architectures,
    data_determinants,
    data_job_config,
    data_shared_with,
    expand_all,
    expand_study,
    model_name,
    models_shared_with,
    resample_specs,
    shape_of,
)
from .kinds import KINDS, ModelKind, continuous_classes, kind_named, kind_of, n_windows

__all__ = [
    "KINDS",
    "ConfigError",
    "ExecutionOnly",
    "FAMILIES",
    "ModelKind",
    "arch_name",
    "architectures",
    "canonical",
    "config_hash",
    "continuous_classes",
    "data_determinants",
    "data_shared_with",
    "models_shared_with",
    "data_job_config",
    "derive_seed",
    "expand_all",
    "expand_study",
    "fleet_family",
    "fleet_size",
    "kind_named",
    "kind_of",
    "layout",
    "load_config",
    "load_schema",
    "model_identity",
    "model_name",
    "read_config_file",
    "n_windows",
    "resample_specs",
    "results_config",
    "shape_of",
    "study_fleets",
    "validate_config",
]
