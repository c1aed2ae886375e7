"""Compiled inference: a trained network built for the hardware at hand and checked against eager torch.

Backends, in the default order of preference: TensorRT through torch-tensorrt
(a CUDA device and the package; fp32 and fp16 engines), ONNX Runtime (CUDA
execution provider on a GPU, CPU provider otherwise), torch.compile, and eager
torch (always available: the reference every other backend is checked and
timed against). A backend that cannot run here is skipped with the reason.
Every build is checked on validation inputs: the largest |dU| + |dW| (eq. 3.3
units) between compiled and eager fp32 outputs must stay within the
precision's tolerance, or `CompileMismatch` stops the job.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..nets.evaluate import predict
from . import tensorrt_build

log = logging.getLogger(__name__)
BACKENDS = ("tensorrt", "onnxruntime", "torch_compile", "eager")
HALF_PRECISION_BACKENDS = ("tensorrt", "eager")  # fp16 engines where a GPU runs them


class CompileMismatch(RuntimeError):
    """A compiled model disagrees with the eager one beyond the tolerance of its precision."""


@dataclass
class CompiledModel:
    """A callable (n, n_inputs) float32 tensor on `device` -> (n, n_outputs) float32 tensor on `device`.

    `network` is the trained network it was built from (a `fhnkit.nets.base.Surrogate`), when known:
    the build then answers for it what kind of network it is (`spec`, `is_iterator`, `iterator_dt`,
    `n_windows`), so that it can stand where a network is asked about itself.
    """

    backend: str
    precision: str
    device: str
    run: Callable[[torch.Tensor], torch.Tensor]
    artifact: str | None = None  # file written by the build (ONNX graph, TensorRT program), if any
    network: torch.nn.Module | None = field(default=None, repr=False, compare=False)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)

    def release(self) -> None:
        """Give back device memory the backend keeps for reuse (ONNX Runtime's arena); the build still runs."""
        if isinstance(self.run, OrtRunner):
            self.run.release()

    def _network(self):
        if self.network is None:
            raise AttributeError(f"{self.name} was built without its network: it cannot say what it computes")
        return self.network

    @property
    def spec(self) -> dict:
        """The spec of the network this build computes."""
        return self._network().spec

    @property
    def inputs(self) -> list[str]:
        """Names of the network's input columns, in order."""
        return self._network().inputs

    @property
    def iterator_dt(self) -> float | None:
        """Δt of one step of an iterator network; None for a continuous one."""
        return self._network().iterator_dt

    @property
    def is_iterator(self) -> bool:
        """Whether the network steps a state Δt ahead instead of answering the state at t."""
        return self._network().is_iterator

    @property
    def n_windows(self) -> int:
        """How many time windows the network's domain is split into."""
        return self._network().n_windows

    @property
    def name(self) -> str:
        return f"{self.backend}-{self.precision}"


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def backend_available(backend: str, device: str) -> tuple[bool, str]:
    """Whether `backend` can build and run on `device` here, and why not."""
    if backend == "eager":
        return True, "torch"
    if backend == "tensorrt":
        if device != "cuda":
            return False, "TensorRT needs a CUDA device"
        if importlib.util.find_spec("torch_tensorrt") is None:
            return False, "torch-tensorrt is not installed (pip install 'torch-tensorrt==<your torch major.minor>.*')"
        return True, "torch-tensorrt"
    if backend == "onnxruntime":
        if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None:
            return False, "onnxruntime/onnx are not installed (pip install -e '.[onnx]')"
        import onnxruntime

        if device == "cuda" and "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            return False, "ONNX Runtime has no CUDA execution provider here (install onnxruntime-gpu)"
        return True, f"onnxruntime {onnxruntime.__version__}"
    if backend == "torch_compile":
        if device == "cpu" and not (shutil.which("cc") or shutil.which("gcc")):
            return False, "torch.compile on a CPU needs a C compiler"
        return True, "torch.compile (inductor)"
    raise ValueError(f"unknown backend {backend!r}; choose from {BACKENDS}")


def plan(preference, precisions, device: str) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """What to build: eager fp32 (the reference) plus the first usable backend of `preference` in each
    requested precision that it can run on `device` (fp16: TensorRT or eager on a GPU). Returns the
    (backend, precision) pairs and, per backend passed over, the reason."""
    skipped, chosen = {}, None
    for backend in preference:
        ok, why = backend_available(backend, device)
        if ok:
            chosen = backend
            break
        skipped[backend] = why
    builds = [("eager", "fp32")]
    if chosen is not None and chosen != "eager":
        builds.append((chosen, "fp32"))
    if "fp16" in precisions:
        if device == "cuda" and (chosen or "eager") in HALF_PRECISION_BACKENDS:
            builds.append((chosen or "eager", "fp16"))
        else:
            skipped["fp16"] = "fp16 engines are built only for TensorRT or eager torch on a GPU"
    if "fp32" not in precisions:
        builds = [b for b in builds if b[1] != "fp32" or b[0] == "eager"]
    return builds, skipped


def _eager(model, precision: str, device: str) -> Callable:
    net = model.to(device).eval()
    if precision == "fp16":
        import copy

        net = copy.deepcopy(net).half()
        return lambda x: net(x.half()).float()
    return net


def _onnx(model, device: str, directory: Path, threads: int) -> tuple[Callable, str]:
    path = directory / "model.onnx"
    example = torch.zeros((8, len(model.spec["inputs"])))
    with warnings.catch_warnings():  # the TorchScript exporter (no onnxscript needed) warns it is legacy
        warnings.simplefilter("ignore")
        torch.onnx.export(model.cpu().eval(), (example,), str(path), input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, dynamo=False)
    return _onnx_session(model, path, device, threads), str(path)


# fp32 means IEEE float32: ONNX Runtime's CUDA provider would use TF32 (10-bit mantissa) for fp32
# products on Ampere and Hopper by default, 4e-3 to 1.5e-2 from eager fp32 on trained B models.
# The arena grows by what a run asks for instead of doubling (a 64M-set benchmark would otherwise reserve
# up to twice its need), and can then be shrunk between sizes (`OrtRunner.release`).
ORT_CUDA_OPTIONS = {"use_tf32": "0", "arena_extend_strategy": "kSameAsRequested"}


def onnx_providers(device: str, device_id: int = 0) -> list:
    """ONNX Runtime's execution providers for `device` ("cpu" or "cuda"), with fp32 kept IEEE on CUDA."""
    if device == "cuda":
        return [("CUDAExecutionProvider", {"device_id": str(device_id), **ORT_CUDA_OPTIONS})]
    return ["CPUExecutionProvider"]


def require_providers(session, device: str) -> None:
    """Refuse a session that ONNX Runtime quietly put on the CPU when CUDA was asked for (it then reads
    CUDA pointers as host memory): `session.get_providers()` says what it really uses."""
    used = session.get_providers()
    if device == "cuda" and "CUDAExecutionProvider" not in used:
        raise RuntimeError(f"ONNX Runtime runs this graph with {used}, not CUDAExecutionProvider: its CUDA "
                           "provider could not load (check that onnxruntime-gpu matches the CUDA of this machine, "
                           "`fhnkit env`)")


class OrtRunner:
    """An ONNX Runtime session as a callable on torch tensors. On CUDA it binds torch's device buffers
    (no host round trip in the timed work); its arena grows by what is asked, not by doubling, and
    `release()` shrinks it."""

    def __init__(self, session, device: str, n_outputs: int):
        self.session, self.device, self.n_outputs = session, device, n_outputs

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.device == "cpu":
            return torch.from_numpy(self.session.run(None, {"x": x.numpy()})[0])
        return self._run_bound(x.contiguous())

    def _run_bound(self, x: torch.Tensor, run_options=None) -> torch.Tensor:
        y = torch.empty((x.shape[0], self.n_outputs), device=x.device)
        binding = self.session.io_binding()
        binding.bind_input("x", "cuda", 0, np.float32, tuple(x.shape), x.data_ptr())
        binding.bind_output("y", "cuda", 0, np.float32, tuple(y.shape), y.data_ptr())
        self.session.run_with_iobinding(binding, run_options)
        return y

    def release(self) -> None:
        """Shrink the CUDA arena to what the session holds (a one-row run with the shrinkage option)."""
        if self.device != "cuda":
            return
        import onnxruntime as ort

        options = ort.RunOptions()
        options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "gpu:0")
        n_in = self.session.get_inputs()[0].shape[1]
        self._run_bound(torch.zeros((1, n_in), device="cuda"), options)


def _onnx_session(model, path: Path, device: str, threads: int) -> OrtRunner:
    """An ONNX Runtime session of the graph at `path`, as a callable on torch tensors."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=onnx_providers(device))
    require_providers(session, device)
    return OrtRunner(session, device, len(model.spec["outputs"]))


def _tensorrt(model, precision: str, directory: Path, max_batch: int) -> tuple[Callable, str]:
    """A TensorRT program of `model` in `precision`, checked and saved with a batch axis of 1 to `max_batch`
    rows (`tensorrt_build.build_program`): the loaded program, whose `record` says what its precision means
    (TF32 off, the engine's measured arithmetic, ...), and its file."""
    return tensorrt_build.build_program(model, precision, directory, max_batch)


def build(model, backend: str, precision: str, device: str, directory, max_batch: int = 1 << 20,
          threads: int = 1) -> CompiledModel:
    """Build `model` with one backend and precision; artifacts go to `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    artifact = None
    if backend == "eager":
        run = _eager(model, precision, device)
    elif backend == "torch_compile":
        run = torch.compile(_eager(model, precision, device), dynamic=True)
    elif backend == "onnxruntime":
        run, artifact = _onnx(model, device, directory, threads)
    elif backend == "tensorrt":
        run, artifact = _tensorrt(model, precision, directory, max_batch)
    else:
        raise ValueError(f"unknown backend {backend!r}; choose from {BACKENDS}")
    return CompiledModel(backend, precision, device, run, artifact, network=model)


def numerics(compiled: CompiledModel) -> dict:
    """What a build's precision means, for its record: whether fp32 products may use TF32, and the
    backend's own settings (a TensorRT build's record: its engine's measured arithmetic and how it was
    typed and saved; ONNX Runtime's CUDA provider options)."""
    if compiled.backend == "tensorrt":
        return getattr(compiled.run, "record", None) or {"tf32": False}
    if compiled.backend == "onnxruntime":
        cuda = compiled.device == "cuda"
        return {"tf32": False, "providers": compiled.run.session.get_providers(),
                "cuda_provider_options": ORT_CUDA_OPTIONS if cuda else None}
    if compiled.device == "cuda":  # eager and torch.compile follow torch's own switches
        return {"tf32": bool(torch.backends.cuda.matmul.allow_tf32),
                "cudnn_tf32": bool(torch.backends.cudnn.allow_tf32)}
    return {"tf32": False}


REFERENCE = ("eager", "fp32")  # what every other build is checked against; never against itself


@torch.no_grad()
def check(compiled: CompiledModel, reference, x: torch.Tensor, tolerance: float) -> dict:
    """Compare `compiled` with the eager fp32 `reference` on inputs `x` (CPU tensor): max and mean of
    |dU| + |dW|. The allowed difference is `tolerance` times the outputs' scale (the largest |U| + |W|
    of the reference on `x`, at least 1), so that it follows the precision's relative error and not the
    model's units. A build beyond it is evaluated again, against the reference evaluated again: only a
    difference that persists raises CompileMismatch (a machine whose evaluations are not reproducible
    records it in `attempts`, instead of failing a run on one evaluation)."""
    attempts = []
    for _ in range(2):
        want = predict(reference, x)
        scale = max(1.0, float(want.abs().sum(dim=1).max())) if len(x) else 1.0
        got = torch.cat([compiled(x[i:i + 65536].to(compiled.device)).float().cpu() for i in range(0, len(x), 65536)])
        err = (got - want).abs().sum(dim=1)
        attempts.append(float(err.max()))
        result = {"n": int(len(x)), "max_err": attempts[-1], "mean_err": float(err.mean()),
                  "tolerance": tolerance * scale, "relative_tolerance": tolerance, "output_scale": scale,
                  "attempts": attempts}
        if np.isfinite(result["max_err"]) and result["max_err"] <= result["tolerance"]:
            return result
    raise CompileMismatch(f"{compiled.name} on {compiled.device} disagrees with eager torch: max |dU|+|dW| = "
                          f"{result['max_err']:.3g} > tolerance {result['tolerance']:.3g} ({tolerance:g} x output "
                          f"scale {scale:.3g}) on {len(x)} validation inputs, in both of 2 evaluations "
                          f"({', '.join(f'{a:.3g}' for a in attempts)}); raise compile.tolerance for this "
                          "precision only if the difference is expected, or drop the backend from compile.backends")


def validation_inputs(model, val_df, max_rows: int = 20000) -> torch.Tensor:
    """The inputs a model sees on its validation set (an ITNN's: its one-step states), at most `max_rows`."""
    x = model.examples(val_df)[0]
    return x[:: max(1, len(x) // max_rows)][:max_rows]


def compile_model(model_dir, val_path, out_dir, settings: dict, device: str | None = None) -> dict:
    """Build a saved model with the backends of `settings` (the config's `compile`), check each build
    against eager torch on validation inputs, and write `out_dir/compiled.json` (last) with the builds,
    their checks, what was skipped and why. Raises CompileMismatch when a build disagrees."""
    import pandas as pd

    from ..artifacts import versions, write_json
    from ..nets import load_model
    from ..provenance import check_fits, finished_model

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    metrics = finished_model(model_dir)
    from ..cluster.handoff import file_sha256

    record = {"model": metrics["model"], "study": metrics["study"], "config_hash": metrics.get("config_hash"),
              "weights_sha256": file_sha256(weights) if (weights := model_dir / "weights.pt").is_file() else None,
              "settings": settings,
              "versions": versions(), "builds": [], "skipped": {}}
    if metrics.get("status") != "ok":  # a diverged model has nothing worth compiling
        record["skipped"]["all"] = f"training status {metrics.get('status')}"
        write_json(record, out_dir / "compiled.json")
        return record
    device = device or (default_device() if settings["device"] == "auto" else settings["device"])
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"compile.device is cuda but torch {torch.__version__} sees no CUDA device; set "
                           "compile.device to auto or cpu, or install a CUDA build of torch on a GPU machine")
    model = load_model(model_dir)
    check_fits(f"model {metrics['study']}/{metrics['model']}", metrics["problem"], val_path)
    x = validation_inputs(model, pd.read_parquet(val_path))
    builds, record["skipped"] = plan(settings["backends"], settings["precisions"], device)
    for backend, precision in builds:
        compiled = build(model, backend, precision, device, out_dir, settings["max_batch"], settings["threads"])
        if (backend, precision) == REFERENCE:  # the reference itself: nothing to check it against
            result = {"n": int(len(x)), "reference": True}
        else:
            result = check(compiled, load_model(model_dir), x, settings["tolerance"][precision])
        record["builds"].append({"backend": backend, "precision": precision, "device": device,
                                 "artifact": Path(compiled.artifact).name if compiled.artifact else None,
                                 "numerics": numerics(compiled), "check": result})
    write_json(record, out_dir / "compiled.json")
    return record


def compile_models(jobs, settings: dict) -> list[dict | Exception]:
    """`compile_model` of each (model directory, validation set, output directory) of `jobs`, in one process
    (a fleet's models, right after training: one import of torch and the backends for all). A model whose
    build fails does not stop the others: its exception is returned in its place (its own compile job then
    builds it alone and reports the failure)."""
    results = []
    for model_dir, val_path, out_dir in jobs:
        try:
            results.append(compile_model(model_dir, val_path, out_dir, settings))
        except Exception as exc:
            log.warning("%s: not compiled in the fleet (%s: %s); its compile job builds it alone", model_dir,
                        type(exc).__name__, exc)
            results.append(exc)
    return results


def load_builds(model, record: dict, directory, settings: dict) -> list[CompiledModel]:
    """The builds of a compiled.json, ready to run: ONNX graphs and TensorRT programs from the files the
    compile job wrote and checked, torch.compile and eager rebuilt around `model`."""
    directory, out = Path(directory), []
    for entry in record["builds"]:
        backend, precision, device = entry["backend"], entry["precision"], entry["device"]
        if backend == "tensorrt":
            program = tensorrt_build.load_program(directory / entry["artifact"])
            out.append(CompiledModel(backend, precision, device, program, entry["artifact"], network=model))
        elif backend == "onnxruntime":
            run = _onnx_session(model, directory / entry["artifact"], device, settings["threads"])
            out.append(CompiledModel(backend, precision, device, run, entry["artifact"], network=model))
        else:
            out.append(build(model, backend, precision, device, directory, settings["max_batch"],
                             settings["threads"]))
    return out
