"""The built wheel carries everything fhnkit reads at run time, and works installed outside the checkout.

Builds the wheel offline (`pip wheel --no-deps --no-build-isolation`) from a copy of the repository's
top-level files and `src/` in a temporary directory (so that setuptools' build/ and *.egg-info never land
in the checkout), checks its file list, installs it (`--no-deps`) into a fresh virtual environment, and
runs the installed `fhnkit` from a directory outside the repository with PYTHONPATH unset.

The fresh environment has no pip and none of the heavy dependencies: a .pth file in its site-packages
appends the test interpreter's site-packages (torch, numba, pandas, ...) to sys.path. Python adds a
.pth line's directory without processing the .pth files inside it, so the checkout's editable install of
fhnkit (a .pth file there) stays inert, and the fresh site-packages comes first on sys.path anyway. The
wheel is installed before that .pth file is written, so pip never sees the editable install.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "src" / "fhnkit"
TINY = REPO / "tests" / "config" / "tiny.yaml"

# package data read at run time, beside the modules that read it
DATA_FILES = {
    "fhnkit/plan/schemas/config.schema.yaml": "fhnkit.plan.config (load_schema)",
    "fhnkit/solvers/fhn_euler.cu": "fhnkit.solvers.cuda.kernel_source",
    "fhnkit/inference/fhn_euler_ref.c": "fhnkit.inference.solver_bench.default_c_source",
}
SKIP_PARTS = {"__pycache__", ".ipynb_checkpoints"}
SKIP_SUFFIXES = {".pyc", ".pyo", ".so", ".nbi", ".nbc", ".swp", ".orig", ".rej"}


def _source_files() -> list[str]:
    """Every file of src/fhnkit a wheel should hold, as wheel paths (fhnkit/...)."""
    files = []
    for path in PKG.rglob("*"):
        rel = path.relative_to(PKG.parent)
        if (path.is_file() and not SKIP_PARTS & set(rel.parts) and path.suffix not in SKIP_SUFFIXES
                and not any(part.startswith(".") for part in rel.parts) and not path.name.endswith("~")):
            files.append(rel.as_posix())
    return sorted(files)


def _package_dirs() -> list[str]:
    """Every directory of src/fhnkit with Python modules: each must be a package (have __init__.py)."""
    return sorted({str(Path(f).parent.as_posix()) for f in _source_files() if f.endswith(".py")})


def _run(cmd, *, env, cwd, timeout=300) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, (f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
                                  f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-6000:]}")
    return proc


def _clean_env(bin_dir: Path | None = None) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "PYTHONSAFEPATH")}
    env["PYTHONNOUSERSITE"] = "1"
    if bin_dir is not None:
        env["VIRTUAL_ENV"] = str(bin_dir.parent)
        env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", "")])
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a snapshot of the checkout (top-level files + src/), offline."""
    tmp = tmp_path_factory.mktemp("wheel")
    tree = tmp / "tree"
    tree.mkdir()
    for path in REPO.iterdir():  # pyproject.toml, README.md (the long description), any setup.cfg/MANIFEST.in
        if path.is_file():
            shutil.copy2(path, tree / path.name)
    shutil.copytree(REPO / "src", tree / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "*.so"))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
          "-w", tmp / "dist", tree], env=_clean_env(), cwd=tmp)
    wheels = list((tmp / "dist").glob("fhnkit-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh virtual environment with the wheel installed; the dependencies come from a .pth file."""
    root = tmp_path_factory.mktemp("venv") / "env"
    _run([sys.executable, "-m", "venv", "--without-pip", root], env=_clean_env(), cwd=root.parent)
    python = root / "bin" / "python"
    # install first, while the new environment sees nothing but its own site-packages
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", wheel],
         env=_clean_env(), cwd=root.parent)
    purelib = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        env=_clean_env(), cwd=root.parent).stdout.strip())
    assert purelib.resolve().is_relative_to(root.resolve()), purelib
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (purelib / "_fhnkit_test_deps.pth").write_text("".join(f"{p}\n" for p in sorted(ours)))
    return root


def test_wheel_contents(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing_data = {f: reader for f, reader in DATA_FILES.items() if f not in names}
    assert not missing_data, f"package data missing from {wheel.name} (needed by): {missing_data}"

    package_dirs = _package_dirs()
    assert {"fhnkit", "fhnkit/plan", "fhnkit/solvers", "fhnkit/inference"} <= set(package_dirs)
    no_init = [d for d in package_dirs if not (PKG.parent / d / "__init__.py").is_file()]
    assert not no_init, f"directories with modules but no __init__.py (packages.find skips them): {no_init}"
    missing_init = [d for d in package_dirs if f"{d}/__init__.py" not in names]
    assert not missing_init, f"subpackages missing from {wheel.name}: {missing_init}"

    missing = sorted(set(_source_files()) - names)
    assert not missing, (f"files of src/fhnkit missing from {wheel.name} (add data files to "
                         f"[tool.setuptools.package-data] in pyproject.toml): {missing}")
    top = {n.split("/", 1)[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"fhnkit"}, f"unexpected top-level entries: {top}"
    dist_info = {n.split("/", 1)[1] for n in names if n.startswith("fhnkit-") and ".dist-info/" in n}
    assert {"METADATA", "RECORD", "entry_points.txt"} <= dist_info, dist_info
    entry_points = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert "fhnkit = fhnkit.cli:main" in entry_points


def test_installed_wheel_runs_outside_checkout(venv, tmp_path):
    python, fhnkit_exe = venv / "bin" / "python", venv / "bin" / "fhnkit"
    assert fhnkit_exe.is_file(), "the wheel did not install the fhnkit console script"
    work = tmp_path / "work"
    work.mkdir()
    env = _clean_env(venv / "bin")
    env["TMPDIR"] = str(tmp_path)  # the C reference's build cache (solver_bench.build_c_reference)
    site = venv.resolve()

    # the package, its data files and its metadata all come from the fresh environment, not the checkout
    probe = r"""
import importlib.metadata as md, json, sys
import fhnkit
from fhnkit.inference import solver_bench
from fhnkit.plan import config
from fhnkit.solvers import cuda
kernel = cuda.kernel_source()
schema = config.load_schema()
print(json.dumps({
    "fhnkit": fhnkit.__file__, "version": fhnkit.__version__, "dist": md.version("fhnkit"),
    "dist_files": [str(f.locate()) for f in md.files("fhnkit") if f.name == "__init__.py"][:1],
    "kernel": kernel, "c_source": str(solver_bench.default_c_source()),
    "schema_path": str(config.SCHEMA_PATH), "schema": schema,
    "sys_path": sys.path}))
"""
    info = json.loads(_run([python, "-c", probe], env=env, cwd=work).stdout)
    assert Path(info["fhnkit"]).resolve().is_relative_to(site), f"imported the wrong fhnkit: {info['fhnkit']}"
    assert Path(info["dist_files"][0]).resolve().is_relative_to(site), info["dist_files"]
    assert info["version"] == info["dist"]
    assert str(REPO / "src") not in info["sys_path"]
    assert "fhn_euler_f32" in info["kernel"] and "fhn_euler_f64" in info["kernel"]
    c_source = Path(info["c_source"])
    assert c_source.is_file() and c_source.resolve().is_relative_to(site), info["c_source"]
    assert "fhn_euler_ref_f64" in c_source.read_text()
    assert Path(info["schema_path"]).resolve().is_relative_to(site), info["schema_path"]
    assert isinstance(info["schema"], dict) and "studies" in info["schema"].get("properties", {})

    # the console script
    out = _run([fhnkit_exe, "--version"], env=env, cwd=work).stdout
    assert out.strip() == f"fhnkit {info['version']}"
    out = _run([fhnkit_exe, "env"], env=env, cwd=work).stdout
    assert "numba" in out and "torch" in out, out
    out = _run([fhnkit_exe, "validate", TINY], env=env, cwd=work).stdout  # the schema, through load_config
    assert "valid" in out and "A_scarce" in out, out
    out = _run([fhnkit_exe, "bench", "solver", "--help"], env=env, cwd=work).stdout
    assert "--c-source" in out

    # simulate: 2 parameter sets x 11 stored times (t = 0, 0.1, ..., 1)
    result = work / "runs" / "sim.parquet"
    out = _run([fhnkit_exe, "simulate", "--u0", "0.2", "0.5", "--w0", "0", "--i-app", "0.1", "--t-end", "1",
                "--dt", "0.01", "--save-every", "10", "-o", result.relative_to(work)], env=env, cwd=work).stdout
    assert "wrote 22 rows" in out, out
    import numpy as np
    import pandas as pd

    from fhnkit.artifacts import read_parquet_meta

    df = pd.read_parquet(result)
    assert list(df.columns) == ["set", "t", "U0", "W0", "I_app", "U", "W"]
    assert len(df) == 22 and sorted(df["set"].unique()) == [0, 1]
    assert np.isfinite(df[["U", "W"]].to_numpy()).all()
    first = df[df["t"] == 0].sort_values("set")
    np.testing.assert_allclose(first["U"], [0.2, 0.5])
    np.testing.assert_allclose(first["W"], [0.0, 0.0])
    np.testing.assert_allclose(df.groupby("set")["t"].max(), [1.0, 1.0])
    meta = read_parquet_meta(result)
    assert meta["command"] == "simulate" and meta["n_steps"] == 100, meta

    # the C reference compiled from the installed copy, timed beside the numba kernel
    if shutil.which("gcc"):
        out = _run([fhnkit_exe, "bench", "solver", "--cells", "2000", "--steps", "10", "--save-every", "10",
                    "--precision", "float64", "--threads", "1", "--repeats", "1", "--warmup", "0",
                    "--gpu-cells", "2000", "-o", "bench.json"], env=env, cwd=work).stdout
        assert "C reference: not measured" not in out, out
        solvers = {r["solver"] for r in json.loads((work / "bench.json").read_text())["records"]}
        assert {"numba", "c_reference"} <= solvers, out
