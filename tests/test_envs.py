"""The rules' conda environments are keyed by checkout (fhnkit.plan.envs).

Snakemake identifies an environment by the text of its file and the --conda-prefix. Two checkouts of
fhnkit share a prefix; the environment installs fhnkit editable from its checkout, so each checkout
must hand Snakemake a file of its own text. Real Snakemake parses the workflow of two checkouts here
(no conda on this machine: environments are not built, their files are checked).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from conftest import REPO, TINY
from fhnkit.plan.envs import PLACEHOLDER, RENDERED_DIR, checkout_env, rendered_env


def test_rendering_writes_the_checkout_and_the_dependencies_hash():
    text = rendered_env(f"pip:\n  - -e {PLACEHOLDER}[onnx]\n", Path("/a/b"), b"deps 1")
    assert "- -e /a/b[onnx]" in text and PLACEHOLDER not in text
    assert rendered_env(f"-e {PLACEHOLDER}", Path("/a/c"), b"deps 1") != rendered_env(f"-e {PLACEHOLDER}",
                                                                                        Path("/a/b"), b"deps 1")
    assert rendered_env(f"-e {PLACEHOLDER}", Path("/a/b"), b"deps 2") != rendered_env(f"-e {PLACEHOLDER}",
                                                                                        Path("/a/b"), b"deps 1")
    with pytest.raises(ValueError, match="installs no checkout"):
        rendered_env("pip:\n  - numpy\n", Path("/a/b"), b"")


def test_an_unchanged_rendering_is_not_rewritten(tmp_path):
    checkout = _checkout(tmp_path / "one")
    first = Path(checkout_env(checkout / "envs" / "fhnkit.yaml", checkout, tmp_path / "out"))
    stamp = first.stat().st_mtime_ns
    assert checkout_env(checkout / "envs" / "fhnkit.yaml", checkout, tmp_path / "out") == str(first)
    assert first.stat().st_mtime_ns == stamp
    (checkout / "pyproject.toml").write_text((checkout / "pyproject.toml").read_text() + "\n# another dependency\n")
    checkout_env(checkout / "envs" / "fhnkit.yaml", checkout, tmp_path / "out")
    assert first.read_text() != "" and first.stat().st_mtime_ns != stamp


def _checkout(root: Path) -> Path:
    """What a checkout's workflow reads: workflow/, envs/, pyproject.toml (fhnkit itself is installed)."""
    for part in ("workflow", "envs"):
        shutil.copytree(REPO / part, root / part)
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def _parse(checkout: Path, workdir: Path) -> dict[str, str]:
    """A dry run of `checkout`'s workflow in `workdir`; the environment files its rules name, by name."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(checkout / "workflow" / "Snakefile"),
           "--directory", str(workdir), "--configfile", str(TINY), "-n", "--cores", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {p.name: p.read_text() for p in (workdir / RENDERED_DIR).glob("*.yaml")}


def test_two_checkouts_get_environments_of_their_own(tmp_path):
    a, b = _checkout(tmp_path / "a"), _checkout(tmp_path / "b")
    envs_a, envs_b = _parse(a, tmp_path / "run_a"), _parse(b, tmp_path / "run_b")
    assert sorted(envs_a) == sorted(envs_b) == ["fhnkit-mpi.yaml", "fhnkit.yaml"]
    for name in envs_a:
        assert envs_a[name] != envs_b[name]  # another text: another environment for Snakemake
        assert f"-e {a}[" in envs_a[name] and f"-e {b}[" in envs_b[name] and PLACEHOLDER not in envs_a[name]
    assert _parse(a, tmp_path / "run_a") == envs_a  # the same checkout parsed again: the same environments


def test_every_rule_names_a_rendered_environment():
    """No rule names a template (whose text is the same in every checkout)."""
    rules = list((REPO / "workflow" / "rules").glob("*.smk"))
    named = [m.group(1) for path in rules for m in re.finditer(r"conda:\s*\n\s*(\S+)", path.read_text())]
    assert named and set(named) <= {"FHNKIT_ENV", "FHNKIT_MPI_ENV"}, set(named)
