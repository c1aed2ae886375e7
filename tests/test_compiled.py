"""Compiled inference: backend choice, builds checked against eager torch, and their benchmark."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from fhnkit.cell.model import FHNParams
from fhnkit.datasets.simulate import write_dataset
from fhnkit.inference.benchmark import benchmark_model
from fhnkit.inference.compiled import (
    CompiledModel,
    CompileMismatch,
    backend_available,
    build,
    check,
    compile_model,
    load_builds,
    onnx_providers,
    plan,
    require_providers,
)
from fhnkit.nets import load_model
from fhnkit.plan.config import validate_config
from fhnkit.plan.grid import expand_study
from fhnkit.plan.model_spec import ModelSpec
from fhnkit.training.train import train_model


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A DDNN and a DDNN split into two windows of problem B, trained briefly; the validation set."""
    root = tmp_path_factory.mktemp("compiled")
    study = {"problem": "B", "i_app": 0.1, "t_max": 4, "times_per_trajectory": 9, "train": {"n": 20},
             "val": {"n": 10}, "training": {"iterations": 20, "validate_every": 10},
             "grid": {"layers": [2], "layer_configs": [["silu", 8]], "batch_size": [16], "windows": [1, 2]}}
    cfg = validate_config({"data_solver": {"dt": 0.01}, "benchmark": {"n_sets": 200, "repeats": 3, "warmup": 1,
                                                                         "threads": 1},
                           "studies": {"S": study}})
    for split in ("train", "val"):
        write_dataset(cfg, "S", split, root / f"{split}.parquet")
    dirs = {}
    for spec in expand_study(cfg, "S"):
        dirs[spec["model"]] = root / spec["model"]
        train_model(ModelSpec.from_mapping(spec), root / "train.parquet", root / "val.parquet", dirs[spec["model"]],
                    progress=False)
    return {"cfg": cfg, "dirs": dirs, "val": root / "val.parquet", "root": root}


def test_plan_on_a_cpu_builds_eager_and_the_first_usable_backend():
    builds, skipped = plan(["tensorrt", "onnxruntime", "torch_compile"], ["fp32", "fp16"], "cpu")
    assert builds == [("eager", "fp32"), ("onnxruntime", "fp32")]
    assert "CUDA device" in skipped["tensorrt"] and "fp16" in skipped
    assert plan(["eager"], ["fp32"], "cpu")[0] == [("eager", "fp32")]
    assert backend_available("tensorrt", "cpu") == (False, "TensorRT needs a CUDA device")
    with pytest.raises(ValueError, match="unknown backend 'tvm'"):
        backend_available("tvm", "cpu")


def test_onnx_runtime_keeps_fp32_ieee_on_cuda_and_a_session_that_fell_back_to_the_cpu_is_refused(trained, tmp_path):
    """TF32 is off in the CUDA provider's options; a real CPU session presented as a CUDA one is refused
    (what ONNX Runtime does when its CUDA provider cannot load: it runs on the CPU, fed device pointers)."""
    import onnxruntime as ort

    ((name, options),) = onnx_providers("cuda", device_id=1)
    assert name == "CUDAExecutionProvider" and options == {"device_id": "1", "use_tf32": "0",
                                                           "arena_extend_strategy": "kSameAsRequested"}
    assert onnx_providers("cpu") == ["CPUExecutionProvider"]
    settings = trained["cfg"]["compile"] | {"backends": ["onnxruntime"]}
    compile_model(trained["dirs"]["ddnn_silu8-silu8_bs16_s0"], trained["val"], tmp_path, settings)
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    require_providers(session, "cpu")
    with pytest.raises(RuntimeError, match="not CUDAExecutionProvider"):
        require_providers(session, "cuda")


@pytest.mark.parametrize("name", ["ddnn_silu8-silu8_bs16_s0", "ddnn_silu8-silu8_w2_bs16_s0"])
def test_onnx_build_matches_eager_and_is_recorded(trained, tmp_path, name):
    settings = trained["cfg"]["compile"] | {"backends": ["onnxruntime"]}
    record = compile_model(trained["dirs"][name], trained["val"], tmp_path, settings)
    on_disk = json.loads((tmp_path / "compiled.json").read_text())
    assert on_disk["builds"] == json.loads(json.dumps(record["builds"]))
    assert [(b["backend"], b["precision"], b["device"]) for b in record["builds"]] == [
        ("eager", "fp32", "cpu"), ("onnxruntime", "fp32", "cpu")]
    # eager fp32 is the reference: it is never checked against itself
    assert record["builds"][0]["check"] == {"n": 10 * 9, "reference": True}
    onnx = record["builds"][1]
    assert onnx["artifact"] == "model.onnx" and (tmp_path / "model.onnx").stat().st_size > 0
    assert onnx["check"]["n"] == 10 * 9 and 0 <= onnx["check"]["max_err"] <= 1e-4
    # what fp32 means is recorded: IEEE products, and the providers the session really runs on
    assert onnx["numerics"] == {"tf32": False, "providers": ["CPUExecutionProvider"], "cuda_provider_options": None}
    assert record["builds"][0]["numerics"] == {"tf32": False}
    model = load_model(trained["dirs"][name])
    loaded = load_builds(model, record, tmp_path, settings)
    x = torch.rand(300, 3) * torch.tensor([4.0, 1.0, 0.18])
    torch.testing.assert_close(loaded[1](x), model(x).detach(), atol=1e-5, rtol=1e-5)
    # a build answers for the network it computes
    assert all(b.spec is model.spec and not b.is_iterator and b.iterator_dt is None for b in loaded)
    assert [b.n_windows for b in loaded] == [model.n_windows] * 2 == [2 if "_w2_" in name else 1] * 2


def test_torch_compile_build_matches_eager(trained, tmp_path):
    model = load_model(trained["dirs"]["ddnn_silu8-silu8_bs16_s0"])
    compiled = build(model, "torch_compile", "fp32", "cpu", tmp_path)
    x = torch.rand(64, 3)
    assert check(compiled, load_model(trained["dirs"]["ddnn_silu8-silu8_bs16_s0"]), x, 1e-4)["max_err"] <= 1e-4


def test_a_build_that_disagrees_stops_loudly(trained):
    model = load_model(trained["dirs"]["ddnn_silu8-silu8_bs16_s0"])
    wrong = CompiledModel("onnxruntime", "fp32", "cpu", lambda x: model(x) + 1e-3)
    with pytest.raises(CompileMismatch, match=r"onnxruntime-fp32 on cpu disagrees with eager torch: max \|dU\|\+\|dW\| "
                                              r"= 0.002 > tolerance 0.0001 .* in both of 2 evaluations"):
        check(wrong, model, torch.rand(50, 3), 1e-4)
    broken = CompiledModel("eager", "fp16", "cpu", lambda x: model(x) * float("nan"))
    with pytest.raises(CompileMismatch):
        check(broken, model, torch.rand(50, 3), 1.0)


def test_a_difference_that_does_not_persist_does_not_fail_the_check(trained):
    """A build (or reference) that is off in one evaluation and right in the next is recorded with both
    attempts; only a difference in both evaluations raises."""
    model = load_model(trained["dirs"]["ddnn_silu8-silu8_bs16_s0"])
    calls = []

    def once_off(x):
        calls.append(1)
        return model(x) + (1e-3 if len(calls) == 1 else 0.0)

    x = torch.rand(50, 3)
    result = check(CompiledModel("onnxruntime", "fp32", "cpu", once_off), model, x, 1e-4)
    assert result["attempts"][0] == pytest.approx(2e-3, rel=1e-3) and result["attempts"][1] <= 1e-6
    assert result["max_err"] == result["attempts"][1]


def test_the_tolerance_follows_the_outputs_scale(trained):
    """The tolerance is relative to the largest |U| + |W| of the reference (at least 1): a model whose
    outputs are 1000x larger may differ 1000x more in absolute terms, one of scale 1 may not."""
    model = load_model(trained["dirs"]["ddnn_silu8-silu8_bs16_s0"])

    class Scaled(torch.nn.Module):
        def __init__(self, factor):
            super().__init__()
            self.net, self.factor = model, factor

        def forward(self, x):
            return self.net(x) * self.factor

    x = torch.rand(50, 3)
    big = Scaled(1000.0)
    result = check(CompiledModel("onnxruntime", "fp32", "cpu", lambda x: big(x) + 5e-3), big, x, 1e-4)
    scale = float(big(x).detach().abs().sum(dim=1).max())
    assert result["output_scale"] == pytest.approx(scale) and scale > 100
    assert result["tolerance"] == pytest.approx(1e-4 * scale) and result["max_err"] == pytest.approx(1e-2, rel=1e-2)
    with pytest.raises(CompileMismatch):
        check(CompiledModel("onnxruntime", "fp32", "cpu", lambda x: model(x) + 5e-3), model, x, 1e-4)


def test_a_diverged_model_is_not_compiled(trained, tmp_path):
    failed = tmp_path / "failed"
    failed.mkdir()
    metrics = json.loads((trained["dirs"]["ddnn_silu8-silu8_bs16_s0"] / "metrics.json").read_text())
    (failed / "metrics.json").write_text(json.dumps(metrics | {"status": "failed"}))
    record = compile_model(failed, trained["val"], tmp_path / "out", trained["cfg"]["compile"])
    assert record["builds"] == [] and record["skipped"] == {"all": "training status failed"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the refusal where no GPU is present")
def test_compiling_for_cuda_without_a_gpu_says_what_to_change(trained, tmp_path):
    settings = trained["cfg"]["compile"] | {"device": "cuda"}
    with pytest.raises(RuntimeError, match="compile.device is cuda but torch .* sees no CUDA device"):
        compile_model(trained["dirs"]["ddnn_silu8-silu8_bs16_s0"], trained["val"], tmp_path, settings)
    assert not (tmp_path / "compiled.json").exists()


def test_benchmark_times_every_build_beside_the_solver(trained, tmp_path):
    cfg = trained["cfg"]
    settings = cfg["compile"] | {"backends": ["onnxruntime"]}
    directory = trained["dirs"]["ddnn_silu8-silu8_bs16_s0"]
    record = compile_model(directory, trained["val"], tmp_path, settings)
    model = load_model(directory)
    rec = benchmark_model(model, cfg["studies"]["S"], FHNParams(), cfg["benchmark"], 1, "S",
                          load_builds(model, record, tmp_path, settings))
    assert rec["backend"] == "onnxruntime" and rec["precision"] == "fp32" and rec["device"] == "cpu"
    builds = rec["sizes"][0]["builds"]
    assert set(builds) == {"eager-fp32", "onnxruntime-fp32"}
    for timing in builds.values():
        assert len(timing["time_s"]["samples"]) == 3 and timing["chunk"] >= 1 and timing["chunk_search_s"]
    assert rec["inference_time_s"] == builds["onnxruntime-fp32"]["time_s"]
    assert rec["eager_time_s"] == builds["eager-fp32"]["time_s"]
    assert rec["compile_speedup"] == pytest.approx(rec["eager_time_s"]["median"] / rec["inference_time_s"]["median"])
    assert np.isfinite(rec["speedup"]) and rec["speedup"] > 0
    pd.DataFrame(builds)  # JSON-able, tabular
