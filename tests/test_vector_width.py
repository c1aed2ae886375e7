"""512-bit vectors for numba on AVX-512 hosts: set before numba loads, never changing results."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = """
import hashlib, sys
{pre}
import numpy as np
import fhnkit
from fhnkit.cell.model import FHNParams
from fhnkit.solvers.cpu import euler
rng = np.random.default_rng(3)
u = rng.random(5003).astype(np.float32)
_, U, W = euler(u, 0.1 * u, np.full_like(u, 0.1), FHNParams(), 0.1, 100, 10, np.float32)
print(fhnkit.WIDE_VECTORS, hashlib.sha256(U.tobytes() + W.tobytes()).hexdigest())
"""


def run(tmp_path, wide: str, pre: str = "") -> tuple[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_CPU")}
    env.update(FHNKIT_WIDE_VECTORS=wide, NUMBA_CACHE_DIR=str(tmp_path / f"cache{wide}{bool(pre)}"))
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(pre=pre)], capture_output=True, text=True,
                         env=env, check=True, timeout=300).stdout.split()
    return out[0], out[1]


def test_wide_vectors_change_speed_not_results(tmp_path):
    import llvmlite.binding as llvm

    wide, digest_wide = run(tmp_path, "1")
    narrow, digest_narrow = run(tmp_path, "0")
    assert narrow == "False"
    assert wide == str(bool(llvm.get_host_cpu_features().get("avx512f")))
    assert digest_wide == digest_narrow


def test_no_effect_once_numba_is_loaded(tmp_path):
    flag, _ = run(tmp_path, "1", pre="import numba")
    assert flag == "False"
