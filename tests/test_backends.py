"""Tests of fhnkit.cluster.backends: structure of the report, and that probing never raises."""

from __future__ import annotations

import builtins
import importlib.util
import sys

import pytest

from fhnkit.cluster import backends
from fhnkit.cluster.backends import available_backends, format_backends

EXPECTED = ["numba", "cuda", "cupy", "gpu_stack", "tensorrt", "torch_tensorrt", "onnxruntime", "torch",
            "mpi4py"]


@pytest.fixture(scope="module")
def report():
    return available_backends()


def _installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def test_report_structure(report):
    assert list(report) == EXPECTED
    for name, entry in report.items():
        assert set(entry) == {"usable", "version", "detail"}, name
        assert isinstance(entry["usable"], bool), name
        assert entry["version"] is None or isinstance(entry["version"], str), name
        assert isinstance(entry["detail"], str) and entry["detail"], name


def test_unusable_entries_carry_a_reason(report):
    for name, entry in report.items():
        if not entry["usable"]:
            assert len(entry["detail"]) > 10, (name, entry)


def test_cpu_backends_usable(report):
    import numba
    import torch

    assert report["numba"]["usable"]
    assert report["numba"]["version"] == numba.__version__
    assert report["torch"]["usable"]
    assert report["torch"]["version"] == torch.__version__
    assert f"cuda available: {torch.cuda.is_available()}" in report["torch"]["detail"]
    assert f"device count: {torch.cuda.device_count()}" in report["torch"]["detail"]


def test_onnxruntime_lists_providers(report):
    if not _installed("onnxruntime"):
        assert not report["onnxruntime"]["usable"]
        return
    import onnxruntime

    assert report["onnxruntime"]["usable"]
    for provider in onnxruntime.get_available_providers():
        assert provider in report["onnxruntime"]["detail"]


def test_gpu_backends_unusable_without_gpu(report):
    """On a machine without a CUDA device every GPU backend is unusable, with the reason."""
    _, count, _ = backends.cuda_driver()
    if count:
        pytest.skip("this machine has a CUDA device")
    for name in ("cuda", "cupy", "tensorrt", "torch_tensorrt"):
        assert not report[name]["usable"], name
    for name in ("cupy", "tensorrt", "torch_tensorrt"):
        detail = report[name]["detail"]
        assert "not installed" in detail or "no GPU" in detail, (name, detail)


def test_missing_module_via_sys_modules(monkeypatch):
    # A None entry in sys.modules makes `import numba` raise ImportError.
    monkeypatch.setitem(sys.modules, "numba", None)
    entry = available_backends()["numba"]
    assert entry["usable"] is False
    assert entry["version"] is None
    assert "not installed" in entry["detail"] and "halted" in entry["detail"]


def test_missing_module_via_import_hook(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.split(".")[0] == "onnxruntime":
            raise ModuleNotFoundError(f"No module named {name!r} (simulated)")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    report = available_backends()
    assert report["onnxruntime"]["usable"] is False
    assert "simulated" in report["onnxruntime"]["detail"]
    assert report["numba"]["usable"]  # the others are unaffected


def test_probe_raising_anything_is_contained(monkeypatch):
    def broken():
        raise RuntimeError("driver exploded")

    monkeypatch.setitem(backends.PROBES, "torch", broken)
    entry = available_backends()["torch"]
    assert entry == {"usable": False, "version": None,
                     "detail": "probe failed: RuntimeError: driver exploded"}


def test_cupy_without_gpu_is_unusable(monkeypatch):
    """A cupy that imports but finds no device is reported unusable with the reason."""

    class _Runtime:
        @staticmethod
        def getDeviceCount():
            raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")

    fake = type(sys)("cupy")
    fake.__version__ = "13.0.0"
    fake.cuda = type("cuda", (), {"runtime": _Runtime})
    monkeypatch.setitem(sys.modules, "cupy", fake)
    entry = available_backends()["cupy"]
    assert entry["usable"] is False
    assert entry["version"] == "13.0.0"
    assert "no GPU" in entry["detail"] and "cudaErrorNoDevice" in entry["detail"]


def test_format_backends_is_aligned(report):
    text = format_backends(report)
    lines = text.splitlines()
    assert len(lines) == len(report) + 2
    assert lines[0].split()[:4] == ["backend", "usable", "version", "detail"]
    # every row starts its usable/version/detail columns at the same offsets
    col_usable = lines[0].index("usable")
    col_version = lines[0].index("version")
    for line, (name, entry) in zip(lines[2:], report.items(), strict=False):
        assert line.startswith(name)
        assert line[col_usable:].startswith("yes" if entry["usable"] else "no")
        assert line[col_version:].startswith(entry["version"] or "-")


class _FakeDriver:
    """Stands in for libcuda: driver 12.4, cuInit succeeds, `count` devices."""

    def __init__(self, count):
        self.count = count

    def cuDriverGetVersion(self, ref):
        ref._obj.value = 12040
        return 0

    def cuInit(self, flags):
        return 0

    def cuDeviceGetCount(self, ref):
        ref._obj.value = self.count
        return 0


@pytest.mark.parametrize("count", [0, 2])
def test_cuda_driver_probe_with_fake_driver(monkeypatch, count):
    monkeypatch.setattr(backends.ctypes, "CDLL", lambda name: _FakeDriver(count))
    monkeypatch.setattr(backends, "_nvcc", lambda: ("/opt/cuda/bin/nvcc", "12.4"))
    assert backends.cuda_driver() == ("12.4", count, "" if count else
                                      "CUDA driver reports 0 devices")
    entry = available_backends()["cuda"]
    assert entry["usable"] is (count > 0)
    assert entry["version"] == "12.4"
    assert "driver 12.4" in entry["detail"]


def test_cuda_is_usable_without_nvcc(monkeypatch):
    """CuPy compiles fhnkit's kernel with NVRTC: a device without the toolkit's nvcc is usable."""
    monkeypatch.setattr(backends.ctypes, "CDLL", lambda name: _FakeDriver(1))
    monkeypatch.setattr(backends.shutil, "which", lambda name: None)
    entry = available_backends()["cuda"]
    assert entry["usable"] is True
    assert "not needed" in entry["detail"]


def test_tensorrt_needs_a_device(monkeypatch):
    fake = type(sys)("tensorrt")
    fake.__version__ = "10.0.1"
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(backends.ctypes, "CDLL", lambda name: _FakeDriver(1))
    assert available_backends()["tensorrt"] == {"usable": True, "version": "10.0.1",
                                                "detail": "1 CUDA device(s)"}
    monkeypatch.setattr(backends.ctypes, "CDLL", lambda name: _FakeDriver(0))
    entry = available_backends()["tensorrt"]
    assert entry["usable"] is False and "no GPU" in entry["detail"]


def test_mpi4py_without_mpi_library(monkeypatch):
    """mpi4py imports but its MPI library fails in the child probe: a reason, no raise."""
    fake = type(sys)("mpi4py")
    fake.__version__ = "4.0.0"
    monkeypatch.setitem(sys.modules, "mpi4py", fake)
    monkeypatch.setattr(backends, "_MPI_SCRIPT", "raise SystemExit('libmpi.so.40: not found')")
    entry = available_backends()["mpi4py"]
    assert entry["usable"] is False and entry["version"] == "4.0.0"
    assert "libmpi.so.40" in entry["detail"]
