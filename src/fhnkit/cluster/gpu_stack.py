"""Which CUDA major each GPU package of this environment was built for, and whether they agree.

A CUDA stack mixes packages built for one CUDA major each: torch (a CUDA build, or a CPU one),
CuPy (`cupy-cuda12x` / `cupy-cuda13x`), ONNX Runtime GPU (PyPI's `onnxruntime-gpu` is a CUDA 12
build up to 1.26 and a CUDA 13 build from 1.27) and torch-tensorrt (built for one torch minor; it
pins that torch, so installing it beside another torch replaces the user's). Two majors in one
process load two CUDA runtimes; an ONNX Runtime of the wrong major quietly runs on the CPU. fhnkit's
`gpu-cu12` / `gpu-cu13` extras never install torch: the user's CUDA torch is the one the rest must
match. `fhnkit env` prints `stack_report()`.
"""

from __future__ import annotations

import re
from importlib import metadata

ORT_FIRST_CUDA13 = (1, 27)  # onnxruntime-gpu on PyPI: CUDA 12 builds before this version, CUDA 13 from it
SUPPORTED_MAJORS = (12, 13)


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0])[:3])


def cupy_major(distribution: str) -> int | None:
    """The CUDA major of a CuPy wheel from its distribution name (`cupy-cuda12x` -> 12); None if unknown."""
    match = re.fullmatch(r"cupy-cuda(\d\d)\d?x?", distribution.lower().replace("_", "-"))
    return int(match.group(1)) if match else None


def onnxruntime_gpu_major(version: str) -> int:
    """The CUDA major PyPI's `onnxruntime-gpu` of `version` was built for."""
    return 13 if _version_tuple(version)[:2] >= ORT_FIRST_CUDA13 else 12


def torch_major(cuda_version: str | None) -> int | None:
    """The CUDA major of a torch build from `torch.version.cuda` ("13.0" -> 13); None for a CPU build."""
    return int(cuda_version.split(".")[0]) if cuda_version else None


def requirement_major(requirement: str) -> int | None:
    """The CUDA major a requirement string pins (e.g. "onnxruntime-gpu>=1.27" -> 13,
    "cupy-cuda12x>=13" -> 12), or None for a package with no CUDA major."""
    name = re.split(r"[<>=!~;\[ ]", requirement.strip(), maxsplit=1)[0].lower()
    if name.startswith("cupy-cuda"):
        return cupy_major(name)
    if name in ("tensorrt-cu12", "tensorrt-cu13"):
        return int(name[-2:])
    if name == "onnxruntime-gpu":
        lower = re.search(r">=\s*([\d.]+)", requirement)
        upper = re.search(r"<\s*([\d.]+)", requirement)
        if upper and _version_tuple(upper.group(1))[:2] <= ORT_FIRST_CUDA13:
            return 12
        if lower and _version_tuple(lower.group(1))[:2] >= ORT_FIRST_CUDA13:
            return 13
        raise ValueError(f"{requirement!r} allows both CUDA 12 and CUDA 13 builds of onnxruntime-gpu; bound it "
                         f"below or from {'.'.join(map(str, ORT_FIRST_CUDA13))}")
    return None


def installed() -> dict[str, str]:
    """Installed GPU-relevant distributions of this environment, {name: version}."""
    found = {}
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name.startswith("cupy") or name in ("onnxruntime-gpu", "onnxruntime", "torch-tensorrt", "torch") \
                or name.startswith("tensorrt"):
            found[name] = dist.version
    return found


def stack_problems(torch_cuda: str | None, torch_version: str | None, packages: dict[str, str]) -> list[str]:
    """What is wrong with a stack: torch's `torch.version.cuda` and version, and the installed
    distributions {name: version}. Empty when every GPU package agrees with torch's CUDA major."""
    problems = []
    majors = {}
    for name, version in packages.items():
        if name.startswith("cupy-cuda"):
            majors[name] = cupy_major(name)
        elif name == "onnxruntime-gpu":
            majors[name] = onnxruntime_gpu_major(version)
        elif name in ("tensorrt-cu12", "tensorrt-cu13"):
            majors[name] = int(name[-2:])
    cupys = [name for name in packages if name.startswith("cupy-cuda")]
    if len(cupys) > 1:
        problems.append(f"several CuPy wheels are installed ({', '.join(cupys)}); keep the one of your CUDA major")
    if "onnxruntime-gpu" in packages and "onnxruntime" in packages:
        problems.append("onnxruntime and onnxruntime-gpu are both installed and shadow each other; "
                        "pip uninstall onnxruntime")
    want = torch_major(torch_cuda)
    if want is None and majors:
        problems.append(f"torch is a CPU build but {', '.join(sorted(majors))} are CUDA packages; install "
                        "torch's CUDA build (https://pytorch.org/get-started/locally/)")
    elif want is not None:
        for name, major in sorted(majors.items()):
            if major is not None and major != want:
                problems.append(f"{name} is built for CUDA {major} but torch for CUDA {want}: "
                                f"pip install -e '.[gpu-cu{want}]' (uninstall {name} first)")
    trt = packages.get("torch-tensorrt")
    if trt and torch_version and _version_tuple(trt)[:2] != _version_tuple(torch_version)[:2]:
        minor = ".".join(map(str, _version_tuple(torch_version)[:2]))
        problems.append(f"torch-tensorrt {trt} is built for another torch than {torch_version}: "
                        f"pip install 'torch-tensorrt=={minor}.*'")
    return problems


def stack_report() -> tuple[bool, str, str]:
    """(consistent, torch's CUDA version or "cpu", a one-line description with any problems) of this
    environment's GPU stack, without importing CuPy, ONNX Runtime or TensorRT."""
    packages = installed()
    torch_cuda = None
    if "torch" in packages:
        import torch

        torch_cuda = torch.version.cuda
    gpu = {name: version for name, version in packages.items() if name != "torch"}
    problems = stack_problems(torch_cuda, packages.get("torch"), gpu)
    listed = ", ".join(f"{name} {version}" for name, version in sorted(gpu.items())) or "no GPU packages"
    head = f"torch {packages.get('torch', '-')} ({'CUDA ' + torch_cuda if torch_cuda else 'CPU build'}); {listed}"
    return not problems, torch_cuda or "cpu", "; ".join([head, *problems])
