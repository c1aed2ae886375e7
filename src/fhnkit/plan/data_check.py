"""Data sets checked before a run plans anything that depends on them, and a damaged one remade.

A data set that exists is read back (its Parquet footer and schema, without its rows) and must
hold fhnkit's metadata and the columns that metadata names, and the bytes recorded when it was
written (`fhnkit.content`: hashed only when its size or modification time differ from the record).
One that does not (truncated, overwritten, not Parquet, changed in place) is made again from the
config, before the workflow builds its DAG, and put in place with the damaged file's modification
time: the same config gives the same bytes
(tests/test_datasets.py), so the models trained on it stay valid, and Snakemake, which would
rerun every model downstream of a data set that a job remakes, has nothing to rerun.

A data set made from another config (its metadata's config hash is not this config's) is not
damaged: Snakemake makes it again, and trains its models again, because the rules' params changed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from ..content import content_problem, record_content
from . import layout

META_KEY = b"fhnkit"  # where fhnkit.artifacts.write_parquet keeps a file's metadata
SPLITS = ("train", "val", "region", "march")  # the sets the `dataset` rule makes (fhnkit.datasets.SPLITS)


def dataset_problem(path) -> str | None:
    """Why the data set at `path` cannot be used, or None: unreadable as Parquet, without fhnkit's
    metadata, or without the columns its metadata names."""
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except Exception as err:  # noqa: BLE001 (pyarrow raises several types for a damaged file)
        return f"not a readable Parquet file ({type(err).__name__}: {err})"
    if (changed := content_problem(path)) is not None:
        return changed
    meta = (schema.metadata or {}).get(META_KEY)
    if meta is None:
        return "holds no fhnkit metadata (not written by fhnkit)"
    try:
        meta = json.loads(meta)
        missing = sorted((set(meta["inputs"]) | set(meta["outputs"])) - set(schema.names))
    except (ValueError, KeyError, TypeError):
        return "its fhnkit metadata is unreadable"
    return f"lacks the columns {missing}" if missing else None


def damaged_datasets(config: dict, results: str = layout.RESULTS) -> list[tuple[str, str, str, str]]:
    """(study, split, path, problem) of every existing data set of the config that cannot be used."""
    damaged = []
    for study in config["studies"]:
        for split in SPLITS:
            path = layout.dataset(study, split, results)
            if os.path.exists(path) and (problem := dataset_problem(path)) is not None:
                damaged.append((study, split, path, problem))
    return damaged


def remake_dataset(config: dict, study: str, split: str, path) -> None:
    """Make data set `split` of `study` again from `config` in a separate process (the solver's
    imports stay out of the caller) and put it in place of `path`, keeping its modification time."""
    path = Path(path)
    stat = path.stat()
    with tempfile.TemporaryDirectory(prefix="fhnkit_remake_", dir=path.parent) as tmp:
        config_file, out = Path(tmp) / "config.yaml", Path(tmp) / path.name
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        cmd = [sys.executable, "-m", "fhnkit", "dataset", str(config_file), "--study", study, "--split", split,
               "-o", str(out)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"could not make {path} again: {proc.stderr.strip() or proc.stdout.strip()}")
        os.utime(out, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        os.replace(out, path)
    record_content(path)

