"""The planning layer stays light: building the DAG imports no torch, numba or scipy.

Every `snakemake` call (a dry run, the report, each job's start) parses the Snakefile; what it
imports there is paid for each time. These tests put packages named torch, numba and scipy that
refuse to import ahead of the real ones and then build the DAG.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import DEFAULT_CONFIG, TINY, snakemake

HEAVY = ("torch", "numba", "scipy")


@pytest.fixture
def blocked_env(tmp_path, monkeypatch):
    """PYTHONPATH with a torch, numba and scipy whose import fails, naming the package."""
    blockers = tmp_path / "blockers"
    for name in HEAVY:
        (blockers / name).mkdir(parents=True)
        (blockers / name / "__init__.py").write_text(f"raise ImportError('{name} is blocked by test_plan_is_light')\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(blockers), os.environ.get("PYTHONPATH")])))
    return blockers


def test_the_blockers_block(blocked_env):
    proc = subprocess.run([sys.executable, "-c", "import numba"], capture_output=True, text=True)
    assert proc.returncode != 0 and "blocked by test_plan_is_light" in proc.stderr


def test_planning_layer_imports_nothing_heavy(blocked_env):
    code = ("import sys, fhnkit.plan, fhnkit.plan.layout, fhnkit.plan.kinds; "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize("configfile", [DEFAULT_CONFIG, TINY], ids=["default", "tiny"])
def test_dag_builds_without_heavy_imports(blocked_env, tmp_path, configfile):
    proc = snakemake(tmp_path / "work", "-n", "--cores", "2", configfile=configfile, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "blocked by test_plan_is_light" not in proc.stdout + proc.stderr
    assert "rule train" in proc.stdout or "train" in proc.stdout
