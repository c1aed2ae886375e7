"""Every check in order, each run once: a failing check never stops the others."""

from __future__ import annotations

import json
import logging
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import yaml

from ._context import CHECK_CONFIG, Context, Outcome, Skip
from ._device_checks import (
    check_bench_network,
    check_compile,
    check_dataset,
    check_kernel_exact,
    check_kernel_roofline,
    check_training,
)
from ._fleet_throughput import check_fleet_throughput
from ._pipeline import check_pipeline

log = logging.getLogger(__name__)


CHECKS: list[tuple[str, Callable[[Context], Outcome], bool]] = [  # (name, check, needs CUDA)
    ("kernel_exact_f32", lambda ctx: check_kernel_exact(ctx, "float32"), True),
    ("kernel_exact_f64", lambda ctx: check_kernel_exact(ctx, "float64"), True),
    ("kernel_roofline", check_kernel_roofline, True),
    ("dataset_cuda", check_dataset, True),
    ("training", check_training, False),
    ("fleet_throughput", check_fleet_throughput, False),
    ("compile_onnxruntime", lambda ctx: check_compile(ctx, "onnxruntime"), False),
    ("compile_torch_compile", lambda ctx: check_compile(ctx, "torch_compile"), False),
    ("bench_network", check_bench_network, False),
    ("pipeline", check_pipeline, True),
]


def run_check(name: str, check: Callable[[Context], Outcome], ctx: Context) -> Outcome:
    start = time.perf_counter()
    try:
        outcome = check(ctx)
    except Skip as why:
        outcome = Outcome(name, "SKIP", str(why))
    except Exception as exc:  # a failing check must not stop the others: its reason is the result
        log.debug("%s failed:\n%s", name, traceback.format_exc())
        outcome = Outcome(name, "FAIL", f"{type(exc).__name__}: {' '.join(str(exc).split())[:400]}")
    outcome.name = name
    outcome.seconds = time.perf_counter() - start
    return outcome


def run_checks(device: str = "cuda", quick: bool = False, study_config: dict | None = None,
               only: list[str] | None = None, echo: Callable[[str], None] | None = print) -> list[Outcome]:
    """Run the checks (those named in `only`, else all) on `device`; each outcome's line is passed to
    `echo` as soon as it is known. Checks that need CUDA are skipped on a machine without it."""
    import torch

    from ..plan.config import validate_config

    if device == "cuda" and not torch.cuda.is_available():
        cuda_why = f"torch {torch.__version__} sees no CUDA device"
    else:
        cuda_why = None
    config = validate_config(yaml.safe_load(CHECK_CONFIG))
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="fhnkit_gpu_check_") as tmp:
        ctx = Context(device, quick, Path(tmp), config, study_config)
        for name, check, needs_cuda in CHECKS:
            if only and name not in only:
                continue
            if cuda_why and (needs_cuda or device == "cuda"):
                outcome = Outcome(name, "SKIP", cuda_why)
            elif needs_cuda and device != "cuda":
                outcome = Outcome(name, "SKIP", "a CUDA-only check (run with --device cuda on a GPU)")
            else:
                outcome = run_check(name, check, ctx)
            outcomes.append(outcome)
            if echo is not None:
                echo(outcome.line())
    return outcomes


def write_outcomes(outcomes: list[Outcome], path) -> None:
    """The outcomes as JSON (every number of every check)."""
    Path(path).write_text(json.dumps([asdict(o) for o in outcomes], indent=2, default=str) + "\n")
