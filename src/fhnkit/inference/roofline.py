"""Physical limits of the FHN Euler work and of network inference (SPEC.md section 3).

Per cell, the Euler kernel reads U0, W0 and I_app once, writes each stored
snapshot of U and W, and does the floating-point work per step of the kernel
that ran (`KERNELS`: the exact formulation's 15 operations, or the fast folded
step's 6 FMA + 1 ADD = 7 instructions, 13 FLOP). A network evaluation reads
its inputs, writes U and W, and costs 2 * sum(in_i * out_i) FLOP for its matrix
products plus a bias add per unit, one operation per activation and the
input/output scaling (`mlp_flops`): the least work, so an achieved fraction is never flattered. The time the hardware
needs at best is the larger of bytes / bandwidth and flops / peak; a measured
time is reported as a fraction of each. For the Euler kernels the compute roof
is the FP instruction issue rate (`issue_rate`: one FMA or ADD per FP lane per
cycle, the FLOP peak / 2), and `solver_roofline` names the roof that bounds the
kernel, the fraction of it reached and why. A peak that is None or missing gives
a fraction of None with the reason, never an error.

Peaks: on a GPU from whatever CuPy, NVML and torch offer (`gpu_peaks.gpu_peaks`: CUDA
cores, the fp16 tensor-core peak where the compute capability's rate is known, each reading
with its source, a peak that cannot be read None with the reason); on a CPU
the compute peak is nominal (threads x max clock x SIMD lanes x 2 FMA units x
2 FLOP per FMA) and the bandwidth is measured with a STREAM triad on the same
threads (`cpu_peaks`), as empirical roofline tools do.
"""

from __future__ import annotations

import functools
import itertools
import time
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np

FMA_UNITS = 2  # vector FMA pipes per core of the x86 server cores of the last decade


@dataclass(frozen=True)
class KernelWork:
    """Floating-point work of one Euler step of one cell: `fma` fused multiply-adds and `other` single
    operations (add, multiply), each one instruction per SIMD lane; an FMA counts as 2 FLOP."""

    fma: int
    other: int
    form: str

    @property
    def instructions(self) -> int:
        return self.fma + self.other

    @property
    def flops(self) -> int:
        return 2 * self.fma + self.other


KERNELS = {
    # dU: 7 (u-a, 1-u, 2 products, -w, +I, *k); dW: 4; two updates u + dt*du: 4; nothing fused
    "exact": KernelWork(0, 15, "no FMA"),
    # U' = U + (((c3 U + c2) U + c1) U + (c3 W + c0)): 4 FMA + 1 ADD; W' = (W + ww W) + wu U: 2 FMA
    "fast": KernelWork(6, 1, "6 FMA + 1 ADD"),
}


def kernel_work(kernel: str) -> KernelWork:
    """The per-step work of Euler kernel `kernel` ("exact" or "fast")."""
    if kernel not in KERNELS:
        raise ValueError(f"unknown Euler kernel {kernel!r}; known: {sorted(KERNELS)}")
    return KERNELS[kernel]


def work(n_cells: int, n_steps: int, n_stored: int, itemsize: int, kernel: str) -> tuple[float, float]:
    """(bytes moved, floating-point operations) of one solve by Euler kernel `kernel`."""
    bytes_moved = n_cells * itemsize * (3 + 2 * n_stored)
    return float(bytes_moved), float(n_cells) * n_steps * kernel_work(kernel).flops


def peak_of(peaks: dict, key: str) -> tuple[float | None, str | None]:
    """(value, None) of a usable peak, else (None, why): missing, None or not positive; the why is the
    peaks' own (`peaks["missing"][key]`, as `gpu_peaks` gives it) where they have one."""
    value = peaks.get(key)
    if value is not None and value > 0:
        return float(value), None
    given = (peaks.get("missing") or {}).get(key)
    return None, f"{key} unknown" + (f" ({given})" if given else "")


def issue_rate(peaks: dict, precision: str) -> tuple[float | None, str | None]:
    """FP instructions per second over all lanes, one FMA or ADD per lane per cycle: the FLOP peak / 2,
    since the peak counts an FMA as 2 FLOP; (None, why) where that peak is unknown."""
    peak, why = peak_of(peaks, f"{precision}_flops")
    return (peak / 2, None) if peak else (None, why)


def fractions_of(seconds: float, bytes_moved: float, flops: float, peaks: dict, precision: str) -> dict:
    """Achieved throughput and fraction of the bandwidth and compute rooflines of a measured time (s).

    `precision` names the compute peak ("float32", "float64", "float16"); a peak the hardware
    description lacks gives a compute fraction of None rather than a guess.
    """
    peak, bandwidth = peaks.get(f"{precision}_flops"), peaks.get("bandwidth_Bps")
    return {"bytes": bytes_moved, "flops": flops, "achieved_Bps": bytes_moved / seconds,
            "achieved_flops": flops / seconds,
            "bandwidth_fraction": bytes_moved / seconds / bandwidth if bandwidth else None,
            "compute_fraction": flops / seconds / peak if peak else None, "compute_peak": f"{precision}_flops"}


def _why(kernel: KernelWork, bound: str, least: dict, seconds: float, bytes_per_cell: float, precision: str) -> str:
    """The bound in words: which roof, why this kernel meets it, how near it comes; the other roof's share."""
    if bound == "issue":
        why = f"issue-bound: {kernel.instructions} FP instructions per step ({kernel.form}), " \
              f"{least['issue'] / seconds:.0%} of the {precision} issue rate"
    else:
        why = f"bandwidth-bound: {bytes_per_cell:.0f} B per cell, {least['bandwidth'] / seconds:.0%} of the " \
              "memory bandwidth"
    other = "bandwidth" if bound == "issue" else "issue"
    return f"{why}; {other} roof {least[other] / seconds:.0%}"


def solver_roofline(seconds: float, n_cells: int, n_steps: int, n_stored: int, itemsize: int, peaks: dict,
                    precision: str, kernel: str) -> dict:
    """How far a measured Euler solve (s) by `kernel` is from the roof that bounds it, and why.

    The bound is the roof that needs the longer time: the memory traffic at the bandwidth peak, or the
    kernel's FP instructions at the issue rate (`issue_rate`); "bound_fraction" is that least time over
    the measured one. With either peak unknown the bound is None, the reason in "why".
    """
    bytes_moved, _ = work(n_cells, n_steps, n_stored, itemsize, kernel)
    step = kernel_work(kernel)
    instructions = float(n_cells) * n_steps * step.instructions
    bandwidth, bw_why = peak_of(peaks, "bandwidth_Bps")
    rate, rate_why = issue_rate(peaks, precision)
    least = {"bandwidth": bytes_moved / bandwidth if bandwidth else None,
             "issue": instructions / rate if rate else None}
    out = {"kernel": kernel, "flops_per_step": step.flops, "fp_instructions_per_step": step.instructions,
           "fp_instructions": instructions, "issue_rate": rate,
           "issue_fraction": least["issue"] / seconds if rate else None}
    if bw_why or rate_why:
        known = [f"{t / seconds:.0%} of the {roof} roof" for roof, t in least.items() if t is not None]
        why = "bound unknown: " + "; ".join([w for w in (bw_why, rate_why) if w] + known)
        return out | {"bound": None, "bound_fraction": None, "why": why}
    bound = max(least, key=least.get)
    return out | {"bound": bound, "bound_fraction": least[bound] / seconds,
                  "why": _why(step, bound, least, seconds, bytes_moved / max(n_cells, 1), precision)}


def fractions(seconds: float, n_cells: int, n_steps: int, n_stored: int, itemsize: int, peaks: dict,
              precision: str, kernel: str) -> dict:
    """Achieved fractions of the bandwidth and compute rooflines of a solve by Euler kernel `kernel` that took
    `seconds`, with the roof that bounds it, how near it comes and why (`solver_roofline`)."""
    bytes_moved, flops = work(n_cells, n_steps, n_stored, itemsize, kernel)
    return (fractions_of(seconds, bytes_moved, flops, peaks, precision)
            | solver_roofline(seconds, n_cells, n_steps, n_stored, itemsize, peaks, precision, kernel))


def mlp_flops(spec: dict) -> float:
    """Least floating-point operations of one evaluation of the MLP described by `spec` (per input row):
    matrix products (2 per weight), bias adds, one per activation, input and output scaling (2 each)."""
    widths = [len(spec["inputs"])] + [int(w) for _, w in spec["layers"]] + [len(spec["outputs"])]
    products = sum(2 * a * b for a, b in itertools.pairwise(widths))
    return float(products + sum(widths[1:]) + sum(widths[1:-1]) + 2 * (widths[0] + widths[-1]))


def network_work(spec: dict, n_rows: int, n_evaluations: int, n_stored_outputs: int) -> tuple[float, float]:
    """(bytes moved, FLOP) of a network's work: `n_rows` input rows read once (float32),
    `n_stored_outputs` (U, W) pairs written, `n_evaluations` evaluations."""
    n_in, n_out = len(spec["inputs"]), len(spec["outputs"])
    return float(4 * (n_rows * n_in + n_stored_outputs * n_out)), n_evaluations * mlp_flops(spec)


def _max_clock_hz() -> float | None:
    path = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    try:
        return float(path.read_text()) * 1e3
    except (OSError, ValueError):
        pass
    try:  # no cpufreq (VMs): the highest clock /proc/cpuinfo reports
        mhz = [float(line.split(":")[1]) for line in Path("/proc/cpuinfo").read_text().splitlines()
               if line.startswith("cpu MHz")]
        return max(mhz) * 1e6 if mhz else None
    except (OSError, ValueError):
        return None


def _float32_lanes() -> int:
    try:
        import llvmlite.binding as llvm

        features = llvm.get_host_cpu_features()
    except Exception:  # no llvmlite: assume SSE
        return 4
    return 16 if features.get("avx512f") else 8 if features.get("avx") else 4


@numba.njit(parallel=True, cache=True)
def _triad(a, b, c, s):
    for i in numba.prange(a.size):
        a[i] = b[i] + s * c[i]


def stream_triad_bandwidth(threads: int, n: int = 1 << 25, repeats: int = 5) -> float:
    """Sustained memory bandwidth (B/s) of a[i] = b[i] + s * c[i] on float32 arrays of `n` elements
    (3 * 4 * n bytes per pass, write-allocate traffic not counted), median of `repeats`, on `threads`."""
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    b, c = np.ones(n, np.float32), np.full(n, 2.0, np.float32)
    a = np.zeros_like(b)
    _triad(a, b, c, np.float32(3.0))  # compile and touch the pages
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        _triad(a, b, c, np.float32(3.0))
        samples.append(time.perf_counter() - t0)
    return 12.0 * n / float(np.median(samples))


@functools.cache
def cpu_peaks(threads: int) -> dict:
    """Peaks of `threads` CPU cores: nominal FLOP/s (see module doc) and measured triad bandwidth."""
    clock, lanes = _max_clock_hz(), _float32_lanes()
    per_lane = threads * (clock or 0.0) * FMA_UNITS * 2
    peaks = {"kind": "cpu", "threads": threads, "clock_hz": clock, "float32_lanes": lanes, "fma_units": FMA_UNITS,
             "bandwidth_Bps": stream_triad_bandwidth(threads), "bandwidth_source": "STREAM triad, measured"}
    if clock:
        peaks |= {"float32_flops": per_lane * lanes, "float64_flops": per_lane * lanes / 2}
    return peaks
