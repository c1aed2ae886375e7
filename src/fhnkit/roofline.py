"""Physical limits of the FHN Euler work on a GPU (SPEC.md section 3).

Per cell, the kernel reads U0, W0 and I_app once, writes each stored snapshot
of U and W, and does FLOPS_PER_STEP floating-point operations per step. The
time the hardware needs at best is the larger of bytes / bandwidth and
flops / peak; a measured time is reported as a fraction of each.
"""

from __future__ import annotations

FLOPS_PER_STEP = 15  # dU: 7 (u-a, 1-u, 2 products, -w, +I, *k); dW: 4; two updates u + dt*du: 4
# FP32 and FP64 cores per SM by compute capability (CUDA programming guide, arithmetic throughput table)
CORES_PER_SM = {(7, 0): (64, 32), (7, 5): (64, 2), (8, 0): (64, 32), (8, 6): (128, 2), (8, 7): (128, 2),
                (8, 9): (128, 2), (9, 0): (128, 64), (10, 0): (128, 64), (12, 0): (128, 2)}


def work(n_cells: int, n_steps: int, n_stored: int, itemsize: int) -> tuple[float, float]:
    """(bytes moved, floating-point operations) of one solve."""
    bytes_moved = n_cells * itemsize * (3 + 2 * n_stored)
    return float(bytes_moved), float(n_cells) * n_steps * FLOPS_PER_STEP


def gpu_peaks(cupy) -> dict:
    """Peak memory bandwidth (B/s) and FP32/FP64 throughput (FLOP/s, FMA = 2) of the current device."""
    dev = cupy.cuda.Device()
    attrs = dev.attributes
    props = cupy.cuda.runtime.getDeviceProperties(dev.id)
    bandwidth = 2.0 * attrs["MemoryClockRate"] * 1e3 * attrs["GlobalMemoryBusWidth"] / 8
    cc = (attrs["ComputeCapabilityMajor"], attrs["ComputeCapabilityMinor"])
    fp32, fp64 = CORES_PER_SM.get(cc, (128, 2))
    clock = attrs["ClockRate"] * 1e3
    sms = attrs["MultiProcessorCount"]
    return {"name": props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"]),
            "compute_capability": f"{cc[0]}.{cc[1]}", "sms": sms, "bandwidth_Bps": bandwidth,
            "float32_flops": 2.0 * sms * fp32 * clock, "float64_flops": 2.0 * sms * fp64 * clock}


def fractions(seconds: float, n_cells: int, n_steps: int, n_stored: int, itemsize: int, peaks: dict,
              precision: str) -> dict:
    """Achieved fraction of the bandwidth and compute rooflines for a measured solve time (s)."""
    bytes_moved, flops = work(n_cells, n_steps, n_stored, itemsize)
    return {"bytes": bytes_moved, "flops": flops, "achieved_Bps": bytes_moved / seconds,
            "achieved_flops": flops / seconds, "bandwidth_fraction": bytes_moved / seconds / peaks["bandwidth_Bps"],
            "compute_fraction": flops / seconds / peaks[f"{precision}_flops"]}
