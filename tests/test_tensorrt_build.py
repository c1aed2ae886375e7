"""TensorRT builds without TensorRT: settings and save arguments per torch-tensorrt version, the dynamic batch
axis of a saved program (a real torch.export round trip of an fhnkit MLP), and the check of an engine's
arithmetic on emulated engines. The build itself runs only with torch-tensorrt on a GPU (last test)."""

from __future__ import annotations

import copy
import importlib.util

import pytest
import torch

from fhnkit.inference import tensorrt_build as trt
from fhnkit.nets.mlp import MLP, make_spec
from fhnkit.nets.windows import WindowedMLP, windowed_spec

BENCHMARK_BATCHES = (1, 8, 1 << 14, 1 << 20)
EXPLICIT_TYPING_ARGUMENT = ("2.6.0", "2.9.0", "2.10.0", "2.12.1")


def mlp(layers=(("silu", 32), ("tanh", 32), ("sin", 16)), seed=0) -> MLP:
    """An fhnkit MLP of (t, U0, W0) -> (U, W) with random weights."""
    torch.manual_seed(seed)
    spec = make_spec(["t", "U0", "W0"], ["U", "W"], [list(layer) for layer in layers], [0, -2, -1], [10, 2, 2],
                     [0.5, 0.2], [2, 1])
    return MLP(spec).eval()


@pytest.mark.parametrize("version", ["2.9.0", "2.10.0", "2.12.0", "2.13.0", "2.13.0+cu130", "2.10.0.dev20250101"])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_compile_settings_keep_fp32_ieee_and_precision_in_the_graph(version, precision):
    settings = trt.compile_settings(version, precision)
    assert settings["disable_tf32"] is True
    assert settings["min_block_size"] == 1
    # raises under explicit typing (2.10 to 2.12), dropped on the dynamo path from 2.13
    assert "enabled_precisions" not in settings
    explicit_argument = trt.parse_version(version) < (2, 13)
    assert settings.get("use_explicit_typing") is (True if explicit_argument else None)
    assert trt.graph_dtype(precision) == {"fp32": torch.float32, "fp16": torch.float16}[precision]


def test_explicit_typing_is_asked_for_exactly_where_the_argument_exists():
    for version in EXPLICIT_TYPING_ARGUMENT:
        assert trt.compile_settings(version, "fp16")["use_explicit_typing"] is True
    assert "use_explicit_typing" not in trt.compile_settings("2.13.0", "fp16")
    assert "use_explicit_typing" not in trt.compile_settings("3.0.0", "fp16")


@pytest.mark.parametrize("version", ["2.2.0", "2.4.1", "2.5.0", "1.4.0"])
def test_versions_before_2_6_are_refused_with_the_reason(version):
    with pytest.raises(trt.UnsupportedTensorRT, match=r"torch-tensorrt>=2\.6"):
        trt.compile_settings(version, "fp32")
    with pytest.raises(trt.UnsupportedTensorRT):
        trt.save_arguments(version, torch.zeros(8, 3), 1 << 20)


def test_unknown_precision_and_version_are_refused():
    with pytest.raises(ValueError, match="precision"):
        trt.compile_settings("2.13.0", "int8")
    with pytest.raises(ValueError, match="version"):
        trt.parse_version("nightly")


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_build_record_says_what_the_precision_means(precision):
    record = trt.build_record("2.13.0", precision, 1 << 20)
    assert record["tf32"] is False
    assert record["typing"] == "explicit"
    assert record["arithmetic"] == {"fp32": "torch.float32", "fp16": "torch.float16"}[precision]
    assert record["batch"] == {"min": 1, "opt": 1 << 16, "max": 1 << 20}
    assert record["compile_settings"] == trt.compile_settings("2.13.0", precision)
    assert trt.build_record("2.9.0", precision, 100)["batch"] == {"min": 1, "opt": 100, "max": 100}


@pytest.mark.parametrize("version, method", [("2.6.0", "torch.export.export"), ("2.9.0", "torch.export.export"),
                                             ("2.10.0", "torch.export.export"), ("2.11.0", "torch_tensorrt.save"),
                                             ("2.12.0", "torch_tensorrt.save"), ("2.13.0", "torch_tensorrt.save")])
@pytest.mark.parametrize("max_batch", [2, 1000, 1 << 20])
def test_save_arguments_make_the_batch_axis_dynamic_from_1_to_max_batch(version, method, max_batch):
    example = torch.zeros((trt.example_rows(max_batch), 3))
    got, kwargs = trt.save_arguments(version, example, max_batch)
    assert got == method
    (axes,) = kwargs["dynamic_shapes"]
    assert set(axes) == {0}  # only the batch axis; the input columns stay fixed
    assert (axes[0].min, axes[0].max) == (1, max_batch)
    args = kwargs["arg_inputs"] if method == "torch_tensorrt.save" else kwargs["args"]
    assert [a is example for a in args] == [True]
    assert 2 <= len(example) <= max_batch  # an example of 1 row would fix the axis to 1
    if method == "torch_tensorrt.save":
        assert kwargs["retrace"] is True and kwargs["output_format"] == "exported_program"
    else:
        assert kwargs["strict"] is False  # as torch_tensorrt.save re-exports


def test_saved_program_runs_the_benchmark_batch_sizes(tmp_path):
    """The real mechanism on the CPU: torch.export with the dynamic batch Dim, torch.export.save and load."""
    net, max_batch = mlp(), 1 << 20
    path = tmp_path / "model_fp32.pt2"
    example = torch.zeros((trt.example_rows(max_batch), 3))
    assert trt.save_program(net, path, "2.10.0", max_batch, example) == "torch.export.export"
    program = trt.load_program(path)
    assert (program.dtype, program.max_batch) == (torch.float32, max_batch)
    raw = torch.export.load(str(path)).module()  # the saved program itself, without fhnkit's wrapper
    x = trt.probe_inputs(net.spec, max(BENCHMARK_BATCHES))
    with torch.no_grad():
        want = net(x)
        for n in BENCHMARK_BATCHES:
            assert raw(x[:n]).shape == (n, 2)
            torch.testing.assert_close(program(x[:n]), want[:n])
    with pytest.raises(Exception, match="size"):  # the axis stops at max_batch, as the engine does
        raw(torch.zeros((max_batch + 1, 3)))


def test_saved_program_runs_beyond_its_largest_batch_in_chunks(tmp_path):
    net, path = mlp(), tmp_path / "small.pt2"
    trt.save_program(net, path, "2.9.0", 64, torch.zeros((8, 3)))
    program = trt.load_program(path)
    x = trt.probe_inputs(net.spec, 200)
    with torch.no_grad():
        torch.testing.assert_close(program(x), net(x))


def test_a_static_batch_program_is_refused_when_loaded(tmp_path):
    """What torch_tensorrt.save(engine, path, inputs=[torch.zeros((8, n_in))]) wrote from 2.10: batch 8 only."""
    net, path = mlp(), tmp_path / "static.pt2"
    torch.export.save(torch.export.export(net, (torch.zeros((8, 3)),), strict=False), str(path))
    with pytest.raises(Exception, match="8"):
        torch.export.load(str(path)).module()(torch.zeros((16384, 3)))
    with pytest.raises(ValueError, match="exactly 8 rows"):
        trt.load_program(path)


def test_an_fp16_program_takes_and_returns_float32(tmp_path):
    net, path = mlp(), tmp_path / "model_fp16.pt2"
    half = copy.deepcopy(net).half()
    trt.save_program(half, path, "2.10.0", 1 << 14, torch.zeros((8, 3), dtype=torch.float16))
    program = trt.load_program(path)
    assert program.dtype == torch.float16
    x = trt.probe_inputs(net.spec, 1000)
    with torch.no_grad():
        out = program(x)
        assert out.dtype == torch.float32
        torch.testing.assert_close(out, half(x.half()).float())


def test_probe_inputs_stay_in_the_networks_box():
    x = trt.probe_inputs(mlp().spec, 5000)
    assert x.shape == (5000, 3) and x.dtype == torch.float32
    lo, hi = torch.tensor([0.0, -2, -1]), torch.tensor([10.0, 2, 2])
    assert bool(((x >= lo) & (x <= hi)).all())
    assert bool((x.min(0).values < lo + 0.1).all() and (x.max(0).values > hi - 0.1).all())
    spec = windowed_spec(["t", "U0", "W0"], ["U", "W"], [["silu", 8]], [0, -2, -1], [10, 2, 2], [0, 4, 10],
                         [([0, 0], [1, 1]), ([0, 0], [1, 1])])
    t = trt.probe_inputs(WindowedMLP(spec).spec, 5000)[:, 0]
    assert float(t.min()) < 0.1 and float(t.max()) > 9.9  # both windows


def _round_to_tf32(t: torch.Tensor) -> torch.Tensor:
    """float32 rounded to TF32's 10-bit mantissa (to nearest), as TensorRT feeds products under TF32."""
    bits = t.float().contiguous().view(torch.int32)
    return ((bits + (1 << 12)) & ~((1 << 13) - 1)).view(torch.float32)


def _tf32(net: MLP) -> MLP:
    """`net` with every Linear's weights and inputs rounded to TF32: an emulated TF32 engine."""
    out = copy.deepcopy(net)
    for m in out.modules():
        if isinstance(m, torch.nn.Linear):
            m.weight.data = _round_to_tf32(m.weight.data)
            m.register_forward_pre_hook(lambda _, args: (_round_to_tf32(args[0]),))
    return out


LAYERS = [(("silu", 8),), (("silu", 32), ("tanh", 32), ("sin", 16)), (("relu", 128),) * 3,
          (("sigmoid", 16), ("elu", 16))]


@pytest.mark.parametrize("layers", LAYERS)
@torch.no_grad()
def test_fp32_arithmetic_is_told_from_tf32(layers):
    net = mlp(layers)
    x = trt.probe_inputs(net.spec)
    exact, half = trt.reference_outputs(net, x, "fp32")
    ieee = trt.measure_arithmetic(net(x), exact, half)
    assert ieee["computes_in"] == "fp32", ieee
    trt.require_arithmetic(ieee, "fp32")
    tf32 = trt.measure_arithmetic(_tf32(net)(x), exact, half)
    assert tf32["computes_in"] == "reduced", tf32
    with pytest.raises(trt.EnginePrecisionError, match="TF32"):
        trt.require_arithmetic(tf32, "fp32")


@pytest.mark.parametrize("layers", LAYERS)
@torch.no_grad()
def test_an_fp16_engine_computing_in_fp32_is_caught(layers):
    net = mlp(layers)
    x = trt.probe_inputs(net.spec)
    exact, half = trt.reference_outputs(net, x, "fp16")
    fp16 = trt.measure_arithmetic(copy.deepcopy(net).half()(x.half()), exact, half)
    assert fp16["computes_in"] == "reduced", fp16
    trt.require_arithmetic(fp16, "fp16")
    # fp16 weights, inputs and outputs, fp32 arithmetic: what an fp16 request that is not honoured gives
    fp32_inside = copy.deepcopy(net).half().float()(x.half().float()).half()
    measured = trt.measure_arithmetic(fp32_inside, exact, half)
    assert measured["computes_in"] == "fp32", measured
    with pytest.raises(trt.EnginePrecisionError, match="fp16 TensorRT engine computes in fp32"):
        trt.require_arithmetic(measured, "fp16")


@torch.no_grad()
def test_arithmetic_is_inconclusive_where_fp16_changes_nothing():
    net = mlp()
    for m in net.modules():
        if isinstance(m, torch.nn.Linear):
            m.weight.zero_()
            m.bias.fill_(0.5)
    x = trt.probe_inputs(net.spec)
    exact, half = trt.reference_outputs(net, x, "fp16")
    measured = trt.measure_arithmetic(exact.half(), exact, half)
    assert measured["computes_in"] == "inconclusive"
    trt.require_arithmetic(measured, "fp16")  # no verdict, no error


def test_output_dtype_must_be_the_precisions():
    trt.require_output_dtype(torch.zeros(2, dtype=torch.float16), "fp16")
    trt.require_output_dtype(torch.zeros(2), "fp32")
    with pytest.raises(trt.EnginePrecisionError, match="fp16 TensorRT engine returns torch.float32"):
        trt.require_output_dtype(torch.zeros(2), "fp16")


def test_a_module_without_engines_is_refused():
    assert trt.engine_count(mlp()) == 0
    with pytest.raises(RuntimeError, match="no part of the network"):
        trt.require_engines(mlp())


@pytest.mark.skipif(importlib.util.find_spec("torch_tensorrt") is None or not torch.cuda.is_available(),
                    reason="needs torch-tensorrt and a CUDA device")
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_build_program_on_a_gpu(tmp_path, precision):
    net = mlp()
    program, path = trt.build_program(net, precision, tmp_path, 1 << 20)
    assert program.record["tf32"] is False and program.record["trt_engines"] >= 1
    assert program.record["measured"]["computes_in"] in ({"fp32": "fp32", "fp16": "reduced"}[precision],
                                                         "inconclusive")
    assert program.record["batches_checked"] == list(BENCHMARK_BATCHES)
    again = trt.load_program(path)
    x = trt.probe_inputs(net.spec, 1 << 14).cuda()
    torch.testing.assert_close(again(x), program(x))
