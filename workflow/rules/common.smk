# Shared by every stage: the validated config and the model grid, expanded at parse time.

import sys

from fhnkit.config import ConfigError, validate_config
from fhnkit.datasets import data_determinants
from fhnkit.grid import expand_all
from fhnkit.train import needs_region_data

try:
    _validated = validate_config(config)
except ConfigError as err:
    sys.exit(f"{err}\nFix the config file (see workflow/schemas/config.schema.yaml) and rerun.")
config.clear()
config.update(_validated)

try:
    SPECS = {(s["study"], s["model"]): s for s in expand_all(config)}
except ConfigError as err:
    sys.exit(f"{err}\nFix the config file and rerun.")
MODELS = list(SPECS)


wildcard_constraints:
    study="[A-Za-z][A-Za-z0-9_]*",
    model="[a-z]+_[a-z0-9-]+_bs[0-9]+_s[0-9]+",
    split="train|val|region",


def model_path(study, model, name):
    return f"results/{study}/models/{model}/{name}"


def all_model_outputs(name):
    """`name` (e.g. metrics.json) of every model of every study."""
    return [model_path(study, model, name) for study, model in MODELS]


def model_spec(wildcards):
    return SPECS[(wildcards.study, wildcards.model)]


def region_data(wildcards):
    """{"region": its data set} for a model trained with the region data term (DDNNa/PINNa), else {}."""
    spec = model_spec(wildcards)
    return {"region": f"results/{spec['study']}/data/region.parquet"} if needs_region_data(spec) else {}


def study_settings(wildcards):
    """The problem settings of a model's study (what the benchmark needs to build its work)."""
    return model_spec(wildcards)["problem_settings"]


def warn_failed_models():
    """At the end of a run, name the models whose training diverged (they are recorded, not fatal)."""
    import json
    from pathlib import Path

    failed = []
    for study, model in MODELS:
        path = Path(model_path(study, model, "metrics.json"))
        if path.exists() and json.loads(path.read_text()).get("status") == "failed":
            failed.append(f"{study}/{model}")
    if failed:
        print(f"WARNING: {len(failed)} model(s) diverged and were recorded as failed: {', '.join(failed)}; "
              "see results/analysis/failed_models.csv and the report's Tables.", file=sys.stderr)
