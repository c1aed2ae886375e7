"""A GPU's peaks (memory bandwidth, FP32/FP64 and fp16 tensor-core FLOP/s), read from what this install offers.

What a peak needs is read from several sources, the first that answers wins, and each reading keeps
where it came from:

- name: CuPy runtime properties, torch device properties;
- compute capability: CuPy `Device.compute_capability` ("90"), CuPy runtime properties (major, minor),
  CuPy attributes `ComputeCapabilityMajor/Minor` (absent in CuPy 14), torch;
- SMs: CuPy attributes `MultiProcessorCount`, CuPy runtime properties, torch;
- SM clock (max): NVML (`nvmlDeviceGetMaxClockInfo`), CuPy attributes `ClockRate` (deprecated in CUDA 13),
  runtime properties `clockRate`;
- memory clock (max): NVML, CuPy attributes `MemoryClockRate` (deprecated in CUDA 13), runtime properties;
- memory bus width: CuPy attributes `GlobalMemoryBusWidth`, runtime properties `memoryBusWidth`, torch, NVML.

NVML is asked for the device CUDA runs on by its PCI bus id (NVML numbers devices its own way).
A peak whose readings are all missing is None, with the reason in `peaks["missing"]`; reading
never raises, so a benchmark job on an unfamiliar GPU reports fractions of None instead of failing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# FP32 and FP64 lanes per SM by compute capability (CUDA programming guide, arithmetic throughput table)
CORES_PER_SM = {(7, 0): (64, 32), (7, 5): (64, 2), (8, 0): (64, 32), (8, 6): (128, 2), (8, 7): (128, 2),
                (8, 9): (128, 2), (9, 0): (128, 64), (10, 0): (128, 64), (12, 0): (128, 2)}
# dense fp16 tensor-core FLOP per clock per SM (FMA = 2) where fhnkit knows it: V100, A100, H100/H200
TENSOR_FP16_PER_SM = {(7, 0): 1024, (8, 0): 2048, (9, 0): 4096}
_AUTO = object()


@dataclass(frozen=True)
class Reading:
    """One value a peak is computed from, and where it was read (for the benchmark record)."""

    value: object
    source: str


def _first(name: str, attempts: list[tuple[str, Callable[[], object]]], missing: dict) -> Reading | None:
    """The first attempt that returns a value (not None, not raising); else None, with every attempt's
    failure recorded under `missing[name]`."""
    why = []
    for source, read in attempts:
        try:
            value = read()
        except Exception as exc:  # noqa: BLE001 (every library has its own errors: each is a reason)
            why.append(f"{source}: {type(exc).__name__}: {exc}"[:200])
            continue
        if value is None:
            why.append(f"{source}: not reported")
            continue
        return Reading(value, source)
    missing[name] = "; ".join(why) or "no source"
    return None


def _capability(text) -> tuple[int, int]:
    """(major, minor) of CuPy's compute_capability string ("90", "120")."""
    text = str(text)
    return int(text[:-1]), int(text[-1])


def _cupy_sources(cupy) -> dict[str, list]:
    dev = cupy.cuda.Device()
    props = _cached(lambda: cupy.cuda.runtime.getDeviceProperties(dev.id))
    attrs = _cached(lambda: dev.attributes)

    def prop(key):
        return lambda: props()[key]

    def attr(key):
        return lambda: attrs()[key]

    return {
        "name": [("CuPy runtime properties", prop("name"))],
        "compute_capability": [
            ("CuPy Device.compute_capability", lambda: _capability(dev.compute_capability)),
            ("CuPy runtime properties", lambda: (int(props()["major"]), int(props()["minor"]))),
            ("CuPy attributes", lambda: (int(attrs()["ComputeCapabilityMajor"]),
                                         int(attrs()["ComputeCapabilityMinor"])))],
        "sms": [("CuPy attributes", attr("MultiProcessorCount")),
                ("CuPy runtime properties", prop("multiProcessorCount"))],
        "sm_clock_khz": [("CuPy attributes ClockRate", attr("ClockRate")),
                         ("CuPy runtime properties clockRate", prop("clockRate"))],
        "memory_clock_khz": [("CuPy attributes MemoryClockRate", attr("MemoryClockRate")),
                             ("CuPy runtime properties memoryClockRate", prop("memoryClockRate"))],
        "bus_width_bits": [("CuPy attributes GlobalMemoryBusWidth", attr("GlobalMemoryBusWidth")),
                           ("CuPy runtime properties memoryBusWidth", prop("memoryBusWidth"))],
        "pci_bus_id": [("CuPy Device.pci_bus_id", lambda: dev.pci_bus_id)],
    }


def _torch_sources(torch) -> dict[str, list]:
    props = _cached(lambda: torch.cuda.get_device_properties(torch.cuda.current_device()))
    return {
        "name": [("torch device properties", lambda: props().name)],
        "compute_capability": [("torch device properties", lambda: (int(props().major), int(props().minor)))],
        "sms": [("torch device properties", lambda: props().multi_processor_count)],
        "bus_width_bits": [("torch device properties", lambda: getattr(props(), "memory_bus_width", None))],
    }


def _nvml_sources(nvml, pci_bus_id: Callable[[], object]) -> dict[str, list]:
    """NVML's maximum SM and memory clocks (MHz -> kHz) and bus width of the device at `pci_bus_id`."""
    def handle():
        nvml.nvmlInit()
        bus = pci_bus_id()
        if bus is None:
            raise LookupError("the device's PCI bus id is unknown")
        return nvml.nvmlDeviceGetHandleByPciBusId(bus.encode() if isinstance(bus, str) else bus)

    device = _cached(handle)
    return {
        "sm_clock_khz": [("NVML max SM clock",
                          lambda: 1000 * nvml.nvmlDeviceGetMaxClockInfo(device(), nvml.NVML_CLOCK_SM))],
        "memory_clock_khz": [("NVML max memory clock",
                              lambda: 1000 * nvml.nvmlDeviceGetMaxClockInfo(device(), nvml.NVML_CLOCK_MEM))],
        "bus_width_bits": [("NVML memory bus width", lambda: nvml.nvmlDeviceGetMemoryBusWidth(device()))],
    }


def _cached(read: Callable[[], object]) -> Callable[[], object]:
    """`read` called at most once; a failure is raised again at each call (each attempt names it)."""
    box = {}

    def get():
        if "value" not in box:
            try:
                box["value"] = read()
            except Exception as exc:  # noqa: BLE001
                box["error"] = exc
                box["value"] = None
        if "error" in box:
            raise box["error"]
        return box["value"]
    return get


def _import_nvml():
    import pynvml  # the nvidia-ml-py package (GPU extras)

    return pynvml


def gpu_readings(cupy=None, torch=None, nvml=_AUTO) -> tuple[dict[str, Reading], dict[str, str]]:
    """Every reading a peak needs, from CuPy, NVML and torch (any may be None: not used), and the
    reasons of those not found. `nvml` defaults to the `pynvml` module where it can be imported."""
    missing: dict[str, str] = {}
    sources: dict[str, list] = {}

    def add(more: dict[str, list]) -> None:
        for key, attempts in more.items():
            sources.setdefault(key, []).extend(attempts)

    if cupy is not None:
        try:
            add(_cupy_sources(cupy))
        except Exception as exc:  # noqa: BLE001 (no current device, a CuPy without cuda.Device)
            missing["cupy"] = f"{type(exc).__name__}: {exc}"
    if torch is not None:
        add(_torch_sources(torch))
    if nvml is _AUTO:
        try:
            nvml = _import_nvml()
        except ImportError as exc:
            missing["nvml"] = f"pynvml cannot be imported ({exc}); pip install nvidia-ml-py"
            nvml = None
    if nvml is not None:
        bus_id = [read for _, read in sources.get("pci_bus_id", [])]
        if torch is not None:
            bus_id.append(lambda: _torch_pci_bus_id(torch))
        from_nvml = _nvml_sources(nvml, _cached(lambda: _first_value(bus_id)))
        for key in ("sm_clock_khz", "memory_clock_khz"):  # NVML first: CUDA 13 deprecates the clock attributes
            sources[key] = from_nvml[key] + sources.get(key, [])
        sources.setdefault("bus_width_bits", []).extend(from_nvml["bus_width_bits"])
    readings = {}
    for key in ("name", "compute_capability", "sms", "sm_clock_khz", "memory_clock_khz", "bus_width_bits"):
        reading = _first(key, sources.get(key, []), missing)
        if reading is not None:
            readings[key] = reading
    return readings, missing


def _first_value(reads):
    for read in reads:
        try:
            value = read()
        except Exception:  # noqa: BLE001, S112 (the next source may know it)
            continue
        if value:
            return value
    return None


def _torch_pci_bus_id(torch) -> str | None:
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    if getattr(props, "pci_bus_id", None) is None:
        return None
    return f"{props.pci_domain_id:08X}:{props.pci_bus_id:02X}:{props.pci_device_id:02X}.0"


def peaks_from_readings(readings: dict[str, Reading], missing: dict[str, str]) -> dict:
    """Peak bandwidth (B/s, DDR: 2 transfers per memory clock) and FP32/FP64 (CUDA cores) and dense fp16
    tensor-core FLOP/s (FMA = 2) from `gpu_readings`; a peak that cannot be computed is None, its reason
    in "missing"."""
    value = {k: r.value for k, r in readings.items()}
    cc = value.get("compute_capability")
    name = value.get("name")
    peaks = {"kind": "gpu", "name": name.decode() if isinstance(name, bytes) else name,
             "compute_capability": f"{cc[0]}.{cc[1]}" if cc else None, "sms": value.get("sms"),
             "sm_clock_hz": 1e3 * value["sm_clock_khz"] if "sm_clock_khz" in value else None,
             "sources": {k: r.source for k, r in readings.items()}, "missing": dict(missing)}
    reason = peaks["missing"]

    if "memory_clock_khz" in value and "bus_width_bits" in value:
        peaks["bandwidth_Bps"] = 2.0 * value["memory_clock_khz"] * 1e3 * value["bus_width_bits"] / 8
    else:
        peaks["bandwidth_Bps"] = None
        reason["bandwidth_Bps"] = "needs the memory clock and the bus width"
    clock, sms = peaks["sm_clock_hz"], value.get("sms")
    if clock and sms and cc:
        fp32, fp64 = CORES_PER_SM.get(tuple(cc), (128, 2))
        if tuple(cc) not in CORES_PER_SM:
            reason["lanes_per_sm"] = f"compute capability {peaks['compute_capability']} not in the table: 128 FP32 " \
                                     "and 2 FP64 lanes per SM assumed"
        peaks |= {"float32_flops": 2.0 * sms * fp32 * clock, "float64_flops": 2.0 * sms * fp64 * clock}
        if tuple(cc) in TENSOR_FP16_PER_SM:
            peaks["float16_flops"] = float(sms * TENSOR_FP16_PER_SM[tuple(cc)] * clock)
        else:
            reason["float16_flops"] = f"fp16 tensor-core rate of compute capability {peaks['compute_capability']} " \
                                      "unknown to fhnkit"
    else:
        peaks |= {"float32_flops": None, "float64_flops": None}
        needs = "needs the SM clock, the SM count and the compute capability"
        reason["float32_flops"] = reason["float64_flops"] = needs
    return peaks


def gpu_peaks(cupy=None, torch=None, nvml=_AUTO) -> dict:
    """The current device's peaks from `gpu_readings` (see the module doc); never raises."""
    return peaks_from_readings(*gpu_readings(cupy, torch, nvml))
