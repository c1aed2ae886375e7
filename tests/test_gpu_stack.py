"""The GPU stack check of `fhnkit env` and the per-CUDA-major extras of pyproject.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from fhnkit.cluster.gpu_stack import (
    cupy_major,
    installed,
    onnxruntime_gpu_major,
    requirement_major,
    stack_problems,
    stack_report,
)

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _extras() -> dict[str, list[str]]:
    return tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]


@pytest.mark.parametrize("major", [12, 13])
def test_each_gpu_extra_holds_one_cuda_major_and_never_torch(major):
    extra = _extras()[f"gpu-cu{major}"]
    majors = {requirement_major(req) for req in extra} - {None}
    assert majors == {major}, extra
    assert not any(req.split("[")[0].split(">")[0].split("=")[0].strip() in ("torch", "torch-tensorrt")
                   for req in extra), "an extra must never replace the user's CUDA torch"


def test_no_extra_mixes_cuda_majors():
    for name, extra in _extras().items():
        assert len({requirement_major(req) for req in extra} - {None}) <= 1, (name, extra)


def test_an_onnxruntime_gpu_range_spanning_both_majors_is_refused():
    with pytest.raises(ValueError, match="both CUDA 12 and CUDA 13"):
        requirement_major("onnxruntime-gpu>=1.17")


def test_package_majors():
    assert cupy_major("cupy-cuda12x") == 12 and cupy_major("cupy_cuda13x") == 13 and cupy_major("cupy") is None
    assert onnxruntime_gpu_major("1.26.0") == 12 and onnxruntime_gpu_major("1.27.0") == 13
    assert onnxruntime_gpu_major("1.31.1") == 13 and onnxruntime_gpu_major("1.19.2") == 12


def test_a_consistent_stack_has_no_problem():
    assert stack_problems("13.0", "2.14.1+cu130", {"cupy-cuda13x": "14.2.0", "onnxruntime-gpu": "1.31.1",
                                                    "torch-tensorrt": "2.14.0", "tensorrt-cu13": "11.1.0"}) == []
    assert stack_problems(None, "2.13.0", {"onnxruntime": "1.22.0"}) == []


def test_mixed_majors_are_named_with_the_extra_to_install():
    problems = stack_problems("13.0", "2.14.1", {"cupy-cuda12x": "13.6.0", "onnxruntime-gpu": "1.31.1"})
    assert len(problems) == 1
    assert "cupy-cuda12x is built for CUDA 12 but torch for CUDA 13" in problems[0]
    assert "gpu-cu13" in problems[0]
    problems = stack_problems("12.8", "2.9.0", {"onnxruntime-gpu": "1.28.0"})
    assert problems and "onnxruntime-gpu is built for CUDA 13 but torch for CUDA 12" in problems[0]


def test_other_stack_faults_are_named():
    assert "CPU build" in stack_problems(None, "2.13.0", {"cupy-cuda13x": "14.2.0"})[0]
    assert "several CuPy" in stack_problems("13.0", "2.14.0", {"cupy-cuda12x": "1", "cupy-cuda13x": "1"})[0]
    assert "shadow" in stack_problems(None, "2.13.0", {"onnxruntime": "1.2", "onnxruntime-gpu": "1.31"})[0]
    problem = stack_problems("13.0", "2.13.0+cu130", {"torch-tensorrt": "2.14.0"})
    assert problem and "torch-tensorrt==2.13.*" in problem[0]


def test_this_environment_reports_its_stack():
    import torch

    packages = installed()
    problems = stack_problems(torch.version.cuda, torch.__version__,
                              {k: v for k, v in packages.items() if k != "torch"})
    consistent, cuda, detail = stack_report()
    assert cuda == (torch.version.cuda or "cpu")
    assert detail.startswith(f"torch {torch.__version__} ")
    assert consistent == (not problems) and all(problem in detail for problem in problems)
