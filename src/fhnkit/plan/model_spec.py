"""One model's spec as a type: what it is and how it trains, resolved once from its spec mapping.

The planning layer writes a model's spec as a plain mapping (`fhnkit.plan.grid.expand_study`): the
format of the workflow's rule params, of `history.parquet`'s metadata and of the MPI grid. Training
reads a `ModelSpec` instead, made from that mapping once (`ModelSpec.from_mapping`), with everything derived
from it worked out there: the model's kind, its inputs and their bounds (in model time units), the
region's box, the time windows' edges, the applied current, the fixed initial state, the data sets it
trains on. Code past that point reads attributes (`spec.training.lr`, `spec.input_lo`) and never goes
back to the config's layout or re-derives a bound; `to_dict` gives the mapping back, unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..cell.model import FHNParams
from ..cell.problems import INPUTS, OUTPUTS, AppliedCurrent, applied_current, input_bounds, region_bounds, window_edges
from .kinds import ModelKind, kind_named
from .layout import needs_region_data, needs_resampled_data


@dataclass(frozen=True)
class Training:
    """A model's training settings (the schema's `training`): iterations, validation and checkpoint periods,
    Adam's rate, ReduceLROnPlateau's settings, each loss term's weight and batch size, and how it runs."""

    iterations: int
    validate_every: int
    checkpoint_every: int
    lr: float
    plateau: Mapping
    weights: Mapping  # per loss term's name (data, physics, initial, continuity)
    batch: Mapping  # batch size per term beside the data term (physics, initial, continuity)
    threads: int
    device: str  # auto, cpu or cuda
    on_divergence: str  # record or fail


# keys a spec mapping may leave out (a model without a region, windows, resampling, marching, provenance)
OPTIONAL_KEYS = frozenset({"region", "windows", "region_settings", "resample", "marching", "config_hash"})


def _resolved():
    return field(repr=False, compare=False, metadata={"resolved": True})


@dataclass(frozen=True)
class ModelSpec:
    """One model of a study (`fhnkit.plan.grid` makes the mapping it is read from).

    The first fields are the mapping's keys (`cls` is its "class"); the rest are resolved from them by
    `from_mapping`: `kind`, `inputs`/`outputs` (column names), `input_lo`/`input_hi` (bounds of each input, t in
    model time units), `region_box` ((lo, hi) of the region's physics term, or None), `window_edges`
    (the time windows' edges, one window: (0, t_max)), `name` (study/model, as messages name a model),
    `t_max`, `fhn_params`, `current` (I_app as a function of
    an input batch), `initial_state` (problem A's fixed state, else None), `region_data` and
    `resampled_data` (whether it trains on the region and high-error sets)."""

    study: str
    problem: str
    model: str
    cls: str
    layers: tuple[tuple[str, int], ...]
    arch: str
    depth: int
    neurons: int
    shape: str
    batch_size: int
    seed: int
    region: bool
    windows: int
    region_settings: Mapping | None
    resample: Mapping | None
    torch_seed: int
    training: Training
    fhn: Mapping
    itnn: Mapping
    marching: Mapping | None
    problem_settings: Mapping
    config_hash: str | None
    # resolved by `from_mapping` from the fields above (not in the mapping)
    name: str = _resolved()
    kind: ModelKind = _resolved()
    inputs: tuple[str, ...] = _resolved()
    outputs: tuple[str, ...] = _resolved()
    t_max: float = _resolved()
    input_lo: tuple[float, ...] = _resolved()
    input_hi: tuple[float, ...] = _resolved()
    region_box: tuple[tuple[float, ...], tuple[float, ...]] | None = _resolved()
    window_edges: tuple[float, ...] = _resolved()
    fhn_params: FHNParams = _resolved()
    current: AppliedCurrent = _resolved()
    initial_state: tuple[float, float] | None = _resolved()
    region_data: bool = _resolved()
    resampled_data: bool = _resolved()

    @classmethod
    def from_mapping(cls, spec: Mapping) -> ModelSpec:
        """The `ModelSpec` of a spec mapping (`fhnkit.plan.grid.expand_study`'s, or `to_dict`'s)."""
        keys = {"class" if f.name == "cls" else f.name for f in dataclasses.fields(cls)
                if not f.metadata.get("resolved")}
        missing, unknown = sorted(keys - OPTIONAL_KEYS - set(spec)), sorted(set(spec) - keys)
        if missing or unknown:
            wrong = [f"missing {missing}"] * bool(missing) + [f"unknown keys {unknown}"] * bool(unknown)
            raise ValueError(f"not a model spec ({'; '.join(wrong)}); `fhnkit spec CONFIG --study S --model M` "
                             "writes one")
        training = spec["training"]
        training_keys = {f.name for f in dataclasses.fields(Training)}
        if not isinstance(training, Mapping) or set(training) != training_keys:
            raise ValueError(f"model spec {spec['model']!r}: training must have the keys {sorted(training_keys)}")
        settings = spec["problem_settings"]
        region = spec.get("region_settings") if spec.get("region") else None
        lo, hi = input_bounds(settings)
        box = None if region is None else tuple(tuple(map(float, b)) for b in region_bounds(settings, region))
        windows = int(spec.get("windows", 1))
        return cls(
            study=spec["study"], problem=spec["problem"], model=spec["model"], cls=spec["class"],
            layers=tuple((str(act), int(width)) for act, width in spec["layers"]), arch=spec["arch"],
            depth=spec["depth"], neurons=spec["neurons"], shape=spec["shape"], batch_size=spec["batch_size"],
            seed=spec["seed"], region=bool(spec.get("region")), windows=windows,
            region_settings=spec.get("region_settings"), resample=spec.get("resample"),
            torch_seed=spec["torch_seed"], training=Training(**training), fhn=spec["fhn"],
            itnn=spec["itnn"], marching=spec.get("marching"), problem_settings=settings,
            config_hash=spec.get("config_hash"),
            name=f"{spec['study']}/{spec['model']}", kind=kind_named(spec["class"]),
            inputs=tuple(INPUTS[settings["problem"]]), outputs=tuple(OUTPUTS), t_max=float(settings["t_max"]),
            input_lo=tuple(map(float, lo)), input_hi=tuple(map(float, hi)), region_box=box,
            window_edges=tuple(window_edges(settings["t_max"], windows)),
            fhn_params=FHNParams.from_mapping(spec["fhn"]), current=applied_current(settings),
            initial_state=tuple(settings["initial_state"]) if settings["problem"] == "A" else None,
            region_data=needs_region_data(spec), resampled_data=needs_resampled_data(spec))

    def to_dict(self) -> dict:
        """The spec mapping this was made from (JSON-ready: lists, not tuples)."""
        out = {}
        for f in dataclasses.fields(self):
            if f.metadata.get("resolved"):
                continue
            value = getattr(self, f.name)
            if f.name == "training":
                value = dataclasses.asdict(value)
            elif f.name == "layers":
                value = [[act, width] for act, width in value]
            out["class" if f.name == "cls" else f.name] = value
        return out

    def with_training(self, **changes) -> ModelSpec:
        """This model with some training settings changed (e.g. a benchmark's iterations)."""
        return dataclasses.replace(self, training=dataclasses.replace(self.training, **changes))
