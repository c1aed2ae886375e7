"""The walk of a model's spec through training (issue 23): resolved once, then read by attribute.

A profiler follows one `ModelSpec` through `train_model`: every fhnkit function entered while the spec
is one of its locals, or the `spec` attribute of one (`run.spec`), is a stop on the walk. The spec is
read in few modules, and never climbs back up to the planning or cell-model layers to be derived
again (`kind_of`, `n_windows`, `needs_region_data`, `input_bounds`...): `ModelSpec.from_mapping` did
that once, before the walk. The spec's own methods (`to_dict`, writing it into the history) are part
of the value, not a climb.
"""

from __future__ import annotations

import sys

import pytest

from fhnkit.datasets.simulate import make_dataset
from fhnkit.plan.config import validate_config
from fhnkit.plan.grid import expand_study
from fhnkit.plan.layout import data_files
from fhnkit.plan.model_spec import ModelSpec
from fhnkit.training.train import train_model

MAX_MODULES = 6
LOWER_LAYERS = ("fhnkit.plan", "fhnkit.cell")  # where the spec comes from: the config's and the model's


def _holds(frame, spec) -> bool:
    for value in frame.f_locals.values():
        if value is spec:
            return True
        attributes = getattr(value, "__dict__", None)
        if isinstance(attributes, dict) and attributes.get("spec") is spec:
            return True
    return False


def walk(call, spec: ModelSpec) -> dict:
    """Run `call()` and follow `spec`: the functions entered holding it ((module, function), in order),
    the modules, the climbs (calls with it into `LOWER_LAYERS`, not as a method of the spec) and the
    calls of `input_bounds` (the bounds derived again)."""
    stops, climbs, bounds = [], [], []

    def profile(frame, event, arg):
        if event != "call":
            return
        module = frame.f_globals.get("__name__", "")
        if not module.startswith("fhnkit."):
            return
        if frame.f_code.co_name == "input_bounds":
            bounds.append(module)
        if not _holds(frame, spec):
            return
        stops.append((module, frame.f_code.co_qualname))
        if module.startswith(LOWER_LAYERS) and frame.f_locals.get("self") is not spec:
            climbs.append(f"{module}.{frame.f_code.co_qualname}")

    sys.setprofile(profile)
    try:
        call()
    finally:
        sys.setprofile(None)
    modules = list(dict.fromkeys(module for module, _ in stops))
    entries = [module for k, (module, _) in enumerate(stops) if k == 0 or stops[k - 1][0] != module]
    returns = sum(1 for k, module in enumerate(entries) if module in entries[:k])
    return {"stops": list(dict.fromkeys(stops)), "modules": modules, "climbs": climbs,
            "returns": returns, "input_bounds": bounds}


STUDY = {"problem": "C", "t_max": 6, "times_per_trajectory": 7, "train": {"n": 6}, "val": {"n": 3},
         "grid": {"layers": [1], "layer_configs": [["tanh", 8]], "classes": ["ddnn", "pinn", "itnn"],
                  "batch_size": [8], "region": [False, True], "windows": [1, 2]},
         "region": {"ranges": {"u0": [0.35, 0.45]}, "physics": {"weight": 1.0, "batch": 16},
                    "data": {"n": 3, "weight": 1.0, "batch": 4}},
         "itnn": {"dt": 1.0},
         "training": {"iterations": 6, "validate_every": 3, "checkpoint_every": 3,
                      "batch": {"physics": 16, "initial": 8, "continuity": 8}}}


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    config = validate_config({"data_solver": {"dt": 0.01}, "studies": {"S": STUDY}})
    root = tmp_path_factory.mktemp("walk")
    paths = {}
    for split in ("train", "val", "region"):
        paths[split] = root / f"{split}.parquet"
        make_dataset(config, "S", split)[0].to_parquet(paths[split])
    return expand_study(config, "S"), paths, root


def test_the_spec_is_read_in_few_modules_and_never_derived_again(grid):
    specs, paths, root = grid
    union: dict[str, None] = {}
    kinds = set()
    for mapping in specs:
        spec = ModelSpec.from_mapping(mapping)
        splits = {split: paths[split] for split in data_files(mapping)}
        seen = walk(lambda s=spec, p=splits: train_model(s, p["train"], p["val"], root / s.model, progress=False,
                                                        region_path=p.get("region")), spec)
        assert seen["stops"], "the profiler saw the spec nowhere: the walk measures nothing"
        assert not seen["climbs"], f"{spec.model}: the spec climbs back up to {seen['climbs']}"
        assert not seen["input_bounds"], f"{spec.model}: bounds derived again in {seen['input_bounds']}"
        assert len(seen["modules"]) <= MAX_MODULES, (spec.model, seen["modules"])
        union.update(dict.fromkeys(seen["modules"]))
        kinds.add((spec.cls, spec.region, spec.windows))
        print(f"\n{spec.model}: {len(seen['stops'])} stops in {len(seen['modules'])} modules "
              f"({', '.join(seen['modules'])}), {len(seen['climbs'])} climbs, {seen['returns']} returns")
    assert len(kinds) == 10  # DDNN, PINN with and without region and windows; ITNN with and without region
    assert len(union) <= MAX_MODULES, list(union)
    print(f"all models: {len(union)} modules: {', '.join(union)}")


def test_the_walk_sees_a_climb_and_a_bound_derived_again(grid):
    """The measure can fail: a planning function handed the spec is a climb, `input_bounds` is seen."""
    from fhnkit.cell.problems import input_bounds
    from fhnkit.plan import layout

    spec = ModelSpec.from_mapping(grid[0][0])
    seen = walk(lambda: (layout.dataset(spec, "train"), input_bounds(spec.problem_settings)), spec)
    assert seen["climbs"] == ["fhnkit.plan.layout.dataset"]
    assert seen["input_bounds"] == ["fhnkit.cell.problems"]
    assert "fhnkit.plan.layout" in seen["modules"]
