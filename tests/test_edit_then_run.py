"""One run after a config edit leaves nothing stale (issue 23): a finished run, one edit, one plain
`snakemake` gives exactly the files a clean run of the edited config gives (on a CPU: the same bytes of
every data set, weights and spec; the same histories and metrics but for wall times), with fleets on and off."""

from __future__ import annotations

import copy
import json

import pandas as pd
import pytest
import yaml

from conftest import snakemake

pytestmark = pytest.mark.slow

CONFIG = {
    "seed": 5, "fleet": 2, "data_solver": {"dt": 0.01},
    "cost_sweep": {"enabled": False},
    "studies": {"S": {
        "problem": "B", "i_app": 0.0, "t_max": 5, "times_per_trajectory": 11, "train": {"n": 20}, "val": {"n": 6},
        "grid": {"layers": [1], "layer_configs": [["tanh", 8], ["silu", 4]], "classes": ["ddnn"],
                 "batch_size": [16], "seeds": [0, 1]},
        "training": {"iterations": 30, "validate_every": 10},
    }},
}
MODELS = [f"ddnn_{arch}_bs16_s{seed}" for arch in ("tanh8", "silu4") for seed in (0, 1)]
TIMES = {"iter_time_s", "wall_time_s", "train_time_s", "training_wall_s", "seconds"}


def run(workdir, config: dict):
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    models = [f"results/S/models/{m}/metrics.json" for m in MODELS]
    return snakemake(workdir, "--cores", "2", *models, configfile=workdir / "config.yaml")



def made(workdir) -> dict[str, object]:
    """What a run made, in comparable form: bytes of data, weights and specs; histories and metrics without
    their wall times."""
    out = {}
    for path in sorted((workdir / "results/S").rglob("*")):
        rel = str(path.relative_to(workdir))
        if not path.is_file() or "/fleets/" in rel or path.suffix == ".sha256":  # the hash records hold times
            continue
        if path.name == "history.parquet":
            frame = pd.read_parquet(path)
            out[rel] = frame.drop(columns=[c for c in frame if c in TIMES]).to_json()
        elif path.name == "metrics.json":
            out[rel] = {k: v for k, v in json.loads(path.read_text()).items() if k not in TIMES}
        else:
            out[rel] = path.read_bytes()
    return out


@pytest.mark.parametrize("fleet", [2, 1], ids=["fleets", "no fleets"])
def test_a_finished_run_edited_and_run_again_equals_a_clean_run_of_the_edit(tmp_path, fleet):
    edits = [("studies", "S", "training", "iterations", 40), ("studies", "S", "train", "n", 24)]
    work = tmp_path / "edited"
    work.mkdir()
    config = copy.deepcopy(CONFIG) | {"fleet": fleet}
    run(work, config)
    for *keys, value in edits:
        node = config
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
        run(work, config)
        clean = tmp_path / f"clean_{keys[-1]}"
        clean.mkdir()
        run(clean, config)
        a, b = made(work), made(clean)
        assert a.keys() == b.keys(), keys
        differ = [rel for rel in a if a[rel] != b[rel]]
        assert not differ, (keys, differ)
        hashes = {json.loads((work / f"results/S/models/{m}/metrics.json").read_text())["config_hash"] for m in MODELS}
        assert len(hashes) == len(MODELS)
        # the next dry run has nothing left to do
        out = snakemake(work, "--cores", "2", "-n", *[f"results/S/models/{m}/metrics.json" for m in MODELS],
                        configfile=work / "config.yaml")
        assert "Nothing to be done" in out.stdout + out.stderr, keys
