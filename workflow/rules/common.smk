# Shared by every stage: the validated config and the model grid, expanded at parse time.

import sys

from fhnkit.plan import ConfigError, data_determinants, derive_seed, expand_all, layout, resample_specs, validate_config

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
    model="[a-z]+_[a-z0-9-]+(_w[0-9]+)?_bs[0-9]+_s[0-9]+",
    split="train|val|region|march",
    which="base|retrained",
    chunk="chunk_[0-9]+",


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


def all_model_outputs(name):
    """`name` (e.g. metrics.json) of every model of every study."""
    return [model_path(study, model, name) for study, model in MODELS]


def model_spec(wildcards):
    return SPECS[(wildcards.study, wildcards.model)]


def model_data(spec):
    """A model's data sets (named as train_model's arguments): train/val, and its study's region set
    (DDNNa/PINNa data term), marching set (validation marched to the horizon) and high-error set
    (resampling), when it uses them."""
    return layout.data_files(spec)


def model_inputs(wildcards):
    return model_data(model_spec(wildcards))


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


# --- used by benchmark.smk

def study_models(study):
    return [model for s, model in MODELS if s == study]


# --- used by analyse.smk

# The report has one category per stage of the study and one subcategory per study (or ALL_STUDIES
# for what spans them); every item is labelled with what it is and its type. Snakemake sorts both
# alphabetically: the numbers keep the stages in reading order, the parenthesis puts ALL_STUDIES first.
REPORT_STAGES = {
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
    return report(path, caption=caption, category=REPORT_STAGES[stage], subcategory=study,
                  labels={"item": item, "type": kind, "format": REPORT_FORMATS[kind]})


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
    return f"results/figures/training_curves_{study}.png"


def itnn_models(study):
    return [m for s, m in MODELS if s == study and SPECS[(s, m)]["class"] == "itnn"]


def itnn_studies():
    return sorted({s for s, _ in MODELS if itnn_models(s)})


def continuous_models(study):
    """The DDNNs and PINNs of `study` (every variant): what the predictions figure draws from."""
    return [m for s, m in MODELS if s == study and SPECS[(s, m)]["class"] in ("ddnn", "pinn")]


def prediction_studies():
    return sorted({s for s, _ in MODELS if continuous_models(s)})


def cut_studies():
    """Studies of problems B and C with models: those whose solution space the error cuts span."""
    return sorted({s for s, _ in MODELS if config["studies"][s]["problem"] in ("B", "C")})


def analysis_outputs():
    """Every file of the analysis stage, for the workflow's target rule."""
    tables = [f"results/analysis/{name}.{ext}" for name in ANALYSIS_TABLES for ext in ("csv", "html")]
    tables += ["results/analysis/benchmark.csv", "results/analysis/benchmark.html"]
    figures = ["results/figures/accuracy_vs_neurons.png", "results/figures/error_vs_inference.png",
               "results/figures/iteration_cost.png"]
    curves = [training_curves_path(study) for study in analysis_studies()]
    curves += [f"results/figures/predictions_{study}.png" for study in prediction_studies()]
    curves += [f"results/figures/error_cuts_{study}.png" for study in cut_studies()]
    curves += [f"results/figures/rollout_{study}.png" for study in itnn_studies()]
    curves += [f"results/figures/error_maps_{study}.png" for study in resample_studies()]
    if resample_studies():
        tables += ["results/analysis/resampling.csv", "results/analysis/resampling.html"]
    if config["cost_sweep"]["enabled"]:  # architecture cost sweep (cost_sweep.smk)
        tables += ["results/cost_sweep/timings.csv", "results/cost_sweep/timings.html"] + [
            f"results/analysis/cost_anova_{r}.{ext}" for r in ("time", "speedup") for ext in ("csv", "html")]
        figures += ["results/figures/inference_vs_neurons.png", "results/figures/compile_speedup.png"]
    return ["results/summary.parquet", "results/summary.csv", "results/config.html", *tables, *figures, *curves]


def table_output(name):
    """The HTML page of an analysis table, marked for the report."""
    title, stage = ANALYSIS_TABLES[name]
    return report_item(f"results/analysis/{name}.html", f"../report/{name}.rst", stage, title, kind="table")


# --- used by resample.smk

RESAMPLE = {study: resample_specs(config, study) for study in config["studies"]}


def resample_studies():
    return sorted(study for study, models in RESAMPLE.items() if models)


def resample_model_spec(wildcards):
    return RESAMPLE[wildcards.study][wildcards.which]


def resample_model_inputs(wildcards):
    return model_data(resample_model_spec(wildcards))


def resampled_chunks(wildcards):
    """The solved chunks of a study's high-error set: as many as `select_high_error` made (maybe none)."""
    chunks = checkpoints.select_high_error.get(study=wildcards.study).output.chunks
    names = glob_wildcards(f"{chunks}/{{chunk}}.parquet").chunk
    return expand("results/{study}/resample/solved/{chunk}.parquet", study=wildcards.study, chunk=sorted(names))
