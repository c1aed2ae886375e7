"""Whether a model and a data set belong together, and whether a model directory holds a finished model.

A model is trained on one problem (A: t; B: t, U0, W0; C: t, U0, W0, K) and means nothing on
data of another. Every data set records its problem and columns in its metadata, every finished
model its problem in `metrics.json` (written last: without it, the training never finished), so
training, evaluation, compilation and the benchmark refuse a mismatch by name instead of
computing numbers that look like results.
"""

from __future__ import annotations

import json
from pathlib import Path

from .artifacts import read_parquet_meta


class ModelFileError(ValueError):
    """A model directory whose spec or weights are missing or damaged; the message names the file."""


class MismatchError(ValueError):
    """A model used with data, or a directory used as a model, that it is not; the message names both."""


def data_meta(path) -> dict:
    """The fhnkit metadata of data set `path` ({} for a Parquet file written by other tools); an unreadable
    file raises MismatchError."""
    try:
        return read_parquet_meta(path)
    except Exception as err:  # noqa: BLE001 (pyarrow raises several types for a damaged file)
        raise MismatchError(f"{path} is not a readable Parquet data set ({type(err).__name__}: {err})") from None


def finished_model(directory) -> dict:
    """`metrics.json` of the model in `directory`: what it was trained on and how it ended. A directory
    without it (a training that never finished) or with a damaged one raises MismatchError."""
    path = Path(directory) / "metrics.json"
    if not path.is_file():
        raise MismatchError(f"{directory} holds no finished model (no metrics.json: its training never finished); "
                            "train it to the end first (e.g. `snakemake <its metrics.json>` or `fhnkit train`)")
    try:
        record = json.loads(path.read_text())
        record["problem"]
    except (ValueError, KeyError, TypeError) as err:
        raise MismatchError(f"{path} is damaged ({type(err).__name__}: {err}); train the model again") from None
    return record


def check_fits(model: str, problem: str, data_path) -> None:
    """Refuse data set `data_path` for `model` (a name for messages) of `problem` when the data set is of
    another problem (one written by other tools records none: its columns decide)."""
    meta = data_meta(data_path)
    if meta.get("problem", problem) != problem:
        raise MismatchError(
            f"{model} is a problem {problem} model but {data_path} holds problem "
            f"{meta['problem']} data (study {meta.get('study')}, inputs {meta.get('inputs')}); use a data set of "
            f"its own study")


def check_problem(directory, record: dict, study: str, problem: str) -> None:
    """Refuse the model in `directory` (its `finished_model` record) for `study` of another `problem`."""
    if record["problem"] != problem:
        raise MismatchError(f"{directory} holds a problem {record['problem']} model (study {record.get('study')}), "
                            f"but study {study} is problem {problem}; use a model of that study")
