"""A file's content hash, recorded when it is written and checked cheaply later.

`record_content(path)` writes `<path>.sha256` (JSON: the file's sha256, size in bytes and modification
time in ns). `content_problem(path)` compares the file with that record: while size and modification
time are as recorded it trusts the file without reading it; when either differs it hashes the file, and
a different hash is damage (bytes changed in place, e.g. in the middle of a Parquet page, where the
footer still reads). A file with the recorded hash and only a new time (copied, touched) gets its
record updated. Light: imported by what Snakemake imports to build the DAG.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def record_path(path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def file_digest(path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def record_content(path) -> None:
    """Record `path`'s sha256, size and modification time beside it (atomically)."""
    stat = os.stat(path)
    record = {"sha256": file_digest(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    target = record_path(path)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(record, sort_keys=True))
    os.replace(tmp, target)


def content_problem(path) -> str | None:
    """Why `path` no longer holds the bytes recorded when it was written, or None (also when no record
    exists: a file written by an older fhnkit)."""
    try:
        record = json.loads(record_path(path).read_text())
        size, mtime, recorded = int(record["size"]), int(record["mtime_ns"]), str(record["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    stat = os.stat(path)
    if stat.st_size == size and stat.st_mtime_ns == mtime:
        return None
    digest = file_digest(path)
    if digest != recorded:
        return (f"has other bytes than when it was written (sha256 {digest[:12]}..., recorded "
                f"{recorded[:12]}...; {stat.st_size} bytes, recorded {size})")
    record_content(path)  # the same bytes under a new time: trust the new time from now on
    return None
