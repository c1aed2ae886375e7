"""Where every file of a run lives: the one description of the results layout.

The workflow's rules and the package (the MPI grid runner, the CLI) both build
their paths here, so a file is never looked for where another part wrote it.
Paths are strings relative to the work directory (Snakemake's convention);
arguments may be wildcard patterns (`"{study}"`), which pass through unchanged.
"""

from __future__ import annotations

RESULTS = "results"
LOGS = "logs"
# directories of the whole run beside the studies' own, under RESULTS and LOGS: no study may take their names
RUN_DIRECTORIES = ("analysis", "figures", "cost_sweep", "mpi")

# what a trained model's directory holds; metrics.json is written last: a model is finished when it exists
MODEL_FILES = ("weights.pt", "spec.json", "history.parquet", "metrics.json")
FINISHED_MARKER = "metrics.json"

SPLITS = ("train", "val", "region", "march")  # data sets made by the rule `dataset`
RESAMPLED = "resampled"  # the high-error set, made by the resampling stage


def dataset(study: str, split: str, results: str = RESULTS) -> str:
    """A study's data set `split` (train, val, region, march, or resampled)."""
    if split == RESAMPLED:
        return resample_file(study, "data.parquet", results)
    return f"{results}/{study}/data/{split}.parquet"


def model_dir(study: str, model: str, results: str = RESULTS) -> str:
    """The directory of one trained model of the grid (`MODEL_FILES`)."""
    return f"{results}/{study}/models/{model}"


def model_file(study: str, model: str, name: str, results: str = RESULTS) -> str:
    return f"{model_dir(study, model, results)}/{name}"


def compiled_record(study: str, model: str, results: str = RESULTS) -> str:
    """The compile stage's record of a model's builds (and the builds beside it)."""
    return f"{results}/{study}/compiled/{model}/compiled.json"


def benchmark_record(study: str, results: str = RESULTS) -> str:
    return f"{results}/{study}/benchmark.json"


def error_cuts_table(study: str, results: str = RESULTS) -> str:
    """A study's model errors over cuts of its solution space (the data of its error-cuts figure)."""
    return f"{results}/{study}/error_cuts.parquet"


def resample_file(study: str, name: str, results: str = RESULTS) -> str:
    """A file of a study's high-error resampling stage (`base/`, `retrained/`, chunks, the merged set)."""
    return f"{results}/{study}/resample/{name}"


def figure(name: str, results: str = RESULTS) -> str:
    """A report figure, `name` without extension (e.g. `training_curves_B_S`)."""
    return f"{results}/figures/{name}.png"


def analysis_table(name: str, ext: str, results: str = RESULTS) -> str:
    """An analysis table as `csv` (the data) or `html` (its report page)."""
    return f"{results}/analysis/{name}.{ext}"


def summary(ext: str, results: str = RESULTS) -> str:
    """The one-row-per-model summary table (`parquet` or `csv`)."""
    return f"{results}/summary.{ext}"


def cost_sweep_file(name: str, results: str = RESULTS) -> str:
    return f"{results}/cost_sweep/{name}"


def config_page(results: str = RESULTS) -> str:
    """The report's page of the run's validated config."""
    return f"{results}/config.html"


def mpi_file(name: str, results: str = RESULTS) -> str:
    """A file of the one-job MPI training of the grid (its config, its done marker)."""
    return f"{results}/mpi/{name}"


def fleet_dir(study: str, results: str = RESULTS) -> str:
    """Where a study's fleet job writes its models (`fleet_model_dir`), its checkpoints (named by their
    models, whichever fleet trains them) and, last, `fleet_marker`; each model's own `train` job then moves
    the model to `model_dir`. No path here names a fleet: how a study's models are cut into fleets (the
    config's `fleet`) says how they train, and changing it must leave every job's inputs as they were."""
    return f"{results}/{study}/fleets"


def fleet_model_dir(study: str, model: str, results: str = RESULTS) -> str:
    return f"{fleet_dir(study, results)}/{model}"


def fleet_compiled_dir(study: str, model: str, results: str = RESULTS) -> str:
    """Where a fleet job compiles a model it trained; the model's `compile` job moves the builds from there."""
    return f"{fleet_model_dir(study, model, results)}/compiled"


def fleet_marker(study: str, family: str, results: str = RESULTS) -> str:
    """The last file of a study's fleet job of one family (`fhnkit.plan.fleets.fleet_family`)."""
    return f"{fleet_dir(study, results)}/{family}.done"


def log(*parts: str, logs: str = LOGS) -> str:
    """A job's log: `log("B_S", "train", model)` -> logs/B_S/train/<model>.log."""
    return f"{logs}/{'/'.join(parts)}.log"


def train_log(study: str, model: str, logs: str = LOGS) -> str:
    return log(study, "train", model, logs=logs)


def needs_region_data(spec: dict) -> bool:
    """Whether a model trains on its study's region data set."""
    region = spec["region_settings"] if spec.get("region") else None
    return region is not None and region["data"]["n"] > 0


def needs_resampled_data(spec: dict) -> bool:
    """Whether a model trains on its study's high-error set (a region model of a study with resampling)."""
    return spec.get("resample") is not None


def data_files(spec: dict, results: str = RESULTS) -> dict[str, str]:
    """The data sets a model trains and validates on, keyed as the arguments of `train_model`
    (train, val, and region, march, resampled when it uses them)."""
    splits = ["train", "val"]
    if needs_region_data(spec):
        splits.append("region")
    if spec.get("marching"):
        splits.append("march")
    if needs_resampled_data(spec):  # made by the resampling stage (workflow/rules/resample.smk)
        splits.append(RESAMPLED)
    return {split: dataset(spec["study"], split, results) for split in splits}



def unknown_target(models: dict[str, list[str]], study: str, model: str | None = None) -> str | None:
    """Why this config cannot make files of `study` (or of its `model`), saying which studies (models) it
    has; None when it can. `models`: the config's {study: [model names]}."""
    if study not in models:
        return f"this config has no study {study!r}; its studies: {sorted(models)}"
    if model is not None and model not in models[study]:
        some = ", ".join(models[study][:4])
        return (f"study {study} has no model {model!r} ({len(models[study])} models, e.g. {some}; all of them: "
                f"fhnkit grid CONFIG --study {study})")
    return None
