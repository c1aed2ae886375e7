"""Writing artifacts atomically, with the metadata that made them.

A file is written next to its destination and renamed into place only when
complete, so a killed job never leaves a half-written output that looks done.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from . import __version__

META_KEY = b"fhnkit"


def versions() -> dict:
    """Versions of the software that produce an artifact."""
    import numba
    import numpy
    import torch

    return {"fhnkit": __version__, "python": platform.python_version(), "numpy": numpy.__version__,
            "numba": numba.__version__, "torch": torch.__version__}


def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def write_parquet(df, path, meta: dict) -> None:
    """Write a DataFrame as Parquet with `meta` (JSON) in the schema metadata, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(df, preserve_index=False)
    schema_meta = dict(table.schema.metadata or {})
    schema_meta[META_KEY] = json.dumps(meta, sort_keys=True).encode()
    table = table.replace_schema_metadata(schema_meta)
    tmp = _tmp_path(path)
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def read_parquet_meta(path) -> dict:
    """The fhnkit metadata stored in a Parquet file's schema."""
    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta[META_KEY]) if META_KEY in meta else {}


def write_json(obj, path) -> None:
    """Write JSON atomically (sorted keys, indented)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    with open(tmp, "w") as fh:
        json.dump(obj, fh, indent=2, sort_keys=True, default=_json_default)
        fh.write("\n")
    os.replace(tmp, path)


def _json_default(obj):
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj)}")


def read_json(path):
    with open(path) as fh:
        return json.load(fh)
