"""A fleet's model handed to the job that owns it: moved from the fleet's directory into the model's own.

Light on purpose (no torch): the rule `train` of a model trained by a fleet only moves files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..plan.layout import FINISHED_MARKER, MODEL_FILES


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
    dst.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:  # metrics.json is the last of them: the model counts as finished only then
        os.replace(src / name, dst / name)
    return True
