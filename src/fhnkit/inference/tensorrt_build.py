"""TensorRT builds through torch-tensorrt that mean what their precision says, saved with a dynamic batch axis.

A build compiles a copy of the network converted to its precision's dtype (float16 for "fp16"): every
supported torch-tensorrt version builds a strongly typed engine ("explicit typing"), whose layers compute
in the dtypes of the graph, so the precision is in the graph and not in a setting a version may ignore.
TF32 is disabled, so that fp32 is IEEE fp32. The engine is saved with a batch axis of 1 to `max_batch`
rows, and loaded back as a `SavedProgram`: float32 rows in, float32 rows out, any number of rows.

What is verified where:

- without a GPU or torch-tensorrt (tests/test_tensorrt_build.py): the compile settings of each version
  (`compile_settings`, a pure function of version and precision), the save arguments of each version
  (`save_arguments`: batch axis dynamic from 1 to max_batch), the torch.export round trip of that
  dynamic axis with an fhnkit MLP at the benchmark's batch sizes through `save_program` and
  `load_program`, the refusal of a static-batch program, and the arithmetic check
  (`measure_arithmetic`) on emulated engines: IEEE fp32, TF32, fp16, and fp32 arithmetic behind fp16
  inputs and outputs;
- on the GPU, every time `build_program` runs: that the compiled module holds TensorRT engines, that
  the engine returns its precision's dtype and computes in its precision's arithmetic (an "fp16" engine
  computing in fp32, or an "fp32" one computing in TF32, raises `EnginePrecisionError`), and that the
  saved program, loaded back, gives the engine's outputs and runs 1 to max_batch rows.

torch-tensorrt facts this relies on (pytorch/TensorRT, at the tags named):

- `disable_tf32` clears TensorRT's TF32 builder flag (py/torch_tensorrt/dynamo/conversion/_TRTInterpreter.py,
  v2.6.0 l.288, v2.10.0 l.315, v2.13.0 l.281); its default is False (dynamo/_defaults.py).
- `use_explicit_typing` appears in v2.6.0 (default False, _defaults.py l.42), defaults to True from v2.10.0
  (l.49), where `enabled_precisions` other than {float32} raises AssertionError (dynamo/_compiler.py
  v2.10.0 l.632-638, v2.12.0 l.671-677), and is removed in v2.13.0 with `enabled_precisions`
  (commit 03cbbd79b4), whose networks are always strongly typed (_TRTInterpreter.py l.92-97) and whose
  top-level `compile` takes `enabled_precisions` but does not pass it on the dynamo path (_compile.py
  l.204, l.342-346).
- `torch_tensorrt.save` appears in v2.3.0; from v2.10.0 `retrace=True` is its default and re-exports with
  `torch.export.export(module, tuple(arg_inputs), strict=False)`, static shapes (_compile.py l.609, l.739);
  v2.11.0 adds `dynamic_shapes` (l.645). Re-exporting a compiled module with torch.export works from v2.6.0
  (commit cc0d8afbc9, tests/py/dynamo/models/test_reexport.py::test_resnet18_dynamic).
"""

from __future__ import annotations

import copy
import importlib.util
import re
from pathlib import Path

import torch

SUPPORTED_FROM = (2, 6)  # strongly typed engines, and re-export of compiled modules with a dynamic batch
EXPLICIT_TYPING_ARGUMENT = ((2, 6), (2, 13))  # versions that take use_explicit_typing: [from, until)
SAVE_WITH_DYNAMIC_SHAPES = (2, 11)  # torch_tensorrt.save(dynamic_shapes=...) from here; torch.export before
GRAPH_DTYPES = {"fp32": torch.float32, "fp16": torch.float16}
OPT_BATCH = 1 << 16  # batch TensorRT tunes its kernels for (the benchmark's chunks are 16K to 1M rows)
PROBE_ROWS = 4096  # inputs the engine's arithmetic is measured on
CHECKED_BATCHES = (1, 8, 1 << 14, 1 << 20)  # batch sizes the saved program must run (the benchmark's, and 1)
# Mean error against exact arithmetic, as a fraction of eager fp16's: IEEE fp32 gives about 1e-4, TF32 0.2 to
# 0.5, fp16 about 1 (fp32 arithmetic behind fp16 inputs and outputs: below 1e-3).
FP32_BELOW = 0.02
# Share of outputs where eager fp16 differs from exact arithmetic, below which fp16 and fp32 cannot be told apart.
MIN_DIFFERING = 0.01


class UnsupportedTensorRT(RuntimeError):
    """The installed torch-tensorrt cannot build a program fhnkit can trust."""


class EnginePrecisionError(RuntimeError):
    """A TensorRT engine computes in another precision than the one it is built and recorded as."""


def parse_version(version: str) -> tuple[int, int]:
    """(major, minor) of a version string such as "2.13.0+cu130" or "2.10.0.dev20250101"."""
    match = re.match(r"(\d+)\.(\d+)", version)
    if match is None:
        raise ValueError(f"cannot read a version from {version!r}")
    return int(match[1]), int(match[2])


def require_supported(version: str) -> tuple[int, int]:
    """(major, minor) of `version`, or UnsupportedTensorRT for versions before SUPPORTED_FROM."""
    v = parse_version(version)
    if v < SUPPORTED_FROM:
        floor = ".".join(map(str, SUPPORTED_FROM))
        raise UnsupportedTensorRT(
            f"torch-tensorrt {version} is too old for fhnkit's TensorRT builds (install torch-tensorrt>={floor}): "
            f"strongly typed engines (an fp16 engine that computes in fp16) and re-exporting a compiled module "
            f"with a dynamic batch axis both start in {floor}")
    return v


def graph_dtype(precision: str) -> torch.dtype:
    """The dtype of the graph compiled for `precision`: with explicit typing, the engine's arithmetic."""
    if precision not in GRAPH_DTYPES:
        raise ValueError(f"unknown precision {precision!r}; choose from {sorted(GRAPH_DTYPES)}")
    return GRAPH_DTYPES[precision]


def compile_settings(version: str, precision: str) -> dict:
    """Keyword arguments of `torch_tensorrt.compile` (beyond module, ir and inputs) for `precision` with
    torch-tensorrt `version`. Never `enabled_precisions`: it raises under explicit typing (2.10 to 2.12) and
    is dropped from 2.13; the precision is the dtype of the compiled graph (`graph_dtype`) instead."""
    v = require_supported(version)
    graph_dtype(precision)
    settings = {"disable_tf32": True,  # fp32 is IEEE fp32; TensorRT uses TF32 by default on Ampere and later
                "min_block_size": 1}  # small networks too go to TensorRT, not back to torch
    if EXPLICIT_TYPING_ARGUMENT[0] <= v < EXPLICIT_TYPING_ARGUMENT[1]:
        settings["use_explicit_typing"] = True  # the default from 2.10; 2.13 always types explicitly
    return settings


def build_record(version: str, precision: str, max_batch: int) -> dict:
    """What a build of `precision` with torch-tensorrt `version` means, JSON-able for compiled.json."""
    return {"torch_tensorrt": version, "precision": precision, "arithmetic": str(graph_dtype(precision)),
            "tf32": False, "typing": "explicit", "compile_settings": compile_settings(version, precision),
            "batch": batch_range(max_batch),
            "save": save_method(version)}


def batch_range(max_batch: int) -> dict:
    """Smallest, tuned-for and largest batch of an engine that accepts up to `max_batch` rows."""
    if max_batch < 1:
        raise ValueError(f"max_batch must be at least 1, not {max_batch}")
    return {"min": 1, "opt": min(max_batch, OPT_BATCH), "max": max_batch}


def batch_dim(max_batch: int):
    """The dynamic batch axis of a saved program: 1 to `max_batch` rows (None when that is one size)."""
    return torch.export.Dim("batch", min=1, max=max_batch) if max_batch > 1 else None


def example_rows(max_batch: int) -> int:
    """Rows of the example a program is exported with: 8 at most, and not 1 (torch.export would fix a
    batch axis traced at size 1 to 1)."""
    return min(8, max_batch)


def save_method(version: str) -> str:
    """Which call saves a compiled program with torch-tensorrt `version`."""
    return "torch_tensorrt.save" if require_supported(version) >= SAVE_WITH_DYNAMIC_SHAPES else "torch.export.export"


def save_arguments(version: str, example: torch.Tensor, max_batch: int) -> tuple[str, dict]:
    """How to save a compiled program with a batch axis of 1 to `max_batch` rows: the call (see `save_method`)
    and its keyword arguments. torch_tensorrt.save re-exports with static shapes unless given `dynamic_shapes`
    (2.11 on); before 2.11 fhnkit re-exports with torch.export itself, as that save does, with the dynamic axis."""
    dim = batch_dim(max_batch)
    dynamic = ({0: dim},) if dim is not None else None
    method = save_method(version)
    if method == "torch_tensorrt.save":
        return method, {"output_format": "exported_program", "arg_inputs": [example], "dynamic_shapes": dynamic,
                        "retrace": True}
    return method, {"args": (example,), "dynamic_shapes": dynamic, "strict": False}


def save_program(module, path, version: str, max_batch: int, example: torch.Tensor) -> str:
    """Save a compiled `module` (or any exportable module) to `path` with a batch axis of 1 to `max_batch`
    rows; returns the call used."""
    method, kwargs = save_arguments(version, example, max_batch)
    if method == "torch_tensorrt.save":
        import torch_tensorrt

        torch_tensorrt.save(module, str(path), **kwargs)
    else:
        torch.export.save(torch.export.export(module, **kwargs), str(path))
    return method


def _single(out):
    """The tensor a one-output program returns (some runtimes wrap it in a tuple)."""
    return out[0] if isinstance(out, (tuple, list)) else out


def program_limits(program) -> tuple[torch.dtype, int, int | None]:
    """Input dtype and smallest and largest batch (None: unbounded) of a one-input torch.export program."""
    (name,) = program.graph_signature.user_inputs
    node = next(n for n in program.graph.nodes if n.op == "placeholder" and n.name == name)
    value = node.meta["val"]
    rows = value.shape[0]
    if isinstance(rows, int):
        return value.dtype, rows, rows
    bounds = program.range_constraints[rows.node.expr]
    try:
        upper = int(bounds.upper)
    except (TypeError, ValueError, OverflowError):  # no upper bound
        upper = None
    return value.dtype, int(bounds.lower), upper


class SavedProgram:
    """A saved program called as fhnkit calls builds: (n, n_inputs) float32 -> (n, n_outputs) float32 on the
    program's device, for any n (inputs beyond the largest batch run in chunks of it). `record` says how it
    was built, when it was built in this process (`build_program`)."""

    def __init__(self, module, dtype: torch.dtype, max_batch: int | None, record: dict | None = None):
        self.module, self.dtype, self.max_batch, self.record = module, dtype, max_batch, record

    @classmethod
    def from_exported(cls, program, record: dict | None = None) -> SavedProgram:
        """The program of a torch.export ExportedProgram with a dynamic batch axis; raises ValueError for one
        fixed to a batch of more than 1 row (what torch_tensorrt.save writes without dynamic shapes)."""
        dtype, lower, upper = program_limits(program)
        if lower == upper and lower > 1:
            raise ValueError(f"this saved program accepts batches of exactly {lower} rows: it was saved without a "
                             "dynamic batch axis (an artifact of an older fhnkit); compile the model again")
        return cls(program.module(), dtype, upper, record)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.max_batch is not None and len(x) > self.max_batch:
            return torch.cat([self(x[i:i + self.max_batch]) for i in range(0, len(x), self.max_batch)])
        return _single(self.module(x.to(self.dtype))).float()


def load_program(path) -> SavedProgram:
    """The program saved at `path`, ready to run (TensorRT engines need torch-tensorrt to load)."""
    if importlib.util.find_spec("torch_tensorrt") is not None:
        import torch_tensorrt

        program = torch_tensorrt.load(str(path))
    else:
        try:
            program = torch.export.load(str(path))
        except Exception as exc:
            raise RuntimeError(f"cannot load {path} without torch-tensorrt (pip install -e '.[gpu]'): {exc}") from exc
    if not isinstance(program, torch.export.ExportedProgram):
        raise TypeError(f"{path} holds a {type(program).__name__}, not a torch.export program")
    return SavedProgram.from_exported(program)


def _input_box(spec: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Lowest and highest input a network was scaled for (the union of its windows' boxes), float64."""
    specs = spec.get("windows", [spec])
    n_in = len(spec["inputs"])
    los, his = [], []
    for s in specs:
        offset = torch.as_tensor(s.get("input_offset", [0.0] * n_in), dtype=torch.float64)
        scale = torch.as_tensor(s.get("input_scale", [1.0] * n_in), dtype=torch.float64).abs()
        los.append(offset - scale)
        his.append(offset + scale)
    return torch.stack(los).min(dim=0).values, torch.stack(his).max(dim=0).values


def probe_inputs(spec: dict, n: int = PROBE_ROWS, seed: int = 0) -> torch.Tensor:
    """(n, n_inputs) float32 inputs drawn uniformly from the box the network of `spec` was scaled for."""
    lo, hi = _input_box(spec)
    u = torch.rand((n, len(lo)), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return (lo + (hi - lo) * u).float()


@torch.no_grad()
def reference_outputs(model, x: torch.Tensor, precision: str) -> tuple[torch.Tensor, torch.Tensor]:
    """On inputs `x` (float32, on the device to compute on): what exact (float64) arithmetic gives with the
    weights and inputs an engine of `precision` sees, rounded to its output dtype; and what eager fp16 torch
    gives, the yardstick of reduced-precision arithmetic. Both float64."""
    half = copy.deepcopy(model).to(x.device).eval().half()(x.half()).double()
    if precision == "fp16":
        exact = copy.deepcopy(model).to(x.device).eval().half().double()(x.half().double()).half().double()
    else:
        exact = copy.deepcopy(model).to(x.device).eval().double()(x.double())
    return exact, half


def measure_arithmetic(got: torch.Tensor, exact: torch.Tensor, half: torch.Tensor) -> dict:
    """Whether outputs `got` come from fp32 or reduced (TF32, fp16) arithmetic: their mean error against
    `exact` as a fraction of eager fp16's (`reference_outputs`). "inconclusive" where eager fp16 itself
    rarely differs from exact arithmetic."""
    err = (got.double() - exact).abs()
    yardstick = (half - exact).abs()
    scale = float(yardstick.mean())
    ratio = float(err.mean()) / scale if scale > 0 else None
    if scale == 0 or float((yardstick > 0).double().mean()) < MIN_DIFFERING:
        computes_in = "inconclusive"
    else:
        computes_in = "fp32" if ratio < FP32_BELOW else "reduced"
    return {"n": int(got.shape[0]), "mean_err": float(err.mean()), "fp16_mean_err": scale, "ratio": ratio,
            "computes_in": computes_in}


def require_output_dtype(out: torch.Tensor, precision: str) -> None:
    """Raise EnginePrecisionError unless an engine of `precision` returns its graph's dtype."""
    want = graph_dtype(precision)
    if out.dtype != want:
        raise EnginePrecisionError(f"the {precision} TensorRT engine returns {out.dtype}, not {want}: it was not "
                                   f"built from a {want} graph")


def require_arithmetic(measured: dict, precision: str) -> None:
    """Raise EnginePrecisionError where `measure_arithmetic` found other arithmetic than `precision`'s."""
    found = measured["computes_in"]
    detail = (f"mean error {measured['mean_err']:.3g} against exact arithmetic, {measured['ratio']:.3g} of eager "
              f"fp16's, on {measured['n']} inputs") if measured["ratio"] is not None else ""
    if precision == "fp16" and found == "fp32":
        raise EnginePrecisionError(f"the fp16 TensorRT engine computes in fp32 ({detail}): recorded and "
                                   "roofline-rated as fp16 it would misreport what was timed")
    if precision == "fp32" and found == "reduced":
        raise EnginePrecisionError(f"the fp32 TensorRT engine computes with reduced precision, TF32 or fp16 "
                                   f"({detail}): fp32 must be IEEE fp32")


def engine_count(module) -> int:
    """Number of TensorRT engines in a module compiled by torch-tensorrt."""
    return sum(type(m).__name__.endswith("TorchTensorRTModule") for m in module.modules())


def require_engines(module) -> int:
    """The number of TensorRT engines in `module`; RuntimeError when there is none (torch would run it all)."""
    n = engine_count(module)
    if n == 0:
        raise RuntimeError("torch-tensorrt compiled no part of the network to a TensorRT engine")
    return n


@torch.no_grad()
def check_round_trip(program: SavedProgram, x: torch.Tensor, engine_out: torch.Tensor, max_batch: int) -> list[int]:
    """Check that the loaded `program` gives the engine's outputs on `x` and runs every batch size of
    CHECKED_BATCHES up to `max_batch` (and max_batch itself); returns the sizes run."""
    torch.testing.assert_close(program(x), engine_out.float(), msg="the saved TensorRT program, loaded back, "
                               "disagrees with the engine it was saved from")
    sizes = sorted({b for b in CHECKED_BATCHES if b <= max_batch} | {max_batch})
    for n in sizes:
        rows = x.repeat((n + len(x) - 1) // len(x), 1)[:n]
        out = program(rows)
        if out.shape[0] != n:
            raise RuntimeError(f"the saved TensorRT program returns {out.shape[0]} rows for {n}")
    return sizes


def build_program(model, precision: str, directory, max_batch: int) -> tuple[SavedProgram, str]:
    """Build `model` (a `fhnkit.nets.base.Surrogate`) as a TensorRT engine of `precision` on the current CUDA
    device, check its dtype and arithmetic, save it to `directory` with a batch axis of 1 to `max_batch`
    rows, and load it back. Returns the loaded program, whose `record` (`build_record` plus what was
    measured) is for compiled.json, and the file's path."""
    import torch_tensorrt

    version = torch_tensorrt.__version__
    settings = compile_settings(version, precision)
    record = build_record(version, precision, max_batch)
    dtype = graph_dtype(precision)
    n_in = len(model.spec["inputs"])
    shapes = batch_range(max_batch)
    graph = copy.deepcopy(model).to("cuda").eval().to(dtype)
    spec = torch_tensorrt.Input(min_shape=(shapes["min"], n_in), opt_shape=(shapes["opt"], n_in),
                                max_shape=(shapes["max"], n_in), dtype=dtype)
    engine = torch_tensorrt.compile(graph, ir="dynamo", inputs=[spec], **settings)
    record["trt_engines"] = require_engines(engine)
    x = probe_inputs(model.spec, min(PROBE_ROWS, max_batch)).to("cuda")
    with torch.inference_mode():
        got = _single(engine(x.to(dtype)))
    require_output_dtype(got, precision)
    record["measured"] = measure_arithmetic(got, *reference_outputs(model, x, precision))
    record["measured"]["output_dtype"] = str(got.dtype)
    require_arithmetic(record["measured"], precision)
    path = Path(directory) / f"model_{precision}.pt2"
    save_program(engine, path, version, max_batch, x[:example_rows(max_batch)].to(dtype))
    program = load_program(path)
    record["batches_checked"] = check_round_trip(program, x, got, max_batch)
    program.record = record
    return program, str(path)
