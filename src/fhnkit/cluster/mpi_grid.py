"""Train a whole grid inside one MPI allocation: `mpirun -n N fhnkit train-grid CONFIG`.

Where a cluster gives one large allocation rather than many small jobs, one MPI
program can train every model of the grid: rank 0 hands out the unfinished
models one at a time (or, with the config's `fleet` > 1, fleets of a study's
models trained together), most expensive first, to whichever rank asks (itself
included), so that ranks stay busy until the queue is empty. Each rank trains
on GPU `local_rank % n_gpus` of the GPUs it sees (`fhnkit.cluster.devices`), chosen
before CUDA initialises.

Every model is written exactly where, and as, the Snakemake rule `train` writes
it: `results/{study}/models/{model}/` (weights.pt, spec.json, history.parquet,
metrics.json last) with its log in `logs/{study}/train/{model}.log`, so that the
analysis stages of a later `snakemake` run take them as they are. A model whose
metrics.json exists is finished and skipped; an interrupted one resumes from its
checkpoint. Missing data sets are made first, by rank 0, with the same function
as the rule `dataset` (same bytes).

Without mpi4py, or started without an MPI launcher, the program is one rank that
trains the models one after the other.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

from ..plan import layout
from ..plan.config import load_config
from ..plan.fleets import fleet_size, study_fleets
from ..plan.grid import expand_study
from ..plan.kinds import kind_of
from ..plan.model_spec import ModelSpec
from .devices import select_rank_device, visible_gpus
from .mpi import TAG_ASK, TAG_WORK, Dispatcher, local_rank, wait

log = logging.getLogger(__name__)




# --------------------------------------------------------------------------- the grid


def grid_specs(config: dict, studies=None) -> list[dict]:
    """The specs of the selected studies' models (every study when `studies` is empty)."""
    names = list(config["studies"])
    unknown = [s for s in studies or [] if s not in names]
    if unknown:
        raise ValueError(f"unknown study {unknown}; studies in this config: {names}")
    return [spec for name in (studies or names) for spec in expand_study(config, name)]


def data_splits(spec: dict) -> list[str]:
    """The data sets a model trains and validates on (as the rule `train`)."""
    return list(layout.data_files(spec))


def model_dir(results: Path, spec: dict) -> Path:
    return Path(layout.model_dir(spec["study"], spec["model"], str(results)))


def data_path(results: Path, study: str, split: str) -> Path:
    return Path(layout.dataset(study, split, str(results)))


def is_finished(results: Path, spec: dict) -> bool:
    """A model is finished when its metrics.json exists (written last, as in the rule `train`)."""
    return (model_dir(results, spec) / layout.FINISHED_MARKER).exists()


def cost(spec: dict) -> float:
    """A rough relative cost of training a model, to hand out the expensive ones first: iterations
    times the work of one step (parameters times the points a step evaluates; a PINN also
    differentiates on its collocation points)."""
    layers = [w for _, w in spec["layers"]]
    weights = sum(a * b for a, b in zip([4] + layers, layers + [2], strict=True))
    training = spec["training"]
    points = spec["batch_size"] + 3 * kind_of(spec).collocation_points(training.get("batch", {}))
    return float(training["iterations"]) * weights * max(points, 1)


def make_missing_datasets(config: dict, specs: list[dict], results: Path, logs: Path) -> list[Path]:
    """Write the data sets the models need and that do not exist yet; returns those written."""
    from ..datasets.simulate import write_dataset

    needed = sorted({(s["study"], split) for s in specs for split in data_splits(s)})
    written = []
    for study, split in needed:
        path = data_path(results, study, split)
        if path.exists():
            continue
        if split == "resampled":
            raise FileNotFoundError(f"{path} is missing: it comes from the resampling stage; run `snakemake "
                                    f"--cores all {path}` first (or the rule train_grid_mpi, which does)")
        with _job_log(Path(layout.log(study, f"data_{split}", logs=str(logs)))):
            df = write_dataset(config, study, split, path)
            logging.getLogger().info("wrote %d rows to %s", len(df), path)
        written.append(path)
    return written


@contextmanager
def _job_log(path: Path):
    """Send logging and stderr (tqdm's progress) to `path` for the duration, as a Snakemake job's log."""
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    with open(path, "w", buffering=1) as fh:
        handler = logging.StreamHandler(fh)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        old_level, old_stderr = root.level, sys.stderr
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        sys.stderr = fh
        try:
            yield fh
        finally:
            sys.stderr = old_stderr
            root.removeHandler(handler)
            root.setLevel(old_level)


def train_one(spec: dict, results: Path, logs: Path, rank: int) -> dict:
    """Train one model into its directory, logging to its log file; never raises for a model's own
    failure. Returns {study, model, status (ok|diverged|error|skipped), seconds, error}."""
    from ..training.train import train_model

    out = {"study": spec["study"], "model": spec["model"], "rank": rank, "error": None}
    if is_finished(results, spec):  # finished meanwhile (another run)
        return {**out, "status": "skipped", "seconds": 0.0}
    t0 = time.perf_counter()
    paths = {split: data_path(results, spec["study"], split) for split in data_splits(spec)}
    with _job_log(Path(layout.train_log(spec["study"], spec["model"], str(logs)))):
        logger = logging.getLogger()
        logger.info("training %s/%s (%s, %s) on MPI rank %d, host %s, CUDA_VISIBLE_DEVICES=%s", spec["study"],
                    spec["model"], spec["class"], spec["arch"], rank, os.uname().nodename,
                    os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"))
        try:
            metrics = train_model(ModelSpec.from_mapping(spec), paths["train"], paths["val"],
                                  model_dir(results, spec),
                                  region_path=paths.get("region"), march_path=paths.get("march"),
                                  resampled_path=paths.get("resampled"))
        except Exception as exc:  # noqa: BLE001 (one model's failure must not stop the grid)
            logger.error("training failed: %s\n%s", exc, traceback.format_exc())
            return {**out, "status": "error", "seconds": time.perf_counter() - t0,
                    "error": f"{type(exc).__name__}: {exc}"}
        if metrics["status"] == "ok":
            logger.info("done: mean error %.3e, max error %.3e, %.2e s/iteration", metrics["mean_err"],
                        metrics["max_err"], metrics["iter_time_s"])
            status = "ok"
        else:
            logger.error("recorded as failed: %s", metrics["error"])
            status = "diverged"
    return {**out, "status": status, "seconds": time.perf_counter() - t0, "error": metrics.get("error")}


def work_units(config: dict, specs: list[dict], todo: list[int]) -> list[tuple[str | None, list[int]]]:
    """The work handed out, most expensive first: one model at a time, (None, [i]), or with the config's
    `fleet` > 1, fleets of a study's unfinished models, (fleet name, [i, ...]), as `study_fleets` cuts them."""
    if fleet_size(config) <= 1:
        units = [(None, [i]) for i in todo]
    else:
        units = []
        for study in sorted({specs[i]["study"] for i in todo}):
            index = {specs[i]["model"]: i for i in todo if specs[i]["study"] == study}
            fleets = study_fleets(config, [specs[i] for i in index.values()])
            units += [(name, [index[m] for m in models]) for name, models in fleets.items()]
    return sorted(units, key=lambda u: (-sum(cost(specs[i]) for i in u[1]), specs[u[1][0]]["study"],
                                        specs[u[1][0]]["model"]))


def train_unit(unit: tuple[str | None, list[int]], specs: list[dict], results: Path, logs: Path, rank: int) -> list:
    """Train one unit of `work_units`: a model alone (`train_one`) or a fleet (`train_fleet_unit`)."""
    name, indices = unit
    if name is None:
        return [train_one(specs[i], results, logs, rank) for i in indices]
    return train_fleet_unit(name, [specs[i] for i in indices], results, logs, rank)


def train_fleet_unit(name: str, fleet: list[dict], results: Path, logs: Path, rank: int) -> list[dict]:
    """Train a fleet of one study's models together (`fhnkit.training.train_fleet`), each written where
    the rule `train` writes it, checkpoints in the study's fleet directory, one log for the fleet; never
    raises for the models' own failures. Returns one dict per model, as `train_one`."""
    from ..training.fleet import train_fleet

    study = fleet[0]["study"]
    t0 = time.perf_counter()
    jobs = [(ModelSpec.from_mapping(s), {split: data_path(results, study, split) for split in data_splits(s)},
             model_dir(results, s)) for s in fleet]
    base = [{"study": study, "model": s["model"], "rank": rank, "error": None} for s in fleet]
    with _job_log(Path(layout.log(study, "train", f"fleet_{name}", logs=str(logs)))):
        logger = logging.getLogger()
        logger.info("training %d models of %s as fleet %s on MPI rank %d, host %s, CUDA_VISIBLE_DEVICES=%s",
                    len(fleet), study, name, rank, os.uname().nodename,
                    os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"))
        try:
            outcomes = train_fleet(jobs, checkpoint_dir=Path(layout.fleet_dir(study, str(results))))
        except Exception as exc:  # noqa: BLE001 (one fleet's failure must not stop the grid)
            logger.error("training failed: %s\n%s", exc, traceback.format_exc())
            seconds, error = time.perf_counter() - t0, f"{type(exc).__name__}: {exc}"
            return [{**b, "status": "error", "seconds": seconds, "error": error} for b in base]
    seconds = (time.perf_counter() - t0) / len(fleet)
    out = []
    for b, outcome in zip(base, outcomes, strict=True):
        if isinstance(outcome, Exception):  # on_divergence: fail
            out.append({**b, "status": "error", "seconds": seconds, "error": str(outcome)})
        else:
            status = "ok" if outcome["status"] == "ok" else "diverged"
            out.append({**b, "status": status, "seconds": seconds, "error": outcome.get("error")})
    return out


def snakemake_incomplete(workdir: Path, specs: list[dict], results: Path) -> list[str]:
    """Output files of finished models that Snakemake still marks incomplete (its run was killed
    while training them): the next `snakemake` would refuse them until `--cleanup-metadata`."""
    import base64

    marker_dir = Path(workdir) / ".snakemake" / "incomplete"
    if not marker_dir.is_dir():
        return []
    marked = set()
    for marker in marker_dir.iterdir():
        try:
            marked.add(Path(base64.urlsafe_b64decode(marker.name).decode()))
        except (ValueError, UnicodeDecodeError):
            continue
    paths = []
    for spec in specs:
        if is_finished(results, spec):
            d = model_dir(results, spec)
            for name in layout.MODEL_FILES:
                for candidate in (d / name, (d / name).resolve()):
                    if candidate in marked or (not candidate.is_absolute() and
                                               Path(workdir).resolve() / candidate in marked):
                        paths.append(str(d / name))
                        break
    return sorted(set(paths))


def run_grid(config_path, studies=None, results="results", logs=None, comm=None, out=None) -> dict:
    """Train the grid's unfinished models over the ranks of `comm` (None: one process).

    Returns, on rank 0, {"trained": [...], "skipped": [...], "failed": [...], "diverged": [...],
    "results": [per-model dicts]}; on other ranks, the results of the models they trained. An
    error outside a model's training (a bad config, an unwritable directory) on one rank of
    several aborts the whole MPI job rather than leaving the other ranks waiting.
    """
    if comm is None or comm.Get_size() == 1:
        return _run_grid(config_path, studies, results, logs, comm, out)
    try:
        return _run_grid(config_path, studies, results, logs, comm, out)
    except BaseException as exc:
        print(f"[rank {comm.Get_rank()}] fhnkit train-grid: {type(exc).__name__}: {exc}; aborting all ranks",
              file=sys.stderr, flush=True)
        traceback.print_exc()
        comm.Abort(2 if isinstance(exc, ValueError) else 1)
        raise


def _run_grid(config_path, studies, results, logs, comm, out) -> dict:
    out = out or sys.stdout
    results = Path(results)
    logs = Path(logs) if logs is not None else results.parent / "logs"
    rank = comm.Get_rank() if comm is not None else 0
    size = comm.Get_size() if comm is not None else 1

    config = load_config(config_path)
    specs = sorted(grid_specs(config, studies), key=lambda s: (s["study"], s["model"]))

    # the GPU of this rank, before anything initialises CUDA
    pinned = sorted({s["training"].get("device") for s in specs} - {None, "auto", "cuda", "cpu", "gpu"})
    gpu = None if pinned else select_rank_device(local_rank(comm))

    def say(msg):
        print(f"[rank {rank}/{size}] {msg}", file=out, flush=True)

    if rank == 0:
        written = make_missing_datasets(config, [s for s in specs if not is_finished(results, s)], results, logs)
        for path in written:
            say(f"wrote data set {path}")
        todo = work_units(config, specs, [i for i, s in enumerate(specs) if not is_finished(results, s)])
        skipped = [f"{s['study']}/{s['model']}" for s in specs if is_finished(results, s)]
        as_fleets = f" as {len(todo)} fleet(s) of at most {fleet_size(config)}" if fleet_size(config) > 1 else ""
        say(f"{len(specs)} models: {len(skipped)} finished (skipped), {sum(len(u[1]) for u in todo)} to train on "
            f"{size} rank(s){as_fleets}; GPUs visible: {','.join(visible_gpus()) or 'none'}")
    if comm is not None and size > 1:
        wait(comm.Ibarrier())  # the data sets exist before any rank trains
    if gpu is not None:
        say(f"on GPU {gpu} (CUDA_VISIBLE_DEVICES={gpu})")

    mine: list[dict] = []
    if rank == 0:
        dispatcher = Dispatcher(comm, todo)
        if size > 1:
            dispatcher.thread.start()
        while (unit := dispatcher.take()) is not None:
            for result in train_unit(unit, specs, results, logs, rank):
                mine.append(result)
                say(f"{result['status']}: {result['study']}/{result['model']} ({result['seconds']:.1f} s)")
        if size > 1:
            while dispatcher.thread.is_alive():
                dispatcher.thread.join(timeout=0.1)
            if dispatcher.error is not None:
                raise dispatcher.error
        every = mine + dispatcher.results
        summary = {key: [f"{r['study']}/{r['model']}" for r in every if r["status"] == status]
                   for key, status in (("trained", "ok"), ("diverged", "diverged"), ("failed", "error"))}
        summary.update(skipped=skipped, results=every)
        say(f"done: {len(summary['trained'])} trained, {len(summary['diverged'])} diverged (recorded as failed), "
            f"{len(summary['failed'])} failed, {len(skipped)} skipped")
        if summary["diverged"]:
            say(f"WARNING: diverged and recorded as failed: {', '.join(summary['diverged'])}")
        stale = snakemake_incomplete(results.parent, specs, results)
        if stale:
            say(f"NOTE: a killed Snakemake run marked {len(stale)} output file(s) of models finished here as "
                "incomplete; before the next snakemake run, accept them with:\n  snakemake --unlock && "
                "snakemake --cleanup-metadata "
                + " ".join(stale))
        if summary["failed"]:
            say(f"ERROR: no result for {', '.join(summary['failed'])}; see their logs under {logs}/ and run "
                "again (finished models are skipped)")
        return summary

    result = None
    while True:
        comm.send((rank, result), dest=0, tag=TAG_ASK)
        unit = wait(comm.irecv(source=0, tag=TAG_WORK))
        if unit is None:
            return {"results": mine}
        result = train_unit(unit, specs, results, logs, rank)
        mine.extend(result)
        for r in result:
            say(f"{r['status']}: {r['study']}/{r['model']} ({r['seconds']:.1f} s)")
