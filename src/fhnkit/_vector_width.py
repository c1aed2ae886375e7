"""Let numba use the full width of AVX-512 registers for the Euler kernel.

LLVM's tuning for AVX-512 x86 CPUs prefers 256-bit vectors (older Xeons
lowered their clock on 512-bit instructions). For the FHN kernel, measured
side by side against gcc's 512-bit code, 256-bit lanes leave ~20% of the
speed unused. Numba reads its target CPU and features from the environment
when it is first imported, so this must run before that, and only changes
anything when the user has not chosen a target themselves. It never changes
results: the cells are independent lanes, each computed with the same IEEE
operations. Set FHNKIT_WIDE_VECTORS=0 to leave numba's defaults alone.
"""

from __future__ import annotations

import os
import sys


def prefer_wide_vectors() -> bool:
    """Ask LLVM (through numba's environment) for 512-bit vectors on AVX-512 hosts; True if set."""
    if ("numba" in sys.modules or os.environ.get("FHNKIT_WIDE_VECTORS", "1") == "0"
            or os.environ.get("NUMBA_CPU_NAME") or os.environ.get("NUMBA_CPU_FEATURES")):
        return False
    try:
        import llvmlite.binding as llvm

        features = llvm.get_host_cpu_features()
        if not features.get("avx512f"):
            return False
        os.environ["NUMBA_CPU_NAME"] = llvm.get_host_cpu_name()
        os.environ["NUMBA_CPU_FEATURES"] = features.flatten() + ",-prefer-256-bit"
    except Exception:  # any failure: numba's defaults, which are correct, only slower
        return False
    return True
