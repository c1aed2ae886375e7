"""The wheels a bare GPU machine lacks to run fhnkit's whole workflow offline (run by gpu_wheelhouse.sh).

What to fetch comes from the project's own metadata: the dependencies of pyproject.toml (Snakemake among
them), minus the packages the GPU image already has (benchmarks/gpu_image_packages.txt), resolved with
their whole dependency closure for the target interpreter and platform (default CPython 3.12, manylinux
x86-64), minus again what the image has. Torch, triton, the nvidia-* and cupy-* packages are never fetched:
the script stops if the resolution asks for one. A package published only as source (connection_pool, a
Snakemake dependency) is built here into a pure-Python wheel. One version per package; the total size is
printed and the script fails above the limit (default 60 MB).

    bash benchmarks/gpu_wheelhouse.sh                  # -> benchmarks/wheelhouse/*.whl
    bash benchmarks/gpu_wheelhouse.sh --list           # what it would fetch (asks the index, saves no wheel)
    bash benchmarks/gpu_wheelhouse.sh -d DIR --python 3.12 --platform manylinux_2_39_x86_64 --limit-mb 60
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMAGE_LIST = REPO / "benchmarks" / "gpu_image_packages.txt"
DEFAULT_DIR = REPO / "benchmarks" / "wheelhouse"
DEFAULT_PYTHON = "3.12"
DEFAULT_PLATFORM = "manylinux_2_39_x86_64"  # the image's glibc (Ubuntu 24.04); older manylinux tags are implied
DEFAULT_LIMIT_MB = 60.0
FORBIDDEN = re.compile(r"^(torch|torchvision|torchaudio|triton|nvidia-.*|cupy-.*|cupy|jax|jaxlib|jax-.*)$")
MAX_SOURCE_BUILDS = 10  # packages with no wheel, built here one per failed resolution
INSTALL_TARGET = "/tmp/fhnkit-site"


def normalize(name: str) -> str:
    """A project name as PEP 503 compares them (case, '_' and '.' folded to '-')."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    """The project name of a requirement string ("snakemake>=9,<10" -> "snakemake")."""
    return normalize(re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1))


def image_packages(path: Path = IMAGE_LIST) -> set[str]:
    """The normalized names of the packages the GPU image already has."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return {normalize(line) for line in lines if line}


def project_requirements(pyproject: Path = REPO / "pyproject.toml") -> list[str]:
    """The `[project] dependencies` of pyproject.toml."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    return list(tomllib.loads(pyproject.read_text())["project"]["dependencies"])


def platform_tags(platform: str) -> list[str]:
    """`platform` and the older tags a machine of that platform also runs: manylinux_2_N_ARCH expands to
    every manylinux_2_M_ARCH, M <= N, and the legacy manylinux1/2010/2014 aliases (pip matches tags exactly)."""
    match = re.fullmatch(r"manylinux_2_(\d+)_(\w+)", platform)
    if not match:
        return [platform]
    glibc, arch = int(match.group(1)), match.group(2)
    tags = [f"manylinux_2_{m}_{arch}" for m in range(glibc, 4, -1)]
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    return tags + [f"{alias}_{arch}" for m, alias in legacy.items() if m <= glibc]


def target_flags(python: str, platforms: list[str]) -> list[str]:
    """pip's options that select wheels for the target interpreter and platform, never source builds."""
    flags = ["--only-binary=:all:", "--python-version", python, "--implementation", "cp"]
    for platform in platforms:
        for tag in platform_tags(platform):
            flags += ["--platform", tag]
    return flags


def pip(*args: str) -> subprocess.CompletedProcess:
    """`python -m pip ARGS` of this interpreter, output captured."""
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)


def build_wheel(requirement: str, wheel_dir: Path) -> Path:
    """A pure-Python wheel of `requirement` built here from its source release (no wheel is published)."""
    name = requirement_name(requirement)
    proc = pip("wheel", "--no-deps", "--no-binary", name, "-w", str(wheel_dir), requirement)
    if proc.returncode != 0:
        sys.exit(f"gpu_wheelhouse: {requirement} has no wheel and did not build here:\n{proc.stderr[-2000:]}")
    built = [w for w in wheel_dir.glob("*.whl") if normalize(w.name.split("-")[0]) == name]
    if not built or not all(w.name.endswith("-none-any.whl") for w in built):
        sys.exit(f"gpu_wheelhouse: {requirement} has no wheel and builds only a platform wheel here "
                 f"({[w.name for w in built]}): build it on the target machine's platform")
    return built[0]


def without_wheels(pip_output: str) -> list[str]:
    """The requirements pip found no wheel for, from its output of a failed resolution: "No matching
    distribution found for REQ", or the names under "have no matching distributions available" (then the
    first requirement on that name that a dependent states, else the bare name)."""
    found = re.findall(r"No matching distribution found for (\S+)", pip_output)
    block = re.search(r"no matching distributions available for your environment:\n((?:[ \t]+\S+\n?)+)", pip_output)
    for name in block.group(1).split() if block else []:
        stated = [r for r in re.findall(r"depends on (\S+)", pip_output) if requirement_name(r) == normalize(name)]
        found.append(stated[0] if stated else name)
    # after backtracking over a range of versions, pip names only "The conflict is caused by:" and, per
    # version tried, "X depends on REQ": when every one depends on the same missing project, that is it
    conflict = re.search(r"The conflict is caused by:\n((?:[ \t]+.*\n?)+)", pip_output)
    stated = re.findall(r"depends on (\S+)", conflict.group(1)) if conflict else []
    if stated and len({requirement_name(r) for r in stated}) == 1:
        found.append(stated[0])
    return list({requirement_name(r): r for r in found}.values())


def resolve(requirements: list[str], flags: list[str], wheel_dir: Path) -> list[dict]:
    """Every distribution `requirements` need on the target, as pip's installation report entries, resolved
    against the index (and the wheels built in `wheel_dir`); saves no wheel. A requirement with no wheel
    for the target is built from source (pure Python only) and the resolution run again."""
    built: set[str] = set()
    for _ in range(MAX_SOURCE_BUILDS + 1):
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "report.json"
            proc = pip("install", "--dry-run", "--ignore-installed", "--report", str(report),
                       "--target", str(Path(tmp) / "target"), "--find-links", str(wheel_dir), *flags, *requirements)
            if proc.returncode == 0:
                return json.loads(report.read_text())["install"]
        output = proc.stdout + proc.stderr
        missing = [r for r in without_wheels(output) if requirement_name(r) not in built]
        if not missing:
            sys.exit(f"gpu_wheelhouse: pip could not resolve {requirements}:\n{output[-3000:]}")
        for requirement in missing:
            built.add(requirement_name(requirement))
            print(f"built {build_wheel(requirement, wheel_dir).name} (no wheel published)", file=sys.stderr)
    sys.exit(f"gpu_wheelhouse: more than {MAX_SOURCE_BUILDS} packages without wheels; giving up")


def plan(requirements: list[str], image: set[str], flags: list[str], wheel_dir: Path):
    """(to fetch, already in the image): {name: version} each (the index's versions), from the resolution
    of the requirements the image lacks. Stops when the closure asks for torch, triton, nvidia-*, cupy-* or jax."""
    roots = [r for r in requirements if requirement_name(r) not in image]
    resolved = {normalize(e["metadata"]["name"]): e["metadata"]["version"] for e in resolve(roots, flags, wheel_dir)}
    fetch = {name: v for name, v in sorted(resolved.items()) if name not in image}
    forbidden = sorted(name for name in fetch if FORBIDDEN.match(name))
    if forbidden:
        sys.exit(f"gpu_wheelhouse: the closure asks for {forbidden}, which must come with the image's torch and CUDA")
    return fetch, {name: v for name, v in sorted(resolved.items()) if name in image}


def wheel_name(path: Path) -> tuple[str, str]:
    """(normalized project name, version) of a wheel file."""
    name, version = path.name.split("-")[:2]
    return normalize(name), version


def download(fetch: dict[str, str], flags: list[str], dest: Path, wheel_dir: Path) -> list[Path]:
    """The wheels of `fetch` (exact versions, no dependencies) in `dest`; other wheels in `dest` are removed,
    so that it holds one version per package."""
    dest.mkdir(parents=True, exist_ok=True)
    for stale in dest.glob("*.whl"):
        if fetch.get(wheel_name(stale)[0]) != wheel_name(stale)[1]:
            stale.unlink()
    pins = [f"{name}=={version}" for name, version in fetch.items()]
    proc = pip("download", "--no-deps", "--quiet", "--find-links", str(wheel_dir), "-d", str(dest), *flags, *pins)
    if proc.returncode != 0:
        sys.exit(f"gpu_wheelhouse: pip download failed:\n{proc.stderr[-3000:]}")
    wheels = sorted(dest.glob("*.whl"))
    names = [wheel_name(w)[0] for w in wheels]
    if sorted(names) != sorted(fetch) or len(set(names)) != len(names):
        sys.exit(f"gpu_wheelhouse: {dest} holds {names}, expected one wheel each of {sorted(fetch)}")
    return wheels


def install_line(dest: Path) -> str:
    """The command that installs the wheelhouse on the GPU machine (no network) and puts it on the path."""
    dest = dest.resolve()
    shown = dest.relative_to(REPO) if dest.is_relative_to(REPO) else dest
    return (f"python3 -m pip install --no-index --no-deps --no-compile --target {INSTALL_TARGET} {shown}/*.whl "
            f"&& export PYTHONPATH={INSTALL_TARGET}${{PYTHONPATH:+:$PYTHONPATH}}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gpu_wheelhouse.sh", description=__doc__.split("\n\n")[0])
    parser.add_argument("-d", "--dir", type=Path, default=DEFAULT_DIR, help="where the wheels go (default: "
                        "benchmarks/wheelhouse)")
    parser.add_argument("--python", default=DEFAULT_PYTHON, help="target CPython version (default: 3.12)")
    parser.add_argument("--platform", action="append", help="target platform tag, repeatable (default: "
                        f"{DEFAULT_PLATFORM}; manylinux_2_N_ARCH implies the older manylinux tags)")
    parser.add_argument("--limit-mb", type=float, default=DEFAULT_LIMIT_MB, help="fail above this total size "
                        "(default: 60)")
    parser.add_argument("--image-packages", type=Path, default=IMAGE_LIST, help="what the target already has")
    parser.add_argument("--list", action="store_true", help="print what would be fetched, save no wheel")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    flags = target_flags(args.python, args.platform or [DEFAULT_PLATFORM])
    image = image_packages(args.image_packages)
    with tempfile.TemporaryDirectory(prefix="fhnkit_wheels_") as built:
        fetch, present = plan(project_requirements(), image, flags, Path(built))
        print(f"# CPython {args.python}, {', '.join(args.platform or [DEFAULT_PLATFORM])}: {len(fetch)} to fetch; "
              f"needed but in the image already (not fetched): {', '.join(present)}")
        if args.list:
            print("\n".join(f"{name}=={version}" for name, version in fetch.items()))
            return 0
        wheels = download(fetch, flags, args.dir, Path(built))
    total = sum(w.stat().st_size for w in wheels)
    for wheel in wheels:
        print(f"{wheel.stat().st_size / 1e6:8.2f} MB  {wheel.name}")
    print(f"{total / 1e6:8.2f} MB  total, {len(wheels)} wheels in {args.dir} (limit {args.limit_mb:g} MB)")
    if total > args.limit_mb * 1e6:
        print(f"gpu_wheelhouse: {total / 1e6:.1f} MB is above the {args.limit_mb:g} MB limit", file=sys.stderr)
        return 1
    print(f"On the GPU machine (no network), from the repository root:\n  {install_line(args.dir)}\n"
          "or let benchmarks/gpu_check.sh do it (it installs benchmarks/wheelhouse or $FHNKIT_WHEELHOUSE).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
