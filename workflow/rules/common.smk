# Shared by every stage: the validated config and the model grid, expanded at parse time.

import os
import sys

from fhnkit.plan.data_check import damaged_datasets, remake_dataset
from fhnkit.plan.envs import checkout_env
from fhnkit.plan import (
    ConfigError,
    FAMILIES,
    ExecutionOnly,
    canonical,
    data_determinants,
    data_job_config,
    data_shared_with,
    derive_seed,
    expand_all,
    fleet_family,
    kind_of,
    layout,
    model_identity,
    models_shared_with,
    read_config_file,
    resample_specs,
    results_config,
    study_fleets,
    validate_config,
)

# The conda environments of the rules (envs/*.yaml, used with `--sdm conda`) install fhnkit from
# the checkout that holds this workflow. The rules name copies of them with this checkout's path
# written in (fhnkit.plan.envs): Snakemake keys an environment by its file's text, so another
# checkout sharing a --conda-prefix gets an environment of its own, not this one's.
CHECKOUT = os.path.dirname(os.path.abspath(workflow.basedir))  # workflow/ -> checkout
FHNKIT_ENV = checkout_env(f"{CHECKOUT}/envs/fhnkit.yaml", CHECKOUT)
FHNKIT_MPI_ENV = checkout_env(f"{CHECKOUT}/envs/fhnkit-mpi.yaml", CHECKOUT)


try:
    for _path in workflow.configfiles:  # what Snakemake's YAML reading lets pass: duplicate keys
        read_config_file(_path)
    _validated = validate_config(config)
except ConfigError as err:
    sys.exit(f"{err}\nFix the config file (see workflow/schemas/config.schema.yaml) and rerun.")
config.clear()
config.update(canonical(_validated))  # the order of a file's keys never changes a rule's params

try:
    SPECS = {(s["study"], s["model"]): s for s in expand_all(config)}
except ConfigError as err:
    sys.exit(f"{err}\nFix the config file and rerun.")
MODELS = list(SPECS)

_MODELS_OF = {study: [m for s, m in MODELS if s == study] for study in config["studies"]}


class UnknownTarget(ValueError):
    """A requested file of a study or model that this config does not have."""


def study_config(wildcards):
    """The config of the wildcards' study; one the config lacks is refused, saying which it has."""
    if (why := layout.unknown_target(_MODELS_OF, wildcards.study)) is not None:
        raise UnknownTarget(why)
    return config["studies"][wildcards.study]


def study_setting(wildcards):
    """A study's settings other than its grid and training (each model's spec holds those): what a job over
    the study's data and trained models reads, so that a grid or training edit reaches it through its inputs
    (the models it takes), never through its params."""
    return {k: v for k, v in study_config(wildcards).items() if k not in ("grid", "training")}


# A damaged data set is made again (byte-identical) before the DAG is built, even for a dry run,
# so that nothing trained on it is rerun (fhnkit.plan.data_check).
for _study, _split, _path, _problem in damaged_datasets(config):
    print(
        f"fhnkit: data set {_path} {_problem}: making it again from the config (byte-identical; the "
        "models trained on it are kept)",
        file=sys.stderr,
    )
    try:
        remake_dataset(config, _study, _split, _path)
    except RuntimeError as err:
        sys.exit(f"fhnkit: {err}")
# each study's models by fleet family, {(study, family): [models]} (a model's own property: one fleet job
# each), and how a family's models are cut into fleets, {(study, family): {fleet: [models]}} (empty with
# `fleet: 1`): how they train, not what they make, so no job's inputs, outputs or recorded params name a fleet
# an ablation's variant's models that are its study's (fhnkit.plan.models_shared_with): {(study, model):
# the study that trains it}; their `train` jobs copy them from there, no fleet trains them again
SHARED_MODELS = {
    (_study, _model): _source
    for _study in config["studies"]
    for _model, _source in models_shared_with(config, _study).items()
}
FAMILY_MODELS = {}
for (_study, _model), _spec in SPECS.items():
    if (_study, _model) in SHARED_MODELS:
        continue
    if (_family := fleet_family(_spec)) is not None:
        FAMILY_MODELS.setdefault((_study, _family), []).append(_model)
FLEETS = {key: study_fleets(config, [SPECS[(key[0], m)] for m in models]) for key, models in FAMILY_MODELS.items()}


wildcard_constraints:
    study="[A-Za-z][A-Za-z0-9_]*",
    model="[a-z]+_[a-z0-9-]+(_w[0-9]+)?_bs[0-9]+_s[0-9]+",
    split="train|val|region|march",
    which="base|retrained",
    chunk="chunk_[0-9]+",
    family="|".join(FAMILIES),


def every_core(wildcards=None):
    """All the cores Snakemake was given, for a job that must run alone (1 where no --cores is given,
    as in `snakemake --report`, which builds the DAG but runs nothing)."""
    from snakemake.exceptions import WorkflowError

    try:
        return workflow.cores
    except WorkflowError:
        return 1


def model_path(study, model, name):
    return layout.model_file(study, model, name)


def fhnkit_python():
    """The Python that runs fhnkit in a shell command: the rule's conda environment's under
    `--sdm conda`, else the one Snakemake runs in (where fhnkit is installed)."""
    from snakemake.settings.types import DeploymentMethod

    if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
        return "python"
    return sys.executable


def all_model_outputs(name):
    """`name` (e.g. metrics.json) of every model of every study."""
    return [model_path(study, model, name) for study, model in MODELS]


def finished_work():
    """Every model's files and build record, and the resampling stage's models. The target rule lists them, so that a plain rerun makes
    again any of them that was deleted, and then what follows from it (Snakemake alone remakes a
    missing file only where a target it must make needs it)."""
    names = ("weights.pt", "spec.json", "history.parquet", "metrics.json")
    files = [model_path(study, model, name) for study, model in MODELS for name in names]
    files += [layout.compiled_record(study, model) for study, model in MODELS]
    resampling = [(study, which) for study in resample_studies() for which in RESAMPLE[study]]
    return files + [layout.resample_file(study, f"{which}/{name}") for study, which in resampling for name in names]


def model_spec(wildcards):
    if (why := layout.unknown_target(_MODELS_OF, wildcards.study, wildcards.model)) is not None:
        raise UnknownTarget(why)
    return SPECS[(wildcards.study, wildcards.model)]


def training_threads(spec, copied):
    """Threads of a model's job: its training's, or 1 where the job only copies a model its study trained."""
    return 1 if copied else spec["training"]["threads"]


def training_gpus(spec, copied):
    """GPU slots of a model's job: one where it may train on a GPU, none where it copies a model."""
    return 0 if copied or spec["training"]["device"] == "cpu" else 1


def shared_dataset(wildcards):
    """The data set that a study's split is a copy of (its study's, for an ablation's variant that
    leaves its data alone), or none: the rule solves it."""
    source = data_shared_with(config, wildcards.study)
    return [layout.dataset(source, wildcards.split)] if source else []


def model_data(spec):
    """A model's data sets (named as train_model's arguments): train/val, and its study's region set
    (DDNNa/PINNa data term), marching set (validation marched to the horizon) and high-error set
    (resampling), when it uses them."""
    return layout.data_files(spec)


def model_inputs(wildcards):
    """A model's data sets, and the marker of its family's fleet job (`fleet_family`), whatever the config's
    `fleet`: a job after it (it may have trained the model), rerun whenever it reruns (it retrains the
    family's fleets). Not ancient: an ancient marker would hide the model's own changes from Snakemake while
    the fleet job reruns (a job downstream of a rerun job is reconsidered only through non-ancient inputs).
    A model of one network per time window has no family: its own job trains it."""
    spec = model_spec(wildcards)
    if (source := SHARED_MODELS.get((wildcards.study, wildcards.model))) is not None:
        return {"shared": layout.model_file(source, wildcards.model, "metrics.json")}
    inputs = model_data(spec)
    if (family := fleet_family(spec)) is not None:
        inputs["fleet"] = layout.fleet_marker(wildcards.study, family)
    return inputs


def compile_inputs(wildcards):
    """A model's files and validation set (the builds its fleet made, if any, wait beside its fleet's copy)."""
    return {
        "metrics": layout.model_file(wildcards.study, wildcards.model, "metrics.json"),
        "weights": layout.model_file(wildcards.study, wildcards.model, "weights.pt"),
        "val": layout.dataset(wildcards.study, "val"),
    }


def fleet_specs(wildcards):
    """Every model of the study's family, whether fleets train them or not (`fleet: 1`), so that the fleet
    job's inputs and params do not depend on the config's `fleet`."""
    study_config(wildcards)
    return [SPECS[(wildcards.study, m)] for m in FAMILY_MODELS[(wildcards.study, wildcards.family)]]


def fleet_inputs(wildcards):
    """The data sets of every model of the study's family."""
    return sorted({path for spec in fleet_specs(wildcards) for path in model_data(spec).values()})


def fleet_resource(wildcards, what):
    """threads or gpu of a study's fleet job: a model's threads for each of its fleets (they train side by
    side; Snakemake gives it at most --cores), and one GPU unless the device is the CPU (none without fleets)."""
    training = fleet_specs(wildcards)[0]["training"]
    if what == "threads":
        return training["threads"] * max(1, len(FLEETS[(wildcards.study, wildcards.family)]))
    return 0 if training["device"] == "cpu" or not FLEETS[(wildcards.study, wildcards.family)] else 1


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
        print(
            f"WARNING: {len(failed)} model(s) diverged and were recorded as failed: {', '.join(failed)}; "
            f"see {layout.analysis_table('failed_models', 'csv')} and the report's Tables.",
            file=sys.stderr,
        )


# --- used by benchmark.smk


def study_models(study):
    return [model for s, model in MODELS if s == study]


# --- used by analyse.smk

# The report has one category per stage of the study and one subcategory per study (or ALL_STUDIES
# for what spans them); every item is labelled with what it is and its type. Snakemake sorts both
# alphabetically: the numbers keep the stages in reading order, the parenthesis puts ALL_STUDIES first.
REPORT_STAGES = {
    "reproduction": "0 Reproduction",
    "training": "1 Training",
    "accuracy": "2 Accuracy",
    "resampling": "3 Resampling",
    "inference": "4 Inference cost",
    "summary": "5 Summary and configuration",
}
ALL_STUDIES = "(all studies)"
# "format" always splits a list as "type" does: with two labels that split a two-item list in halves,
# Snakemake 9 makes neither a toggle (one such label becomes a toggle that breaks the page)
REPORT_FORMATS = {"figure": "PNG", "table": "HTML", "table (CSV)": "CSV"}


def report_item(path, caption, stage, item, study=ALL_STUDIES, kind="figure"):
    """`path` marked for the report under its stage (category) and study (subcategory, may be "{study}")."""
    return report(
        path,
        caption=caption,
        category=REPORT_STAGES[stage],
        subcategory=study,
        labels={"item": item, "type": kind, "format": REPORT_FORMATS[kind]},
    )


ANALYSIS_TABLES = {  # name: (title, stage)
    "shape_anova": ("Shape ANOVA (eq. 4.2)", "accuracy"),
    "ttest_pinn_ddnn": ("PINN vs DDNN t-test", "accuracy"),
    "technique_anova": ("Techniques ANOVA (eq. 4.1)", "training"),
    "time_domains": ("Time domains (Table 7)", "accuracy"),
    "failed_models": ("Failed models", "training"),
    "shape_variance": ("Shape variance", "accuracy"),
}


def analysis_studies():
    """Sorted study names that have at least one model."""
    return sorted({study for study, _ in MODELS})


def training_curves_path(study):
    return layout.figure(f"training_curves_{study}")


def itnn_models(study):
    """The iterator networks (ITNNs) of `study`: what the rollout figure draws."""
    return [m for s, m in MODELS if s == study and kind_of(SPECS[(s, m)]).iterator]


def itnn_studies():
    return sorted({s for s, _ in MODELS if itnn_models(s)})


def continuous_models(study):
    """The DDNNs and PINNs of `study` (every variant): what the predictions figure draws from."""
    return [m for s, m in MODELS if s == study and kind_of(SPECS[(s, m)]).continuous]


def prediction_studies():
    return sorted({s for s, _ in MODELS if continuous_models(s)})


def cut_studies():
    """Studies of problems B and C with models: those whose solution space the error cuts span."""
    return sorted({s for s, _ in MODELS if config["studies"][s]["problem"] in ("B", "C")})


def analysis_outputs():
    """Every file of the analysis stage, for the workflow's target rule."""
    both = ("csv", "html")
    tables = [layout.analysis_table(name, ext) for name in ANALYSIS_TABLES for ext in both]
    tables += [layout.analysis_table("benchmark", ext) for ext in both]
    figures = [layout.figure(name) for name in ("accuracy_vs_neurons", "error_vs_inference", "iteration_cost")]
    curves = [training_curves_path(study) for study in analysis_studies()]
    curves += [layout.figure(f"predictions_{study}") for study in prediction_studies()]
    curves += [layout.figure(f"error_cuts_{study}") for study in cut_studies()]
    curves += [layout.figure(f"rollout_{study}") for study in itnn_studies()]
    curves += [layout.figure(f"error_maps_{study}") for study in resample_studies()]
    if resample_studies():
        tables += [layout.analysis_table("resampling", ext) for ext in both]
    if config["cost_sweep"]["enabled"]:  # architecture cost sweep (cost_sweep.smk)
        tables += [layout.cost_sweep_file(f"timings.{ext}") for ext in both]
        tables += [layout.analysis_table(f"cost_anova_{r}", ext) for r in ("time", "speedup") for ext in both]
        figures += [layout.figure("inference_vs_neurons"), layout.figure("compile_speedup")]
    tables += [layout.analysis_table(name, ext) for name in ("reproduction", "surrogate_pays") for ext in both]
    summary = [layout.summary("parquet"), layout.summary("csv"), layout.config_page()]
    return [*summary, *tables, *figures, *curves]


def reproduction_inputs():
    """What the reproduction page judges: the summary, the benchmark table, the cost sweep's ANOVAs (if
    run), the error cuts of single-stimulus B studies and the resampling stage's error maps."""
    both = {"summary": layout.summary("parquet"), "benchmark": layout.analysis_table("benchmark", "csv")}
    if config["cost_sweep"]["enabled"]:
        both |= {f"cost_anova_{r}": layout.analysis_table(f"cost_anova_{r}", "csv") for r in ("time", "speedup")}
    cuts = [layout.error_cuts_table(s) for s in cut_studies() if config["studies"][s]["problem"] == "B"]
    maps = [layout.resample_file(s, "error_maps.parquet") for s in resample_studies()]
    return both | {"error_cuts": cuts, "error_maps": maps}


def table_output(name):
    """The HTML page of an analysis table, marked for the report."""
    title, stage = ANALYSIS_TABLES[name]
    return report_item(layout.analysis_table(name, "html"), f"../report/{name}.rst", stage, title, kind="table")


# --- used by resample.smk

RESAMPLE = {study: resample_specs(config, study) for study in config["studies"]}


def resample_studies():
    return sorted(study for study, models in RESAMPLE.items() if models)


def resample_model_spec(wildcards):
    return RESAMPLE[wildcards.study][wildcards.which]


def _resample_specs(config, study):
    return list(resample_specs(config, study).values())


# {(study, which): the study whose resampling model it is}: a variant's base model that its study trains
SHARED_RESAMPLE_MODELS = {
    (_study, _which): _source
    for _study in resample_studies()
    for _which in RESAMPLE[_study]
    if (_source := models_shared_with(config, _study, _resample_specs).get(RESAMPLE[_study][_which]["model"]))
}


def model_threads(wildcards):
    return training_threads(model_spec(wildcards), (wildcards.study, wildcards.model) in SHARED_MODELS)


def model_gpus(wildcards):
    return training_gpus(model_spec(wildcards), (wildcards.study, wildcards.model) in SHARED_MODELS)


def resample_threads(wildcards):
    return training_threads(
        resample_model_spec(wildcards),
        (wildcards.study, wildcards.which) in SHARED_RESAMPLE_MODELS,
    )


def resample_gpus(wildcards):
    return training_gpus(
        resample_model_spec(wildcards),
        (wildcards.study, wildcards.which) in SHARED_RESAMPLE_MODELS,
    )


def resample_model_inputs(wildcards):
    """A resampling model's data sets, or the same model of the study it is copied from."""
    if (source := SHARED_RESAMPLE_MODELS.get((wildcards.study, wildcards.which))) is not None:
        return {"shared": layout.resample_file(source, f"{wildcards.which}/metrics.json")}
    return model_data(resample_model_spec(wildcards))


def resampled_chunks(wildcards):
    """The solved chunks of a study's high-error set: as many as `select_high_error` made (maybe none)."""
    chunks = checkpoints.select_high_error.get(study=wildcards.study).output.chunks
    names = glob_wildcards(f"{chunks}/{{chunk}}.parquet").chunk
    return [layout.resample_file(wildcards.study, f"solved/{name}.parquet") for name in sorted(names)]
