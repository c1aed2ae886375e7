"""Shared fixtures: one real Snakemake run of the tiny config (used by every test module that needs it), and the
CUDA file's FastEuler built for the host."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "config" / "tiny.yaml"
SNAKEFILE = REPO / "workflow" / "Snakefile"
DEFAULT_CONFIG = REPO / "config" / "config.yaml"


def snakemake(workdir: Path, *args, configfile: Path = TINY, check=True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory",
           str(workdir), "--configfile", str(configfile), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The tiny config run to the end, then its report; returns the work directory.

    Session-scoped: tests/test_workflow.py and tests/test_report_browser.py share one run (about 3 minutes
    on 2 cores), so CI pays for it once. Tests must not modify the directory."""
    workdir = tmp_path_factory.mktemp("tiny")
    proc = snakemake(workdir, "--cores", "2")
    snakemake(workdir, "--report", str(workdir / "report.html"))
    (workdir / "run.log").write_text(proc.stdout + proc.stderr)
    return workdir


# FastEuler of the .cu itself, built for the host (exported with C names, one loop over n cells each).
FAST_WRAPPERS = r"""
#include "{cu}"
#define FHN_FAST(T, S)                                                                                      \
    extern "C" void fast_steps_##S(long long n, T *u, T *w, const T *c, T k, T a, T eps, T beta, T gamma,  \
                                   T dt, int n_steps) {                                                     \
        const FastEuler<T> euler(k, a, eps, beta, gamma, dt);                                               \
        for (long long i = 0; i < n; ++i) {                                                                 \
            const T c0 = euler.cell(c[i]);                                                                  \
            for (int s = 0; s < n_steps; ++s) euler.step(u[i], w[i], c0);                                   \
        }                                                                                                   \
    }
FHN_FAST(float, f32)
FHN_FAST(double, f64)
"""


@pytest.fixture(scope="session")
def fast_host_lib(tmp_path_factory):
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler on PATH: cannot build fhn_euler.cu's FastEuler for the host")
    tmp = tmp_path_factory.mktemp("fast_host")
    src = tmp / "fast.cpp"
    src.write_text(FAST_WRAPPERS.replace("{cu}", str(REPO / "src" / "fhnkit" / "solvers" / "fhn_euler.cu")))
    lib = tmp / "libfast.so"
    proc = subprocess.run([cxx, "-x", "c++", "-std=c++17", "-O2", "-fPIC", "-shared", "-o", str(lib), str(src)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return ctypes.CDLL(str(lib))


def fast_steps_cu(lib, u, w, c, p, dt: float, n_steps: int):
    """`n_steps` of the .cu's FastEuler in the arrays' precision (copies: the inputs are left alone)."""
    u, w, c = (np.ascontiguousarray(x).copy() for x in (u, w, c))
    real = ctypes.c_float if u.dtype == np.float32 else ctypes.c_double
    ptrs = [x.ctypes.data_as(ctypes.POINTER(real)) for x in (u, w, c)]
    fn = lib["fast_steps_f32" if u.dtype == np.float32 else "fast_steps_f64"]
    params = (real(getattr(p, name)) for name in ("k", "a", "epsilon", "beta", "gamma"))
    fn(ctypes.c_longlong(u.size), *ptrs, *params, real(dt), ctypes.c_int(n_steps))
    return u, w


# Lines for the end of the pytest output (e.g. where test_report_browser.py put its screenshots).
SUMMARY_NOTES: list[str] = []


def pytest_terminal_summary(terminalreporter):
    for line in SUMMARY_NOTES:
        terminalreporter.write_line(line)
