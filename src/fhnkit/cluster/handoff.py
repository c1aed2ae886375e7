"""A model handed to the job that owns it: moved from its fleet's directory (with its builds), or
copied from the study an ablation's variant shares it with.

Light on purpose (no torch): the rules `train` and `compile` of a model trained (and compiled) by a
fleet, or trained by another study, only move or copy files.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from ..artifacts import read_parquet_meta, write_json, write_parquet
from ..plan.layout import FINISHED_MARKER, MODEL_FILES

COMPILED_RECORD = "compiled.json"


def take_from_fleet(fleet_model_dir, model_dir, config_hash: str | None) -> bool:
    """Move a model that a fleet finished (`metrics.json` there, made from the same spec: same config
    hash) into `model_dir`, `metrics.json` last; False (and nothing moved) when there is none."""
    src, dst = Path(fleet_model_dir), Path(model_dir)
    try:
        metrics = json.loads((src / FINISHED_MARKER).read_text())
    except (OSError, ValueError):
        return False
    if metrics.get("config_hash") != config_hash or not all((src / name).is_file() for name in MODEL_FILES):
        return False
    _hand_over(src, dst, MODEL_FILES)  # metrics.json is the last of them: the model counts as finished only then
    return True


def _hand_over(src: Path, dst: Path, names) -> None:
    """Move the files `names` from `src` into `dst` in that order, each complete where it appears (a hard
    link, or a copy renamed into place), and only then remove them from `src`: a job killed on the way
    leaves every file still in `src` (a later hand-over takes them again), never some in one directory and
    the rest in the other."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in names:
        target = dst / name
        target.unlink(missing_ok=True)  # a link of the same file from a hand-over killed before
        try:
            os.link(src / name, target)
        except OSError:  # a file system without hard links
            landing = dst / f".{name}.handover"
            shutil.copyfile(src / name, landing)
            os.replace(landing, target)
    for name in names:
        (src / name).unlink()


def take_shared_model(source_dir, model_dir, spec: dict) -> dict:
    """Copy into `model_dir` the model of another study that is this `spec`'s (`fhnkit.plan.grid.
    models_shared_with`: an ablation's variant that leaves it alone): the weights and network as they are,
    the history and the metrics (`metrics.json` last) with this spec's study and config hash and
    `shared_from` naming the study that trained it; returns the metrics. A source that is not this model
    (another name, or not finished) is refused, naming it."""
    import pandas as pd  # the history's rows

    src, dst = Path(source_dir), Path(model_dir)
    try:
        metrics = json.loads((src / FINISHED_MARKER).read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{src} holds no finished model to share with {spec['study']}/{spec['model']}: {err}") from err
    if metrics.get("model") != spec["model"]:
        raise ValueError(f"{src} holds model {metrics.get('model')!r}, not {spec['model']!r} of {spec['study']}")
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("weights.pt", "spec.json"):
        tmp = dst / f".{name}.shared"
        shutil.copyfile(src / name, tmp)
        os.replace(tmp, dst / name)
    shared = {"shared_from": metrics["study"]}
    write_parquet(pd.read_parquet(src / "history.parquet"), dst / "history.parquet",
                  {**read_parquet_meta(src / "history.parquet"), "spec": spec, **shared})
    metrics = {**metrics, "study": spec["study"], "config_hash": spec["config_hash"], **shared}
    write_json(metrics, dst / FINISHED_MARKER)
    return metrics


def file_sha256(path) -> str:
    """sha256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def take_compiled_from_fleet(fleet_compiled_dir, compiled_dir, weights_path, settings: dict) -> bool:
    """Move the builds a fleet made of a model (its `compiled.json` and the files beside it) into
    `compiled_dir`, `compiled.json` last, when they were built from these very weights (`weights_path`'s
    sha256) with these compile `settings`; False otherwise, when builds of other weights or settings are
    removed (they can never be used: the weights they were built from are gone, or the settings changed)."""
    src, dst = Path(fleet_compiled_dir), Path(compiled_dir)
    try:
        record = json.loads((src / COMPILED_RECORD).read_text())
    except (OSError, ValueError):
        return False
    if record.get("weights_sha256") != file_sha256(weights_path) or record.get("settings") != settings:
        shutil.rmtree(src, ignore_errors=True)
        return False
    builds = sorted(p.name for p in src.iterdir() if p.name != COMPILED_RECORD and p.is_file())
    _hand_over(src, dst, [*builds, COMPILED_RECORD])
    return True
