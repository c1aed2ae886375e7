"""A GPU's peaks from whatever the install offers (issue 21): CuPy 14's attribute set (no compute-capability
keys), CUDA 13 without the clock attributes (NVML has them), torch without CuPy, and nothing at all.

The CuPy, NVML and torch objects here are stand-ins with exactly the attributes each version offers (no GPU
on the test machine); the reading, fallback and arithmetic under test are fhnkit's own."""

from types import SimpleNamespace

import pytest
import torch

from fhnkit.inference import roofline
from fhnkit.inference.benchmark import device_peaks
from fhnkit.inference.gpu_peaks import gpu_peaks

# an H200 as CuPy 14.2 on CUDA 13 reported it (issue 21): no ComputeCapabilityMajor/Minor attributes
H200_ATTRIBUTES = {"ClockRate": 1_980_000, "MemoryClockRate": 3_201_000, "GlobalMemoryBusWidth": 6016,
                   "MultiProcessorCount": 132}
H200_BANDWIDTH = 2 * 3.201e9 * 6016 / 8  # 4.81 TB/s
H200_FP32 = 2 * 132 * 128 * 1.98e9


def fake_cupy(attributes: dict, properties: dict | None = None, capability="90", bus_id="0000:19:00.0"):
    device = SimpleNamespace(attributes=attributes, id=0, compute_capability=capability, pci_bus_id=bus_id)
    props = {"name": b"NVIDIA H200"} if properties is None else properties

    def get_properties(i):
        return props
    return SimpleNamespace(cuda=SimpleNamespace(Device=lambda: device,
                                                runtime=SimpleNamespace(getDeviceProperties=get_properties)))


def fake_nvml(sm_mhz=1980, mem_mhz=3201, bus_bits=6016, known_bus="0000:19:00.0"):
    clocks = {1: sm_mhz, 2: mem_mhz}

    def handle(bus):
        if bus != known_bus.encode():
            raise LookupError(f"NVML knows no device at {bus}")
        return "h200"
    return SimpleNamespace(nvmlInit=lambda: None, nvmlDeviceGetHandleByPciBusId=handle, NVML_CLOCK_SM=1,
                           NVML_CLOCK_MEM=2, nvmlDeviceGetMaxClockInfo=lambda h, kind: clocks[kind],
                           nvmlDeviceGetMemoryBusWidth=lambda h: bus_bits)


def test_cupy14_attribute_set_without_compute_capability_keys():
    peaks = gpu_peaks(fake_cupy(H200_ATTRIBUTES), nvml=None)
    assert peaks["compute_capability"] == "9.0" and peaks["name"] == "NVIDIA H200" and peaks["sms"] == 132
    assert peaks["bandwidth_Bps"] == pytest.approx(H200_BANDWIDTH)
    assert peaks["float32_flops"] == pytest.approx(H200_FP32)
    assert peaks["float64_flops"] == pytest.approx(H200_FP32 / 2)
    assert peaks["float16_flops"] == pytest.approx(132 * 4096 * 1.98e9)  # dense fp16 tensor cores, Hopper
    assert peaks["sources"]["compute_capability"] == "CuPy Device.compute_capability"
    assert peaks["sources"]["memory_clock_khz"] == "CuPy attributes MemoryClockRate"


def test_cuda13_without_clock_attributes_reads_the_clocks_from_nvml():
    attributes = {"GlobalMemoryBusWidth": 6016, "MultiProcessorCount": 132}
    peaks = gpu_peaks(fake_cupy(attributes, {"name": "NVIDIA H200"}), nvml=fake_nvml())
    assert peaks["bandwidth_Bps"] == pytest.approx(H200_BANDWIDTH)
    assert peaks["float32_flops"] == pytest.approx(H200_FP32)
    assert peaks["sources"]["sm_clock_khz"] == "NVML max SM clock"
    assert peaks["sources"]["bus_width_bits"] == "CuPy attributes GlobalMemoryBusWidth"
    assert "bandwidth_Bps" not in peaks["missing"] and "float32_flops" not in peaks["missing"]


def test_nvml_is_asked_for_the_device_cuda_runs_on():
    """NVML numbers devices its own way (CUDA_VISIBLE_DEVICES does not apply): the PCI bus id joins them."""
    peaks = gpu_peaks(fake_cupy({"MultiProcessorCount": 132}, bus_id="0000:2A:00.0"), nvml=fake_nvml())
    assert peaks["bandwidth_Bps"] is None and "NVML knows no device at b'0000:2A:00.0'" in peaks["missing"][
        "memory_clock_khz"]


def test_nothing_readable_gives_peaks_of_none_with_reasons_never_an_exception():
    peaks = gpu_peaks(fake_cupy({}, {}, capability=None, bus_id=None), nvml=None)
    assert peaks["bandwidth_Bps"] is None and peaks["float32_flops"] is None and "float16_flops" not in peaks
    for key in ("compute_capability", "sms", "sm_clock_khz", "memory_clock_khz", "bandwidth_Bps", "float32_flops"):
        assert peaks["missing"][key], key
    assert "KeyError" in peaks["missing"]["sms"] and "MultiProcessorCount" in peaks["missing"]["sms"]
    broken = SimpleNamespace(cuda=SimpleNamespace(Device=lambda: (_ for _ in ()).throw(RuntimeError("no device"))))
    assert "no device" in gpu_peaks(broken, nvml=None)["missing"]["cupy"]


def test_torch_and_nvml_without_cupy():
    props = SimpleNamespace(name="NVIDIA H100 80GB HBM3", major=9, minor=0, multi_processor_count=132,
                            pci_domain_id=0, pci_bus_id=0x19, pci_device_id=0)
    fake_torch = SimpleNamespace(cuda=SimpleNamespace(current_device=lambda: 0, get_device_properties=lambda i: props))
    peaks = gpu_peaks(None, fake_torch, fake_nvml(mem_mhz=2619, bus_bits=5120, known_bus="00000000:19:00.0"))
    assert peaks["bandwidth_Bps"] == pytest.approx(2 * 2.619e9 * 640)  # H100 SXM: 3.35 TB/s
    assert peaks["float32_flops"] == pytest.approx(H200_FP32) and peaks["sources"]["sms"] == "torch device properties"


def test_older_cupy_attributes_and_a_capability_without_a_known_tensor_rate():
    attributes = H200_ATTRIBUTES | {"ComputeCapabilityMajor": 8, "ComputeCapabilityMinor": 9}
    peaks = gpu_peaks(fake_cupy(attributes, capability=None), nvml=None)
    assert peaks["compute_capability"] == "8.9" and peaks["sources"]["compute_capability"] == "CuPy attributes"
    assert "float16_flops" not in peaks and "unknown to fhnkit" in peaks["missing"]["float16_flops"]
    assert roofline.fractions_of(1.0, 1e9, 1e12, peaks, "float16")["compute_fraction"] is None


def test_fractions_of_peaks_of_none_are_none():
    peaks = gpu_peaks(fake_cupy({}, {}, capability=None), nvml=None)
    f = roofline.fractions_of(2.0, 4e12, 1e12, peaks, "float32")
    assert f["bandwidth_fraction"] is None and f["compute_fraction"] is None and f["achieved_Bps"] == 2e12


def test_this_machine_gives_peaks_or_reasons():
    """The benchmark's own call on this (CPU-only) machine: torch sees no GPU, CuPy and NVML may be absent."""
    peaks = device_peaks("cuda", 1)
    assert peaks["kind"] == "gpu"
    if not torch.cuda.is_available():
        assert peaks["bandwidth_Bps"] is None and peaks["missing"]["bandwidth_Bps"]
