"""benchmarks/gpu_wheelhouse.sh: what it would fetch for a bare GPU machine (no wheel is downloaded here)."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_wheelhouse.sh"


def _wheelhouse_module():
    spec = importlib.util.spec_from_file_location("gpu_wheelhouse", REPO / "benchmarks" / "gpu_wheelhouse.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _index_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
        return True
    except OSError:
        return False


def test_the_roots_are_the_project_dependencies_the_gpu_image_lacks():
    wh = _wheelhouse_module()
    image = wh.image_packages()
    assert {"torch", "numpy", "cupy-cuda13x", "nvidia-cublas", "pyyaml"} <= image
    roots = [r for r in wh.project_requirements() if wh.requirement_name(r) not in image]
    assert sorted(map(wh.requirement_name, roots)) == ["jsonschema", "snakemake"]


def test_a_manylinux_platform_implies_the_older_tags_pip_matches_exactly():
    tags = _wheelhouse_module().platform_tags("manylinux_2_28_x86_64")
    assert tags[0] == "manylinux_2_28_x86_64" and "manylinux_2_17_x86_64" in tags
    assert {"manylinux2014_x86_64", "manylinux1_x86_64"} <= set(tags) and "manylinux_2_29_x86_64" not in tags


def test_the_missing_wheels_are_read_from_a_failed_resolution():
    output = ("    snakemake 9.27.1 depends on connection_pool>=0.0.3\n\nAdditionally, some packages in these "
              "conflicts have no matching distributions available for your environment:\n    connection-pool\n\n")
    assert _wheelhouse_module().without_wheels(output) == ["connection_pool>=0.0.3"]


def test_the_missing_wheel_is_read_from_a_resolution_that_backtracked_over_a_range():
    output = ("ERROR: Cannot install snakemake==9.0.0 and snakemake==9.27.1 because these package versions have "
              "conflicting dependencies.\n\nThe conflict is caused by:\n    snakemake 9.27.1 depends on "
              "connection_pool>=0.0.3\n    snakemake 9.0.0 depends on connection_pool>=0.0.3\n\nTo fix this\n")
    assert _wheelhouse_module().without_wheels(output) == ["connection_pool>=0.0.3"]
    assert _wheelhouse_module().without_wheels(output.replace("9.0.0 depends on connection_pool", "9.0.0 depends on "
                                                                                                     "pyyaml")) == []


@pytest.mark.skipif(not _index_reachable(), reason="the package index (pypi.org) is not reachable")
def test_list_names_snakemake_and_jsonschema_and_never_torch_or_cuda(tmp_path):
    proc = subprocess.run(["bash", str(SCRIPT), "--list", "-d", str(tmp_path / "wheels")], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    names = {line.split("==")[0] for line in proc.stdout.splitlines() if "==" in line and not line.startswith("#")}
    assert {"snakemake", "jsonschema", "connection-pool"} <= names
    assert not {n for n in names if n.startswith(("torch", "nvidia", "cupy", "triton", "numpy", "pandas"))}
    assert not (tmp_path / "wheels").exists()
