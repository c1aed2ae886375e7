"""What a config says about how and where work runs, as apart from what it makes.

Editing an execution setting after a finished run reruns nothing: it is left out of every rule's
params, of every config hash and of the report's configuration page. Each such setting changes
results at most by rounding, as the README's "Editing a config after a run" says, with the command
that redoes the work anyway:

- `fleet` (how many models train together): fleet grouping changes weights by about 1e-7;
- `data_solver.backend` (CUDA or numba): the same bits (tests/test_cuda_solver.py);
- `training.threads`, `training.device` (CPU or GPU: other kernels, the last bits of the weights)
  and `training.checkpoint_every` (a resumed run is bit-identical to an uninterrupted one).
"""

from __future__ import annotations

TOP_EXECUTION_KEYS = ("fleet",)
DATA_EXECUTION_KEYS = ("backend",)
TRAINING_EXECUTION_KEYS = ("threads", "device", "checkpoint_every")


class ExecutionOnly(str):
    """A rule parameter that says how to run a job, not what the job makes (a model's threads, a study's
    fleets), given to its script as `snakemake.params.<name>.value`. To Snakemake it is one constant text
    whatever the value: the params trigger (which compares reprs) and the between-workflow cache key (JSON)
    see "execution-only" only, so a change to `value` reruns nothing and misses no cache entry. Give it from
    a function (`lambda w: ExecutionOnly(...)`): Snakemake formats a literal text param with the wildcards,
    which would drop the value."""

    TEXT = "execution-only"

    def __new__(cls, value):
        token = super().__new__(cls, cls.TEXT)
        token.value = value
        return token

    def __repr__(self) -> str:
        return repr(self.TEXT)

    def __reduce__(self):  # pickled (to the job's script) with its value
        return (ExecutionOnly, (self.value,))


def canonical(value):
    """`value` with every dict's keys in sorted order (recursively), so that the order in which a config
    file writes its keys never changes a rule's params (Snakemake compares their repr)."""
    if isinstance(value, dict):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [canonical(item) for item in value]
    return value


def data_solver_identity(config: dict) -> dict:
    """The data_solver settings that determine the numbers (method, dt, precision), without `DATA_EXECUTION_KEYS`."""
    return {k: v for k, v in config["data_solver"].items() if k not in DATA_EXECUTION_KEYS}


def training_identity(training: dict) -> dict:
    """A study's training settings that determine its models, without `TRAINING_EXECUTION_KEYS`."""
    return {k: v for k, v in training.items() if k not in TRAINING_EXECUTION_KEYS}


def model_identity(spec: dict) -> dict:
    """A model spec without its execution settings: what its rule's params and config hash are made of."""
    return {**spec, "training": training_identity(spec["training"])}


def results_config(config: dict) -> dict:
    """The config without the settings that only say how work runs: what the results depend on, as the
    report's configuration page shows it."""
    studies = {name: {**study, "training": training_identity(study["training"])}
               for name, study in config["studies"].items()}
    top = {k: v for k, v in config.items() if k not in TOP_EXECUTION_KEYS}
    return {**top, "data_solver": data_solver_identity(config), "studies": studies}
